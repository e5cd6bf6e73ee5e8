"""FastViTHD, the planner's vision tower, in its inference-mode (re-parameterized) layout.

Upstream builds it with timm's model registry from Apple's `mci.py`
(`fastvithd`, `inference_mode=True`). We write it ourselves because every timm 1.0.x hard-imports
torchvision, which has no CPU build for our torch pin. The module is small: every trained
multi-branch block (MobileOne, RepMixer, RepCPE, large-kernel conv) is already folded into one
conv in the checkpoint, so what remains is convs, a BatchNorm, a channel LayerNorm and attention.

    pixels [B,3,S,S] in [0,1]                      (no mean/std normalisation upstream)
      patch_embed   3 conv+GELU, stride 4          [B, 96, S/4, S/4]
      network       5 stages; between stages a stride-2 downsample, and a RepCPE
                    (7x7 depthwise conv) before each attention stage
                    stages 0-2: RepMixer blocks    stages 3-4: attention blocks
      conv_exp      depthwise 3x3 1536->3072, squeeze-excite, GELU   [B, 3072, S/64, S/64]
      flatten       row-major over H then W        [B, (S/64)^2, 3072]

Parameter names are upstream's with `model.vision_tower.vision_tower.model.` removed
(`UPSTREAM_PREFIX`), so a checkpoint loads with a prefix strip and a strict `load_state_dict`.
`head.proj` is upstream's unused CLIP projection; we keep the tensor (never used in `forward`)
so that every tensor in the checkpoint is accounted for.

Key map to timm's `fastvit_mci3` (the same network; transformers' FastVLM uses timm's names).
Checked with timm 1.0.31 (tests/data/make_fastvit_golden.py --check): upstream weights remapped
as below load strictly into `reparameterize_model(fastvit_mci3)`, whose `forward_features` then
matches upstream to 4.8e-6 (ours: 2.9e-6) on a random 1024x1024 image, outputs of max |x| 8.1.
timm's own `checkpoint_filter_fn` does not cover this already-folded layout (it leaves
`lkb_reparam` and the RepCPE `reparam_conv` misnamed). `s` is the stage that `network.n` belongs
to (HD: n=0 -> 0; 1,2 -> 1; 3,4 -> 2; 5,6,7 -> 3; 8,9,10 -> 4):

    patch_embed.i.reparam_conv.*          -> stem.i.reparam_conv.*
    network.n.proj.0.lkb_reparam.*        -> stages.s.downsample.proj.0.reparam_conv.*
    network.n.proj.1.reparam_conv.*       -> stages.s.downsample.proj.1.reparam_conv.*
    network.n.reparam_conv.*   (RepCPE)   -> stages.s.pos_emb.reparam_conv.*
    network.n.m.<rest>                    -> stages.s.blocks.m.<rest>, where in <rest>
        convffn.                          -> mlp.
        layer_scale / layer_scale_1 / _2  -> layer_scale.gamma / layer_scale_1.gamma / _2.gamma
    conv_exp.reparam_conv.*               -> final_conv.reparam_conv.*
    conv_exp.se.reduce.* / se.expand.*    -> final_conv.se.fc1.* / final_conv.se.fc2.*
    head.proj [3072,768]                  -> head.fc.weight = head.proj.T, plus head.fc.bias = zeros(768)

(629 upstream tensors -> 630 timm tensors; the extra one is the zero `head.fc.bias`.)
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn as nn
from torch import Tensor

from ..errors import CheckpointError

UPSTREAM_PREFIX = "model.vision_tower.vision_tower.model."

# Upstream's `load_model_config` only ships `configs/mobileclip_l.json` (model_name "fastvithd").
_UPSTREAM_FAMILIES = ("mobileclip_l",)
_TOKEN_MIXERS = ("repmixer", "attention")


@dataclass(frozen=True)
class FastViTConfig:
    """Architecture of the tower. Defaults are upstream's FastViTHD ("mobileclip_l_1024")."""

    layers: tuple[int, ...] = (2, 12, 24, 4, 2)  # blocks per stage
    embed_dims: tuple[int, ...] = (96, 192, 384, 768, 1536)  # channels per stage
    token_mixers: tuple[str, ...] = ("repmixer", "repmixer", "repmixer", "attention", "attention")
    # Kernel size of the RepCPE positional conv placed before each stage, or None for no RepCPE.
    pos_embs: tuple[int | None, ...] = (None, None, None, 7, 7)
    mlp_ratio: float = 4.0  # ConvFFN hidden width = mlp_ratio * dim
    cls_ratio: float = 2.0  # conv_exp output width = cls_ratio * embed_dims[-1]
    head_dim: int = 32  # attention head width
    repmixer_kernel_size: int = 3
    down_patch_size: int = 7  # kernel of the stride-2 large-kernel conv between stages
    norm_eps: float = 1e-5  # channel LayerNorm in attention blocks
    image_size: int = 1024
    projection_dim: int = 768  # width of the unused GlobalPool2D head (`head.proj`)

    def __post_init__(self) -> None:
        n = len(self.layers)
        if n not in (4, 5):
            raise ValueError(f"FastViT has 4 or 5 stages, got layers={self.layers}")
        for name in ("embed_dims", "token_mixers", "pos_embs"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FastViTConfig.{name} needs {n} entries (one per stage), got {getattr(self, name)}")
        for dim, mixer in zip(self.embed_dims, self.token_mixers):
            if mixer not in _TOKEN_MIXERS:
                raise ValueError(f"unknown token mixer {mixer!r}; expected one of {_TOKEN_MIXERS}")
            if mixer == "attention" and dim % self.head_dim:
                raise ValueError(f"attention stage width {dim} is not a multiple of head_dim {self.head_dim}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the total stride {self.patch_size}")

    @property
    def patch_size(self) -> int:
        """Total stride: 4 in the stem, then 2 per downsample between stages (64 for 5 stages)."""
        return 4 * 2 ** (len(self.layers) - 1)

    @property
    def out_dim(self) -> int:
        """Width of each image embedding (3072 for HD; upstream's `mm_hidden_size`)."""
        return int(self.embed_dims[-1] * self.cls_ratio)

    @property
    def num_patches(self) -> int:
        """Image embeddings per image: (1024 / 64)^2 = 256 for HD."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> FastViTConfig:
        """Defaults overridden by `fields` (JSON-style: lists become tuples)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown FastViTConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    @classmethod
    def from_upstream(cls, mm_vision_tower: str, overrides: Mapping[str, Any] | None = None) -> FastViTConfig:
        """Config for an upstream `mm_vision_tower` name such as "mobileclip_l_1024".

        As upstream: the first two `_` fields name the model family, the last one is the input
        size. `overrides` (e.g. a nano variant's smaller `layers` / `embed_dims`) is applied last.
        """
        parts = mm_vision_tower.split("_")
        family = "_".join(parts[:2])
        if family not in _UPSTREAM_FAMILIES or not parts[-1].isdigit():
            raise CheckpointError(
                f"mm_vision_tower {mm_vision_tower!r} is not supported; expected "
                f"'<family>_<image size>' with family in {_UPSTREAM_FAMILIES}, e.g. 'mobileclip_l_1024'"
            )
        return cls.from_dict({"image_size": int(parts[-1]), **(overrides or {})})


def upstream_tower_weights(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The vision-tower tensors of an upstream planner checkpoint, named as in `FastViTHD`."""
    n = len(UPSTREAM_PREFIX)
    return {k[n:]: v for k, v in state_dict.items() if k.startswith(UPSTREAM_PREFIX)}


class RepConv(nn.Module):
    """A single conv (+ GELU) standing in for a trained multi-branch MobileOne/RepMixer/RepCPE block."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.reparam_conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups)
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.reparam_conv(x))


class LargeKernelConv(nn.Module):
    """Folded RepLKNet conv: grouped (groups = input channels) strided large-kernel conv, then GELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.lkb_reparam = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=c_in)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.lkb_reparam(x))


class Downsample(nn.Module):
    """Upstream's PatchEmbed between stages: halves H and W and changes the width.

    `large` and `point` are the two convolutions' classes: the folded ones here, the train-time
    multi-branch ones on the training side (same module names, so the fold maps one onto the other).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, large: type | None = None, point: type | None = None):
        super().__init__()
        large, point = large or LargeKernelConv, point or RepConv
        self.proj = nn.Sequential(large(c_in, c_out, kernel, stride=2), point(c_out, c_out, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class ConvFFN(nn.Module):
    """Depthwise 7x7 conv + BatchNorm (kept unfused so the checkpoint's BN tensors load), then a 1x1 MLP."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.conv = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(dim, dim, 7, padding=3, groups=dim, bias=False), bn=nn.BatchNorm2d(dim))
        )
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class RepMixerBlock(nn.Module):
    """Folded RepMixer (one depthwise conv that already contains the residual) + scaled ConvFFN residual."""

    def __init__(self, dim: int, cfg: FastViTConfig):
        super().__init__()
        # Parameters are overwritten by the checkpoint; the init value does not matter.
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))
        self.token_mixer = RepConv(dim, dim, cfg.repmixer_kernel_size, groups=dim, act=False)
        self.convffn = ConvFFN(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = self.token_mixer(x)
        return x + self.layer_scale * self.convffn(x)


class LayerNormChannel(nn.Module):
    """LayerNorm over the channel axis of [B,C,H,W], written exactly as upstream computes it."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions of a [B,C,H,W] map."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B, N, C]
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, N, head_dim]
        # Scale q before the product, as upstream does (keeps q·kᵀ small in half precision).
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, H * W, C)
        return self.proj(x).transpose(1, 2).reshape(B, C, H, W)


class AttentionBlock(nn.Module):
    """Pre-norm attention residual and ConvFFN residual, each scaled per channel."""

    def __init__(self, dim: int, cfg: FastViTConfig):
        super().__init__()
        self.layer_scale_1 = nn.Parameter(torch.ones(dim, 1, 1))
        self.layer_scale_2 = nn.Parameter(torch.ones(dim, 1, 1))
        self.norm = LayerNormChannel(dim, cfg.norm_eps)
        self.token_mixer = Attention(dim, cfg.head_dim)
        self.convffn = ConvFFN(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.layer_scale_1 * self.token_mixer(self.norm(x))
        return x + self.layer_scale_2 * self.convffn(x)


class SqueezeExcite(nn.Module):
    """Per-channel gate from the global mean: 1x1 conv down (1/16), ReLU, 1x1 conv up, sigmoid."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduce = nn.Conv2d(dim, dim // 16, 1)
        self.expand = nn.Conv2d(dim // 16, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        # mean over H,W == upstream's avg_pool2d with a full-map kernel, without shape-dependent args.
        gate = self.expand(torch.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class ConvExp(nn.Module):
    """Folded MobileOne block with SE: depthwise 3x3 widening conv, squeeze-excite, GELU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.se = SqueezeExcite(c_out)  # registered first to keep upstream's state-dict order
        self.reparam_conv = nn.Conv2d(c_in, c_out, 3, padding=1, groups=c_in)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.se(self.reparam_conv(x)))


class GlobalPoolHead(nn.Module):
    """Holds upstream's CLIP projection `proj` [out_dim, projection_dim]. The planner never uses it."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Parameter(torch.zeros(in_dim, out_dim))


class FastViTHD(nn.Module):
    """pixels [B,3,S,S] in [0,1] -> image embeddings [B, num_patches, out_dim].

    Inference only: the ConvFFN BatchNorms must use their running statistics, so the module is
    put in eval mode on construction; do not call `.train()`.
    """

    def __init__(self, config: FastViTConfig):
        super().__init__()
        self.config = config
        dims = config.embed_dims
        self.patch_embed = nn.Sequential(
            self.rep_conv(3, dims[0], 3, stride=2),
            self.rep_conv(dims[0], dims[0], 3, stride=2, groups=dims[0]),
            self.rep_conv(dims[0], dims[0], 1),
        )
        # One flat list, in upstream's order, so the indices in parameter names match upstream:
        # [stage 0, downsample, (RepCPE), stage 1, downsample, (RepCPE), stage 2, ...].
        network: list[nn.Module] = []
        for i, (depth, dim, mixer, pos_kernel) in enumerate(
            zip(config.layers, dims, config.token_mixers, config.pos_embs)
        ):
            if i > 0:
                network.append(self.downsample(dims[i - 1], dim, config.down_patch_size))
            if pos_kernel is not None:
                network.append(self.pos_conv(dim, pos_kernel))
            network.append(nn.Sequential(*[self.block(mixer, dim, config) for _ in range(depth)]))
        self.network = nn.ModuleList(network)
        self.conv_exp = self.widening_conv(dims[-1], config.out_dim)
        self.head = GlobalPoolHead(config.out_dim, config.projection_dim)
        self.eval()

    # The building blocks, in their folded form. The training side's train-time tower overrides
    # them with the multi-branch forms that fold into these (same module paths, same names).
    rep_conv = RepConv

    @staticmethod
    def downsample(c_in: int, c_out: int, kernel: int) -> nn.Module:
        return Downsample(c_in, c_out, kernel)

    @staticmethod
    def pos_conv(dim: int, kernel: int) -> nn.Module:
        return RepConv(dim, dim, kernel, groups=dim, act=False)  # folded RepCPE

    @staticmethod
    def block(mixer: str, dim: int, config: FastViTConfig) -> nn.Module:
        return (RepMixerBlock if mixer == "repmixer" else AttentionBlock)(dim, config)

    @staticmethod
    def widening_conv(c_in: int, c_out: int) -> nn.Module:
        return ConvExp(c_in, c_out)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.patch_embed(pixels)
        for layer in self.network:
            x = layer(x)
        x = self.conv_exp(x)  # [B, out_dim, S/64, S/64]
        return x.flatten(2).transpose(1, 2)  # [B, N, out_dim], row-major over H then W
