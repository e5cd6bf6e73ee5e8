"""VeraRetouch-Nano: the built-in default model's architecture and tokenizer.

The same family as the released VeraRetouch (LLaVA-style planner: FastViT vision tower, `mlp2x_gelu`
projector, Qwen2 decoder, retouch head, conditional per-pixel renderer; and a ResNet-shaped
reference encoder), expressed purely as configuration that every loader, exporter and backend
already reads (`vera_vision_config` / `vera_retouch_config` in `config.json`). Sizes were chosen
for a 256-px planner view, CPU training in about an hour and ≤ 25 MB of fp32 weights in total.

The tokenizer is a byte-level BPE trained with HF `tokenizers` on the reasoning corpus, with the
Qwen2 chat specials and the 21 VeraRetouch tokens as its first ids.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..prompts import VERA_ADDED_TOKENS
from ..testing.synthetic import QWEN2_SPECIAL

VOCAB_SIZE = 2048  # BPE vocabulary including the 24 special tokens
IMAGE_SIZE = 256  # planner view: 16 image embeddings at the 64× total stride
HIDDEN = 192  # decoder width = one control latent's width
REFERENCE_WIDTHS = (16, 32, 64, 128)  # reference encoder stage widths (upstream: 64..512)
RENDERER_HIDDEN = (64, 128, 256)

VISION_CONFIG: dict[str, Any] = {
    "layers": [1, 1, 2, 1, 1],
    "embed_dims": [16, 32, 64, 128, 256],
    "image_size": IMAGE_SIZE,
    "projection_dim": 32,  # width of FastViT's unused CLIP head: kept small, it is never run
}


def nano_config(vocab_size: int, eos_id: int, pad_id: int) -> dict[str, Any]:
    """The nano model's `config.json` (upstream layout, model_type `llava_qwen2`)."""
    return {
        "model_type": "llava_qwen2",
        "architectures": ["LlavaQwen2ForCausalLM"],
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "intermediate_size": 3 * HIDDEN,
        "num_hidden_layers": 4,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "use_sliding_window": False,
        "bos_token_id": pad_id,
        "eos_token_id": eos_id,
        "tie_word_embeddings": True,
        "mm_vision_tower": f"mobileclip_l_{IMAGE_SIZE}",
        "mm_hidden_size": 2 * VISION_CONFIG["embed_dims"][-1],
        "mm_projector_type": "mlp2x_gelu",
        "mm_patch_merge_type": "flat",
        "image_aspect_ratio": "pad",
        "torch_dtype": "float32",
        "vera_vision_config": VISION_CONFIG,
        "vera_retouch_config": {"retouch_head_hidden_dim": 2 * HIDDEN, "renderer_hidden_dims": list(RENDERER_HIDDEN)},
        "vera_model_name": "VeraRetouch-Nano",
    }


def special_tokens() -> list[str]:
    """Qwen2's chat specials, then the 21 VeraRetouch tokens: ids 0..23 of the nano vocabulary."""
    return [*QWEN2_SPECIAL, *VERA_ADDED_TOKENS]


def train_tokenizer(corpus: Iterable[str], vocab_size: int = VOCAB_SIZE) -> "tokenizers.Tokenizer":  # noqa: F821
    """A byte-level BPE (Qwen2's kind: any text encodes, nothing is unknown) trained on `corpus`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [AddedToken(tok, special=True, normalized=False) for tok in special_tokens()]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer
