"""The Encoder-Renderer ("reference retouch"): learn an edit from a before/after pair.

    ref_before ─┐
                ├─ cat (6 ch) ─► ReferenceEncoder ─► × mask ─► latent [1, 2688]
    ref_after ──┘
    photo + latent ─► renderer (per-pixel MLP) ─► retouched photo

The encoder is upstream's `Resnet18Encoder_InputCatMixedCBAM`: a ResNet-18-shaped CNN with
spatial / CBAM / squeeze-excitation attention after some residual stages. Attribute names follow
upstream so that the released `encoder_renderer.pth` loads without renaming; upstream's
parameter-free modules (R1..R8, flatten) are plain function calls here.

Upstream feeds both references in BGR order, squashed to 512×512 (docs/upstream-compatibility.md#reference-mode); that
preprocessing belongs to the caller. The encoder itself accepts any reference size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .renderer import HIDDEN_DIMS, LATENT_DIM, ConditionalMLPDecoder, expand_mask

ENCODER_WIDTHS = (64, 128, 256, 512)  # upstream's stage widths
ENCODER_PARAMS = 12_614_020
ENCODER_RENDERER_PARAMS = 15_191_815
STATE_DICT_ENTRIES = 182  # 162 encoder.* + 20 decoder.*, BatchNorm buffers included


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2), nn.BatchNorm2d(c_out), nn.ReLU()]


def _residual_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """[conv3×3 · BN · ReLU] ×2; the first conv carries the stride."""
    return nn.Sequential(*_conv_bn_relu(c_in, c_out, 3, stride), *_conv_bn_relu(c_out, c_out, 3, 1))


def _downsample_shortcut(c_in: int, c_out: int) -> nn.Sequential:
    """Projection shortcut for a stride-2 block: conv1×1 s2 · BN · ReLU (upstream keeps the ReLU)."""
    return nn.Sequential(*_conv_bn_relu(c_in, c_out, 1, 2))


def _channel_max_mean(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, 2, H, W]: per-pixel max and mean over channels (input of a spatial gate)."""
    return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


class SpatialAttention(nn.Module):
    """x · sigmoid(conv7×7([max_c x, mean_c x]))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(_channel_max_mean(x)))


class CBAM(nn.Module):
    """Channel gate (1×1 convs on the pooled features), then a spatial gate on the gated features."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Sequential indices (1, 3 and 0) are part of upstream's key names.
        self.channel_att = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial_att = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_att(x)
        return x * self.spatial_att(_channel_max_mean(x))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation with Linear layers."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class ReferenceEncoder(nn.Module):
    """Upstream's `Resnet18Encoder_InputCatMixedCBAM`: [B, 6, H, W] reference pair → [B, 3*latent_dim].

    `widths` are the four stage widths (upstream's ResNet-18: 64, 128, 256, 512); the built-in
    nano model uses narrower stages with the same layout and names.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, widths: Sequence[int] = ENCODER_WIDTHS) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        # Registered in upstream's order so state_dict() lists keys exactly as upstream's does.
        self.model0 = nn.Sequential(*_conv_bn_relu(6, w0, 7, 2), nn.MaxPool2d(3, stride=2, padding=1))
        self.model1 = _residual_block(w0, w0)
        self.model2 = _residual_block(w0, w0)
        self.model3 = _residual_block(w0, w1, stride=2)
        self.en1 = _downsample_shortcut(w0, w1)
        self.model4 = _residual_block(w1, w1)
        self.model5 = _residual_block(w1, w2, stride=2)
        self.en2 = _downsample_shortcut(w1, w2)
        self.model6 = _residual_block(w2, w2)
        self.model7 = _residual_block(w2, w3, stride=2)
        self.en3 = _downsample_shortcut(w2, w3)
        self.model8 = _residual_block(w3, w3)
        self.aap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, 3 * latent_dim)
        self.attn_spatial1 = SpatialAttention()
        self.attn_spatial2 = SpatialAttention()
        self.attn_mid1 = CBAM(w1)
        self.attn_mid2 = CBAM(w2)
        self.attn_deep = ChannelAttention(w3)

    def _stages(self) -> list[tuple[nn.Module, nn.Module | None, nn.Module | None]]:
        """(block, shortcut or None for identity, attention or None) for each residual stage."""
        return [
            (self.model1, None, self.attn_spatial1),
            (self.model2, None, self.attn_spatial2),
            (self.model3, self.en1, self.attn_mid1),
            (self.model4, None, None),
            (self.model5, self.en2, self.attn_mid2),
            (self.model6, None, None),
            (self.model7, self.en3, self.attn_deep),
            (self.model8, None, None),
        ]

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        x = self.model0(pair)
        for block, shortcut, attention in self._stages():
            x = block(x) + (x if shortcut is None else shortcut(x))
            if attention is not None:
                x = attention(x)
            x = F.relu(x)
        return self.fc(self.aap(x).flatten(1))


class EncoderRenderer(nn.Module):
    """Upstream's `RetouchRenderer` for `RetouchRenderer_Resnet18Encoder_InputCatMixedCBAM` (fp32)."""

    def __init__(
        self,
        latent_dim: int = LATENT_DIM,
        encoder_widths: Sequence[int] = ENCODER_WIDTHS,
        renderer_hidden_dims: Sequence[int] = HIDDEN_DIMS,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = ReferenceEncoder(latent_dim, encoder_widths)
        self.decoder = ConditionalMLPDecoder(latent_dim, renderer_hidden_dims)

    def encode(self, ref_before: torch.Tensor, ref_after: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """References [B, 3, h, w] in [-1, 1] + group mask [B, 3] → masked latent [B, 3*latent_dim]."""
        latent = self.encoder(torch.cat([ref_before, ref_after], dim=1))
        return latent * expand_mask(mask.to(latent.dtype), self.latent_dim)

    def forward(
        self,
        image: torch.Tensor,
        ref_before: torch.Tensor,
        ref_after: torch.Tensor,
        mask: torch.Tensor,
        chunk: int | None = None,
    ) -> torch.Tensor:
        """Photo [B, 3, H, W] in [-1, 1] (RGB) → retouched [B, 3, H, W] in [0, 1]; see `encode` for the rest."""
        return self.decoder.render_image(image, self.encode(ref_before, ref_after, mask), chunk)
