"""`vera-mobile inspect`: what a checkpoint contains, read from headers without loading weights."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import CheckpointError


def _component(our_key: str | None) -> str:
    return "unknown" if our_key is None else our_key.split(".")[0]


def describe_planner(directory: Path) -> dict[str, Any]:
    from .models.checkpoint import check_keys, read_header, to_our_key
    from .models.config import PlannerConfig
    from .tokenizer import Tokenizer

    config = PlannerConfig.from_file(directory / "config.json")
    header = read_header(directory)
    components: dict[str, dict[str, int]] = {}
    dtypes: dict[str, int] = {}
    for name, (shape, dtype) in header.items():
        entry = components.setdefault(_component(to_our_key(name)), {"tensors": 0, "elements": 0})
        entry["tensors"] += 1
        entry["elements"] += math.prod(shape)
        dtypes[dtype] = dtypes.get(dtype, 0) + 1
    check = check_keys(config, {name: shape for name, (shape, _) in header.items()})
    tokenizer = Tokenizer.from_dir(directory)
    return {
        "kind": "planner checkpoint (upstream llava_qwen2 layout)",
        "path": str(directory),
        "language_model": {k: config.text.get(k) for k in (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "intermediate_size", "vocab_size", "tie_word_embeddings", "eos_token_id")},
        "vision_tower": {"image_size": config.vision.image_size, "out_dim": config.vision.out_dim,
                         "num_patches": config.vision.num_patches},
        "retouch_head_hidden_dim": config.retouch_head_hidden_dim,
        "renderer_hidden_dims": list(config.renderer_hidden_dims),
        "tensors": len(header),
        "stored_dtypes": dtypes,
        "components": components,
        "tied_lm_head": check.tied_lm_head,
        "key_check": "ok" if check.ok else {
            "unexpected": check.unexpected, "missing": check.missing, "mismatched": check.mismatched},
        "tokenizer": {
            "vocab_size": tokenizer.vocab_size,
            "retouch_token_ids": dict(zip(("light", "color&temp", "colormixer"), tokenizer.retouch_ids)),
        },
    }


def describe_reference(path: Path) -> dict[str, Any]:
    from .models.reference_checkpoint import load_encoder_renderer

    model = load_encoder_renderer(path)
    state = model.state_dict()
    return {
        "kind": "Encoder-Renderer (reference mode)",
        "path": str(path),
        "tensors": len(state),
        "encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
        "renderer_parameters": sum(p.numel() for p in model.decoder.parameters()),
    }


def describe_bundle(path: Path) -> dict[str, Any]:
    from .bundle import load_bundle

    manifest = load_bundle(path).manifest  # also verifies every file's sha256
    return {
        "kind": f"export bundle (schema version {manifest['schema_version']}, all files match their sha256)",
        "path": str(path),
        "source": manifest["source"],
        "model": manifest["model"],
        "quantization": manifest["quantization"],
        "artifacts": [
            {key: entry[key] for key in ("component", "target", "path")} | {"methods": sorted(entry["methods"])}
            for entry in manifest["artifacts"]
        ],
    }


def describe(path: Path) -> dict[str, Any]:
    """A JSON-ready description of a bundle, a planner checkpoint directory or an encoder_renderer.pth."""
    if (path / "manifest.json").is_file():
        return describe_bundle(path)
    if path.is_dir():
        return describe_planner(path)
    if path.is_file():
        return describe_reference(path)
    raise CheckpointError(f"{path}: no such checkpoint directory or file")
