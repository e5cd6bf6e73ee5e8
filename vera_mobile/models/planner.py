"""The VeraRetouch planner as one PyTorch module: the numerical reference for every backend.

    photo ─► FastViTHD ─► projector ─┐
    prompt ids ─► embed_tokens ──────┴─► Qwen2 decoder ─► logits (next token)
                                                       └► final-norm hidden states
    hidden before each of the 3 retouch tokens ─► retouch_head ─► × mask ─► latent
    latent + full-resolution RGB ─► renderer (per-pixel MLP) ─► retouched RGB

Components come from libraries where one exists (transformers' Qwen2 for the language model);
the vision tower is our own plain module (see fastvit.py for why not timm).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import PlannerConfig
from .fastvit import FastViTHD
from .renderer import ConditionalMLPDecoder, expand_mask


def build_projector(in_dim: int, out_dim: int) -> nn.Sequential:
    """LLaVA's `mlp2x_gelu` projector; indices 0 and 2 match upstream's `mm_projector.{0,2}` keys."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


def build_retouch_head(latent_dim: int, hidden_dim: int) -> nn.Sequential:
    """Maps the three concatenated hidden states to the control latent (docs/upstream-compatibility.md#the-latent-rule)."""
    width = 3 * latent_dim
    return nn.Sequential(
        nn.Linear(width, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(),
        nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(),
        nn.Linear(hidden_dim, width),
    )


def retouch_latent(head: nn.Module, hidden3: torch.Tensor, mask: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """[B, 3, hidden] states before the three retouch tokens + [B, 3] mask → [B, 3*latent_dim] latent."""
    z = head(hidden3.flatten(1))
    return z * expand_mask(mask.to(z.dtype), latent_dim)


class VeraPlanner(nn.Module):
    """Vision tower + projector + Qwen2 + retouch head + renderer, fp32 reference numerics."""

    def __init__(self, config: PlannerConfig) -> None:
        super().__init__()
        from transformers import Qwen2ForCausalLM

        self.config = config
        self.vision_tower = FastViTHD(config.vision)
        self.projector = build_projector(config.mm_hidden_size, config.hidden_size)
        self.language_model = Qwen2ForCausalLM(config.qwen2_config())
        self.retouch_head = build_retouch_head(config.latent_dim, config.retouch_head_hidden_dim)
        self.renderer = ConditionalMLPDecoder(config.latent_dim, config.renderer_hidden_dims)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] in [0, 1] → [B, num_patches, hidden] image embeddings for the LLM."""
        return self.projector(self.vision_tower(pixels))

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.model.embed_tokens(ids)

    def decode(
        self, embeds: torch.Tensor, position_ids: torch.Tensor, cache: object | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, object]:
        """Run the decoder over new positions; returns (logits, final-norm hidden, updated cache)."""
        out = self.language_model.model(
            inputs_embeds=embeds, position_ids=position_ids, past_key_values=cache, use_cache=True
        )
        hidden = out.last_hidden_state  # already after the final RMSNorm, as upstream's hidden_states[t][-1]
        return self.language_model.lm_head(hidden), hidden, out.past_key_values

    def latent(self, hidden3: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 3, hidden] states before the three retouch tokens + [B, 3] mask → [B, 3*hidden] latent."""
        return retouch_latent(self.retouch_head, hidden3, mask, self.config.latent_dim)
