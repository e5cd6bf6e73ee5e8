"""vera-mobile: on-device reasoning photo retouching (VeraRetouch-compatible).

    import vera_mobile
    retoucher = vera_mobile.load("nano")          # a bundle, a checkpoint folder, a .pth or a built-in name
    result = retoucher.retouch("photo.jpg", mode="auto")
"""

__version__ = "0.1.0"

from .runtime.retoucher import Retoucher, RetouchResult, load  # noqa: E402  (after __version__: export reads it)
from .prompts import Request  # noqa: E402

__all__ = ["Request", "RetouchResult", "Retoucher", "__version__", "load"]
