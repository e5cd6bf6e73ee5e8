"""Load the Encoder-Renderer checkpoint `encoder_renderer.pth` (`Gyh68/VeraRetouch.Encoder_Renderer`).

Upstream writes it with `torch.save({"model_state_dict": ..., ...})`; a bare
state dict is accepted too. Files are read with `weights_only=True`: a pickle may run arbitrary
code when loaded, so anything beyond tensors and plain containers is refused. Every tensor is
accounted for: an unknown, missing or wrongly shaped tensor is an error that names it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..targets import CHECKPOINT_DTYPES
from .checkpoint import torch_dtype
from .reference_encoder import ENCODER_WIDTHS, EncoderRenderer
from .renderer import HIDDEN_DIMS, LATENT_DIM

# Stored floating-point tensors may be in any of these; they are loaded as fp32.
ACCEPTED_FLOAT_DTYPES = tuple(torch_dtype(name) for name in CHECKPOINT_DTYPES)
_SHOW = 10  # how many key names an error message lists before summarising


def _name_keys(keys: list[str]) -> str:
    shown = ", ".join(sorted(keys)[:_SHOW])
    return shown + (f" (and {len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def _unpickler_detail(message: str) -> str:
    """The specific reason inside torch's long "Weights only load failed" message."""
    _, found, rest = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else message).splitlines() if line.strip()]
    return lines[0] if lines else message


def _read_state_dict(path: Path) -> Mapping[str, object]:
    """The state dict inside a `torch.save` file, from `model_state_dict` or the top level."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch reports both refused objects and corrupt pickles this way; the detail tells them apart.
        detail = _unpickler_detail(str(err))
        if detail.startswith("Unsupported global"):
            raise CheckpointError(
                f"{path}: refused, the file contains Python objects other than tensors and plain containers "
                f"({detail}); unpickling untrusted files can run arbitrary code, so only weights-only "
                "checkpoints are loaded"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    except Exception as err:  # torch.load reports corrupt files as KeyError, EOFError, RuntimeError, ...
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None

    if isinstance(content, Mapping) and "model_state_dict" in content:
        content = content["model_state_dict"]  # upstream's format; other top-level keys are training state
    if not isinstance(content, Mapping) or not all(isinstance(k, str) for k in content):
        raise CheckpointError(
            f"{path}: expected a state dict or a dict with 'model_state_dict', got {type(content).__name__}"
        )
    return content


def _to_expected_dtype(path: Path, name: str, stored: object, expected: torch.Tensor) -> torch.Tensor:
    if not isinstance(stored, torch.Tensor):
        raise CheckpointError(f"{path}: entry {name} is a {type(stored).__name__}, not a tensor")
    if tuple(stored.shape) != tuple(expected.shape):
        raise CheckpointError(
            f"{path}: tensor {name} has shape {list(stored.shape)}, expected {list(expected.shape)}"
        )
    if not expected.is_floating_point():
        return stored.to(expected.dtype)  # BatchNorm's num_batches_tracked: bookkeeping only
    if stored.dtype not in ACCEPTED_FLOAT_DTYPES:
        raise CheckpointError(f"{path}: tensor {name} is stored as {stored.dtype}; expected fp32, fp16 or bf16")
    return stored.to(torch.float32)


def _architecture(stored: Mapping[str, object]) -> dict[str, object]:
    """Latent and layer widths read from the stored shapes (upstream's, or the nano model's).

    Anything that cannot be read falls back to upstream's size, so that the strict key and shape
    check that follows names the actual problem.
    """
    def first_dim(name: str, index: int = 0) -> int | None:
        tensor = stored.get(name)
        return int(tensor.shape[index]) if isinstance(tensor, torch.Tensor) and tensor.dim() > index else None

    widths = [first_dim(f"encoder.model{i}.0.weight") for i in (0, 3, 5, 7)]
    hidden = []
    while first_dim(f"decoder.layers.{len(hidden)}.weight") is not None:
        hidden.append(first_dim(f"decoder.layers.{len(hidden)}.weight"))
    latent_width = first_dim("decoder.z_projs.0.weight", 1) or first_dim("encoder.fc.weight")
    return {
        "latent_dim": latent_width // 3 if latent_width and latent_width % 3 == 0 else LATENT_DIM,
        "encoder_widths": tuple(widths) if all(widths) else ENCODER_WIDTHS,
        "renderer_hidden_dims": tuple(hidden) or HIDDEN_DIMS,
    }


def _read_weights(path: Path) -> Mapping[str, object]:
    """Tensors of a `torch.save` checkpoint or of a `.safetensors` file (the nano model ships one)."""
    if path.suffix != ".safetensors":
        return _read_state_dict(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


def load_encoder_renderer(path: str | os.PathLike[str]) -> EncoderRenderer:
    """Build the Encoder-Renderer from a checkpoint file; fp32, on the CPU, in eval mode.

    Upstream's `encoder_renderer.pth` and the nano model's `encoder_renderer.safetensors` load the
    same way; layer widths come from the stored shapes.
    """
    path = Path(path)
    stored = _read_weights(path)

    # Build without allocating or initialising weights: every one of them comes from the file.
    with torch.device("meta"):
        model = EncoderRenderer(**_architecture(stored))
    expected = model.state_dict()

    unexpected = [name for name in stored if name not in expected]
    if unexpected:
        raise CheckpointError(f"{path}: {len(unexpected)} unexpected tensor(s): {_name_keys(unexpected)}")
    missing = [name for name in expected if name not in stored]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensor(s) missing: {_name_keys(missing)}")

    tensors = {name: _to_expected_dtype(path, name, stored[name], expected[name]) for name in expected}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()
