"""Planner configuration read from an upstream-layout `config.json` (model_type `llava_qwen2`).

The upstream checkpoint stores the Qwen2 and multimodal fields (docs/upstream-compatibility.md#checkpoint-layout). Two things it
does not store, because upstream reads them from `configs/infer_config.yaml`, are the retouch-head
width and the renderer widths; their upstream values are the defaults here. Smaller models (the
built-in nano model) override them, and the vision tower, with two optional blocks in the same
file — a config change, not a fork:

    "vera_vision_config":  {...FastViTConfig fields...}
    "vera_retouch_config": {"retouch_head_hidden_dim": 1344, "renderer_hidden_dims": [128, 256, 512]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..jsonfile import read_json_object
from .fastvit import FastViTConfig

MODEL_TYPE = "llava_qwen2"
DEFAULT_VISION_TOWER = "mobileclip_l_1024"

# Qwen2 fields we pass to transformers' Qwen2Config (everything else in config.json is LLaVA's).
_QWEN2_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "tie_word_embeddings", "use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout",
    "bos_token_id", "eos_token_id", "rope_scaling",
)
_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_sizes(raw: dict[str, Any]) -> None:
    """The integer fields must be positive integers: a string or float would fail deep in model code."""
    integer_fields = (*_REQUIRED, "num_key_value_heads", "max_position_embeddings", "mm_hidden_size")
    bad = [f"{key}={raw[key]!r}" for key in integer_fields if key in raw and not _is_size(raw[key])]
    if bad:
        raise CheckpointError(f"config.json: {', '.join(bad)}: expected positive integer(s)")
    eos = raw.get("eos_token_id")
    if eos is not None and not (isinstance(eos, int) or (isinstance(eos, list) and all(isinstance(e, int) for e in eos))):
        raise CheckpointError(f"config.json: eos_token_id={eos!r}: expected an integer or a list of integers")


@dataclass
class PlannerConfig:
    """Everything needed to build the planner, plus the raw config for provenance."""

    text: dict[str, Any]
    vision: FastViTConfig
    mm_hidden_size: int
    projector_type: str = "mlp2x_gelu"
    retouch_head_hidden_dim: int = 1344
    renderer_hidden_dims: tuple[int, ...] = (128, 256, 512)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def hidden_size(self) -> int:
        return int(self.text["hidden_size"])

    @property
    def latent_dim(self) -> int:
        """Width of one control latent: the LLM hidden size (896 upstream; the latent is 3× this)."""
        return self.hidden_size

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        eos = self.text.get("eos_token_id")
        if eos is None:
            return ()
        return tuple(eos) if isinstance(eos, list) else (int(eos),)

    def qwen2_config(self) -> "transformers.Qwen2Config":  # noqa: F821 (optional import)
        from transformers import Qwen2Config

        # Eager attention: identical numerics to sdpa here and traceable by every exporter.
        return Qwen2Config(**self.text, attn_implementation="eager")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "PlannerConfig":
        model_type = raw.get("model_type")
        if model_type != MODEL_TYPE:
            raise CheckpointError(f"config.json: model_type is {model_type!r}, expected {MODEL_TYPE!r}")
        missing = [key for key in _REQUIRED if key not in raw]
        if missing:
            raise CheckpointError(f"config.json: missing field(s) {', '.join(missing)}")
        _check_sizes(raw)
        projector = raw.get("mm_projector_type", "mlp2x_gelu")
        if projector != "mlp2x_gelu":
            raise CheckpointError(f"config.json: mm_projector_type {projector!r} is not supported (only mlp2x_gelu)")
        merge = raw.get("mm_patch_merge_type", "flat")
        if merge != "flat":
            raise CheckpointError(f"config.json: mm_patch_merge_type {merge!r} is not supported (only flat)")
        try:
            vision = FastViTConfig.from_upstream(
                raw.get("mm_vision_tower", DEFAULT_VISION_TOWER), raw.get("vera_vision_config")
            )
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise CheckpointError(f"config.json: unusable vision tower settings ({err})") from None
        mm_hidden = raw.get("mm_hidden_size", vision.out_dim)
        if mm_hidden != vision.out_dim:
            raise CheckpointError(
                f"config.json: mm_hidden_size {mm_hidden} does not match the vision tower's output width {vision.out_dim}"
            )
        retouch = raw.get("vera_retouch_config") or {}
        if not isinstance(retouch, dict):
            raise CheckpointError("config.json: vera_retouch_config must be an object")
        head = retouch.get("retouch_head_hidden_dim", 1344)
        widths = retouch.get("renderer_hidden_dims", [128, 256, 512])
        if not _is_size(head) or not isinstance(widths, (list, tuple)) or not all(map(_is_size, widths)):
            raise CheckpointError("config.json: vera_retouch_config widths must be positive integers")
        return cls(
            text={key: raw[key] for key in _QWEN2_FIELDS if key in raw},
            vision=vision,
            mm_hidden_size=mm_hidden,
            retouch_head_hidden_dim=head,
            renderer_hidden_dims=tuple(widths),
            raw=raw,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "PlannerConfig":
        return cls.from_dict(read_json_object(path, CheckpointError, "config.json a planner checkpoint needs"))
