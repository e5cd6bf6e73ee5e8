"""The PyTorch backend: runs the reference modules directly (numpy in, numpy out)."""

from __future__ import annotations

import numpy as np
import torch

from ..models.folded_renderer import FoldedRenderer
from ..models.planner import VeraPlanner

# Longest sequence eager torch runs, whatever the config allows: its prefill holds heads x T x T
# attention scores, 0.9 GB at 4096 tokens for the upstream model's 14 heads. Real prompts are a
# few hundred tokens plus at most about a thousand of reasoning.
MAX_EAGER_CONTEXT = 4096


def _tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


class TorchPlanner:
    """Implements generation.PlannerBackend on a loaded `VeraPlanner`, with a KV cache."""

    def __init__(self, model: VeraPlanner) -> None:
        self.model = model
        self.dtype = next(model.parameters()).dtype
        self.image_size = model.config.vision.image_size
        self.max_seq_len = min(int(model.config.text.get("max_position_embeddings", MAX_EAGER_CONTEXT)), MAX_EAGER_CONTEXT)
        self.cache: object | None = None
        self.position = 0

    @torch.no_grad()
    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        features = self.model.encode_image(_tensor(pixels, self.dtype)[None])
        return features[0].float().numpy()

    @torch.no_grad()
    def embed(self, ids: np.ndarray) -> np.ndarray:
        return self.model.embed_tokens(torch.from_numpy(ids)).float().numpy()

    def reset(self) -> None:
        self.cache, self.position = None, 0

    @torch.no_grad()
    def decode(self, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        length = embeds.shape[0]
        positions = torch.arange(self.position, self.position + length)[None]
        logits, hidden, self.cache = self.model.decode(_tensor(embeds, self.dtype)[None], positions, self.cache)
        self.position += length
        return logits[0, -1].float().numpy(), hidden[0, -1].float().numpy()

    @torch.no_grad()
    def latent(self, hidden3: np.ndarray, mask: np.ndarray) -> np.ndarray:
        z = self.model.latent(_tensor(hidden3, self.dtype)[None], _tensor(mask, self.dtype)[None])
        return z[0].float().numpy()


class TorchRenderer:
    """Runs the folded renderer programs (condition once, then render_points per tile)."""

    tile = None  # eager torch takes any number of points

    def __init__(self, renderer: torch.nn.Module) -> None:
        self.folded = FoldedRenderer(renderer)
        self.dtype = next(renderer.parameters()).dtype

    @torch.no_grad()
    def condition(self, latent: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[3*latent_dim] latent + [3] mask → flat per-image biases."""
        return self.folded.condition(_tensor(latent, self.dtype)[None], _tensor(mask, self.dtype)[None])[0].float().numpy()

    @torch.no_grad()
    def render_points(self, points: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """[N, 3] RGB in [-1, 1] → [N, 3] RGB in [0, 1]."""
        return self.folded.render_points(_tensor(points, self.dtype), _tensor(biases, self.dtype)).float().numpy()


class TorchReferenceEncoder:
    """Runs the Encoder-Renderer's encoder: a before/after example pair → control latent."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.dtype = next(model.parameters()).dtype

    @torch.no_grad()
    def encode(self, before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[3,512,512] BGR views in [-1, 1] (upstream's order) + [3] mask → [3*latent_dim] latent."""
        z = self.model.encode(_tensor(before, self.dtype)[None], _tensor(after, self.dtype)[None], _tensor(mask, self.dtype)[None])
        return z[0].float().numpy()
