"""vera-mobile: on-device reasoning photo retouching (VeraRetouch-compatible).

    import vera_mobile
    retoucher = vera_mobile.load("nano")   # a bundle, a checkpoint folder, a .pth or a built-in name
    result = retoucher.retouch("photo.jpg", vera_mobile.Request("auto"))

The names below are imported on first use, so `import vera_mobile.develop` (or any other
part) does not load the runtime.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .quiet import silence_known_noise

__version__ = "0.1.0"
silence_known_noise()  # before any part of the package imports torch, transformers or ExecuTorch

_PUBLIC = {
    "Cancelled": "vera_mobile.errors",
    "PhotoLike": "vera_mobile.runtime.retoucher",
    "RenderOptions": "vera_mobile.runtime.result",
    "Request": "vera_mobile.prompts",
    "RetouchResult": "vera_mobile.runtime.result",
    "Retoucher": "vera_mobile.runtime.retoucher",
    "SamplingOptions": "vera_mobile.runtime.generation",
    "VeraError": "vera_mobile.errors",
    "load": "vera_mobile.runtime.retoucher",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vera_mobile' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
