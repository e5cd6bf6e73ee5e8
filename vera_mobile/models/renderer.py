"""The renderer: a per-pixel MLP on RGB values, conditioned on the control latent.

Every pixel is mapped independently (a global colour/tone mapping), so the renderer works on
flat pixel lists of any length and the result is independent of image size and of how the
pixels are split into chunks or tiles:

    p ∈ [-1, 1]³ ─► [Linear ─► ReLU ─► LayerNorm ─► + z_proj(ReLU(latent))] ×3 ─► Linear ─► sigmoid

Parameter names equal upstream's, so `retouch_decoder.*` (VLM checkpoint) and `decoder.*`
(Encoder-Renderer checkpoint) load after stripping the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

LATENT_DIM = 896
HIDDEN_DIMS = (128, 256, 512)
RENDERER_PARAMS = 2_577_795  # parameters of the default configuration


def expand_mask(mask: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """[..., 3] group mask → [..., 3*latent_dim]: each flag gates its own latent slice."""
    return mask.repeat_interleave(latent_dim, dim=-1)


class ConditionalMLPDecoder(nn.Module):
    """Upstream's `ConditionalMLPDecoder` with cond "add" and a sigmoid output (the released config)."""

    def __init__(self, latent_dim: int = LATENT_DIM, hidden_dims: Sequence[int] = HIDDEN_DIMS) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        widths = [3, *hidden_dims]
        # Registered in upstream's order so state_dict() lists keys exactly as upstream's does.
        self.layers = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths, widths[1:]))
        self.out_layer = nn.Linear(widths[-1], 3)
        self.z_projs = nn.ModuleList(nn.Linear(3 * latent_dim, width) for width in hidden_dims)
        self.layer_norms = nn.ModuleList(nn.LayerNorm(width) for width in hidden_dims)

    def condition(self, latent: torch.Tensor) -> list[torch.Tensor]:
        """[..., 3*latent_dim] latent → one [..., 1, width] offset per hidden layer.

        The offsets depend only on the latent, so a caller rendering many chunks computes them once.
        """
        z = F.relu(latent)
        return [z_proj(z).unsqueeze(-2) for z_proj in self.z_projs]

    def render_points(self, points: torch.Tensor, offsets: Sequence[torch.Tensor]) -> torch.Tensor:
        """Map [..., N, 3] pixels in [-1, 1] to [..., N, 3] in [0, 1] with precomputed `condition()` offsets."""
        x = points
        for layer, norm, offset in zip(self.layers, self.layer_norms, offsets):
            x = norm(F.relu(layer(x))) + offset
        return torch.sigmoid(self.out_layer(x))

    def forward(self, points: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Pixels [..., N, 3] in [-1, 1] (RGB) + latent [..., 3*latent_dim] → pixels [..., N, 3] in [0, 1].

        The leading dims of `points` and `latent` must match (e.g. [B, N, 3] with [B, 2688]).
        """
        return self.render_points(points, self.condition(latent))

    def render_image(self, image: torch.Tensor, latent: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Image [B, 3, H, W] in [-1, 1] → [B, 3, H, W] in [0, 1], like upstream's `forward` / `forward_chunk`.

        `chunk` bounds memory by rendering at most that many pixels at a time into a preallocated
        output; None renders all H·W pixels at once. Results agree across chunk sizes up to float
        rounding (~1e-7: matmul blocking depends on the row count), as upstream's do.
        """
        if chunk is not None and chunk < 1:
            raise InputError(f"chunk must be a positive pixel count or None, got {chunk}")
        batch, channels, height, width = image.shape
        points = image.reshape(batch, channels, height * width).transpose(1, 2)  # [B, H·W, 3]
        offsets = self.condition(latent)
        if chunk is None:
            out = self.render_points(points, offsets)
        else:
            out = points.new_empty(points.shape)
            for start in range(0, height * width, chunk):
                out[:, start : start + chunk] = self.render_points(points[:, start : start + chunk], offsets)
        return out.transpose(1, 2).reshape(batch, 3, height, width)
