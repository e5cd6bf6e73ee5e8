"""The renderer split into a per-image program and a folded per-pixel program.

The reference renderer (renderer.py) computes, per pixel,

    x1 = LN0(relu(W0 p + b0)) + c0,   x2 = LN1(relu(W1 x1 + b1)) + c1,
    x3 = LN2(relu(W2 x2 + b2)) + c2,  y  = sigmoid(Wo x3 + bo),       c_k = Z_k relu(z)

where LN_k(h) = γ_k ⊙ norm(h) + β_k. Everything that does not depend on the pixel folds away:
γ_k scales the columns of the next weight, and β_k + c_k passes through the next linear layer
into its bias. What remains per pixel is three plain-normalised ReLU layers:

    condition(latent, mask) → biases = [W1(β0+c0)+b1 | W2(β1+c1)+b2 | Wo(β2+c2)+bo]   once per image
    render_points(points, biases)                                                        per tile

`biases` is one flat vector (256 + 512 + 3 = 771 floats upstream), so every backend and the apps
pass a single tensor between the two programs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .renderer import ConditionalMLPDecoder, expand_mask


class FoldedRenderer(nn.Module):
    """Numerically the reference renderer (within fp32 rounding), with constants pre-folded."""

    def __init__(self, reference: ConditionalMLPDecoder) -> None:
        super().__init__()
        self.latent_dim = reference.latent_dim
        self.widths = [layer.out_features for layer in reference.layers]
        self.eps = [norm.eps for norm in reference.layer_norms]
        linears = [*reference.layers, reference.out_layer]
        gammas = [norm.weight.detach() for norm in reference.layer_norms]
        betas = [norm.bias.detach() for norm in reference.layer_norms]
        with torch.no_grad():
            # Per-pixel weights: the first as is, the others with the previous LN scale folded in.
            self.first_weight = nn.Parameter(linears[0].weight.detach().clone(), requires_grad=False)
            self.first_bias = nn.Parameter(linears[0].bias.detach().clone(), requires_grad=False)
            self.weights = nn.ParameterList(
                nn.Parameter(nxt.weight.detach() * gamma[None, :], requires_grad=False)
                for nxt, gamma in zip(linears[1:], gammas)
            )
            # Per-image bias = W_next (β + c) + b_next = (W_next β + b_next) + (W_next Z) relu(z).
            self.static_biases = nn.ParameterList(
                nn.Parameter(nxt.weight.detach() @ beta + nxt.bias.detach(), requires_grad=False)
                for nxt, beta in zip(linears[1:], betas)
            )
            self.latent_to_bias = nn.ParameterList(
                nn.Parameter(nxt.weight.detach() @ z_proj.weight.detach(), requires_grad=False)
                for nxt, z_proj in zip(linears[1:], reference.z_projs)
            )
            self.latent_bias_offsets = nn.ParameterList(
                nn.Parameter(nxt.weight.detach() @ z_proj.bias.detach(), requires_grad=False)
                for nxt, z_proj in zip(linears[1:], reference.z_projs)
            )

    @property
    def bias_size(self) -> int:
        """Length of the flat per-image bias vector (771 for the upstream renderer)."""
        return sum(w.shape[0] for w in self.weights)

    def condition(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """latent [B, 3*latent_dim] (before masking) + mask [B, 3] → flat biases [B, bias_size]."""
        u = F.relu(latent * expand_mask(mask.to(latent.dtype), self.latent_dim))
        parts = [
            u @ to_bias.T + offset + static
            for to_bias, offset, static in zip(self.latent_to_bias, self.latent_bias_offsets, self.static_biases)
        ]
        return torch.cat(parts, dim=-1)

    def render_points(self, points: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
        """points [N, 3] RGB in [-1, 1] + biases [bias_size] → [N, 3] RGB in [0, 1]."""
        h = F.relu(points @ self.first_weight.T + self.first_bias)
        start = 0
        for index, weight in enumerate(self.weights):
            h = F.layer_norm(h, (h.shape[-1],), eps=self.eps[index])  # affine already folded
            end = start + weight.shape[0]
            h = h @ weight.T + biases[start:end]
            start = end
            if index < len(self.weights) - 1:
                h = F.relu(h)
        return torch.sigmoid(h)
