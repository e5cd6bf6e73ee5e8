"""Built-in models: names the CLI and API accept wherever a checkpoint directory is expected.

`nano` is VeraRetouch-Nano, trained on this project's synthesized data and shipped inside the
package (vera_mobile/assets/nano: upstream checkpoint layout plus the reference model; model card
in MODEL_CARD.md there). Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

ASSETS = Path(__file__).parent / "assets"
BUILTIN_MODELS = {"nano": ASSETS / "nano"}
DEFAULT_MODEL = "nano"


def resolve_model(model: str | os.PathLike) -> Path:
    """A built-in model's directory for its name, or the given path unchanged."""
    name = str(model)
    if name in BUILTIN_MODELS:
        directory = BUILTIN_MODELS[name]
        if not (directory / "model.safetensors").is_file():
            raise CheckpointError(f"built-in model {name!r} is missing from this installation ({directory})")
        return directory
    return Path(model)
