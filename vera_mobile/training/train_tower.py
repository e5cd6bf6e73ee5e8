"""The planner's FastViT tower in its *train-time* form, and the fold into the inference layout.

FastViT and MobileOne are trained with BatchNorm and parallel re-parameterizable branches and
folded into single convs afterwards; that is what makes them trainable. This module builds the
same network as `vera_mobile.models.fastvit.FastViTHD` with the train-time blocks:

* `RepBranches` (MobileOne conv): a k x k conv+BN branch, a 1 x 1 conv+BN "scale" branch (k > 1)
  and a BN-only identity branch (same width, stride 1), summed; then GELU or nothing. Folds to
  `RepConv.reparam_conv`.
* `LargeKernel` (RepLKNet): a 7 x 7 and a 3 x 3 grouped conv, each with BN, summed; GELU. Folds
  to `LargeKernelConv.lkb_reparam`.
* `RepMixer`: x + layer_scale * (mixer(x) - norm(x)), mixer a depthwise conv+BN branch set, norm a
  BN-only branch. Folds to the depthwise `reparam_conv` that contains the residual.
* `RepCPE`: x + depthwise 7 x 7 conv. Folds to a depthwise conv with the identity added.
* ConvFFN, attention, LayerNorm, squeeze-excite and the head are the inference modules
  themselves (their BatchNorm is trained normally and kept unfused in the inference layout).

`fold(tower)` returns a state dict with exactly `FastViTHD`'s tensor names (upstream's), so the
folded weights load strictly into the inference tower every loader and exporter reads. Module
names below mirror the inference layout so that the non-folded tensors keep their names.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import fastvit
from ..models.fastvit import FastViTConfig

LAYER_SCALE_INIT = 1e-2  # RepMixer / attention residual scale at the start (FastViT: 1e-5 for deep models)


def _bn_fold(weight: Tensor, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Kernel and bias of conv(weight, no bias) followed by `bn` in inference mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


def _pad_to(kernel: Tensor, size: int) -> Tensor:
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad] * 4)


def _identity_kernel(channels: int, per_group: int, size: int, like: Tensor) -> Tensor:
    kernel = torch.zeros(channels, per_group, size, size, dtype=like.dtype, device=like.device)
    kernel[torch.arange(channels), torch.arange(channels) % per_group, size // 2, size // 2] = 1.0
    return kernel


class ConvBN(nn.Sequential):
    """conv (no bias) + BatchNorm, one branch."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def folded(self, size: int) -> tuple[Tensor, Tensor]:
        kernel, bias = _bn_fold(self.conv.weight, self.bn)
        return _pad_to(kernel, size), bias


class RepBranches(nn.Module):
    """MobileOne block, train-time: k x k branch + 1 x 1 scale branch + BN identity, summed, then act."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.kernel, self.groups, self.c_out = kernel, groups, c_out
        self.conv_kxk = ConvBN(c_in, c_out, kernel, stride, groups)
        self.conv_scale = ConvBN(c_in, c_out, 1, stride, groups) if kernel > 1 else None
        self.identity = nn.BatchNorm2d(c_out) if c_in == c_out and stride == 1 else None
        self.act = nn.GELU() if act else nn.Identity()

    def branches(self, x: Tensor) -> Tensor:
        out = self.conv_kxk(x)
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.branches(x))

    def folded(self) -> tuple[Tensor, Tensor]:
        kernel, bias = self.conv_kxk.folded(self.kernel)
        if self.conv_scale is not None:
            k, b = self.conv_scale.folded(self.kernel)
            kernel, bias = kernel + k, bias + b
        if self.identity is not None:
            eye = _identity_kernel(self.c_out, kernel.shape[1], self.kernel, kernel)
            k, b = _bn_fold(eye, self.identity)
            kernel, bias = kernel + k, bias + b
        return kernel, bias


class LargeKernel(nn.Module):
    """RepLKNet conv, train-time: large grouped kernel + BN, plus a 3 x 3 grouped kernel + BN; GELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.kernel = kernel
        self.large = ConvBN(c_in, c_out, kernel, stride, groups=c_in)
        self.small = ConvBN(c_in, c_out, 3, stride, groups=c_in)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.large(x) + self.small(x))

    def folded(self) -> tuple[Tensor, Tensor]:
        (k1, b1), (k2, b2) = self.large.folded(self.kernel), self.small.folded(self.kernel)
        return k1 + k2, b1 + b2


class RepMixer(nn.Module):
    """x + layer_scale * (mixer(x) - norm(x)): depthwise mixing that folds to one conv with the residual."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.mixer = RepBranches(dim, dim, kernel, groups=dim, act=False)
        self.norm = nn.BatchNorm2d(dim)  # MobileOne with only its identity branch
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), LAYER_SCALE_INIT))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layer_scale * (self.mixer.branches(x) - self.norm(x))

    def folded(self) -> tuple[Tensor, Tensor]:
        mixer_k, mixer_b = self.mixer.folded()
        eye = _identity_kernel(mixer_k.shape[0], 1, self.kernel, mixer_k)
        norm_k, norm_b = _bn_fold(eye, self.norm)
        scale = self.layer_scale[:, :, :, None]  # [C, 1, 1, 1]
        return eye + scale * (mixer_k - norm_k), scale.flatten() * (mixer_b - norm_b)


class RepMixerBlock(nn.Module):
    def __init__(self, dim: int, cfg: FastViTConfig):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), LAYER_SCALE_INIT))
        self.token_mixer = RepMixer(dim, cfg.repmixer_kernel_size)
        self.convffn = fastvit.ConvFFN(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = self.token_mixer(x)
        return x + self.layer_scale * self.convffn(x)


class RepCPE(nn.Module):
    """Conditional positional encoding: x + depthwise conv(x)."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.pe = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pe(x)

    def folded(self) -> tuple[Tensor, Tensor]:
        eye = _identity_kernel(self.pe.out_channels, 1, self.pe.kernel_size[0], self.pe.weight)
        return self.pe.weight + eye, self.pe.bias


class ConvExp(nn.Module):
    """MobileOne widening conv (3 x 3 and 1 x 1 grouped branches) + squeeze-excite + GELU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.se = fastvit.SqueezeExcite(c_out)
        self.conv = RepBranches(c_in, c_out, 3, groups=c_in, act=False)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.se(self.conv(x)))


class TrainFastViT(fastvit.FastViTHD):
    """pixels [B,3,S,S] in [0,1] -> image embeddings [B, num_patches, out_dim], train-time form.

    The inference tower's layout with the train-time blocks; unlike it, it trains (`.train()`).
    """

    rep_conv = RepBranches

    @staticmethod
    def downsample(c_in: int, c_out: int, kernel: int) -> nn.Module:
        return fastvit.Downsample(c_in, c_out, kernel, large=LargeKernel, point=RepBranches)

    @staticmethod
    def pos_conv(dim: int, kernel: int) -> nn.Module:
        return RepCPE(dim, kernel)

    @staticmethod
    def block(mixer: str, dim: int, config: FastViTConfig) -> nn.Module:
        if mixer == "repmixer":
            return RepMixerBlock(dim, config)
        block = fastvit.AttentionBlock(dim, config)
        block.layer_scale_1.data.fill_(LAYER_SCALE_INIT)
        block.layer_scale_2.data.fill_(LAYER_SCALE_INIT)
        return block

    @staticmethod
    def widening_conv(c_in: int, c_out: int) -> nn.Module:
        return ConvExp(c_in, c_out)


def _folded_items(tower: TrainFastViT) -> Iterator[tuple[str, Tensor]]:
    """(inference name, tensor) for every tensor of the folded tower."""
    for i, layer in enumerate(tower.patch_embed):
        kernel, bias = layer.folded()
        yield from ((f"patch_embed.{i}.reparam_conv.weight", kernel), (f"patch_embed.{i}.reparam_conv.bias", bias))
    for n, layer in enumerate(tower.network):
        if isinstance(layer, fastvit.Downsample):
            large, point = layer.proj
            (k1, b1), (k2, b2) = large.folded(), point.folded()
            yield from ((f"network.{n}.proj.0.lkb_reparam.weight", k1), (f"network.{n}.proj.0.lkb_reparam.bias", b1),
                        (f"network.{n}.proj.1.reparam_conv.weight", k2), (f"network.{n}.proj.1.reparam_conv.bias", b2))
        elif isinstance(layer, RepCPE):
            kernel, bias = layer.folded()
            yield from ((f"network.{n}.reparam_conv.weight", kernel), (f"network.{n}.reparam_conv.bias", bias))
        else:
            for m, block in enumerate(layer):
                prefix = f"network.{n}.{m}."
                for name, tensor in block.state_dict().items():
                    if not name.startswith("token_mixer.") or isinstance(block, fastvit.AttentionBlock):
                        yield prefix + name, tensor
                if isinstance(block, RepMixerBlock):
                    kernel, bias = block.token_mixer.folded()
                    yield prefix + "token_mixer.reparam_conv.weight", kernel
                    yield prefix + "token_mixer.reparam_conv.bias", bias
    kernel, bias = tower.conv_exp.conv.folded()
    yield "conv_exp.reparam_conv.weight", kernel
    yield "conv_exp.reparam_conv.bias", bias
    for name, tensor in tower.conv_exp.se.state_dict().items():
        yield f"conv_exp.se.{name}", tensor
    yield "head.proj", tower.head.proj


@torch.no_grad()
def fold(tower: TrainFastViT) -> dict[str, Tensor]:
    """The inference-layout state dict (FastViTHD's names) computing what `tower.eval()` computes."""
    return {name: tensor.detach().clone().contiguous() for name, tensor in _folded_items(tower)}


def folded_tower(tower: TrainFastViT) -> fastvit.FastViTHD:
    """A `FastViTHD` (eval mode) loaded strictly with the fold of `tower`."""
    inference = fastvit.FastViTHD(tower.config)
    inference.load_state_dict(fold(tower), strict=True)
    return inference.eval()
