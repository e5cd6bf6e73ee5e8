"""Initialise the folded FastViT for training from scratch, so that the photo reaches the decoder.

The planner's vision tower is FastViT in its *inference* layout: every multi-branch block is a
single conv and most BatchNorms are folded away. With PyTorch's default conv initialisation that
stack shrinks the signal ~10x per stage (measured: image-to-image variation of the tower's output
~1e-9 of its mean), so no gradient reaches the early layers and the decoder learns to ignore the
photo. Two fixes, both only at initialisation:

* blocks whose trained form contains a residual (RepMixer token mixers, RepCPE) start as the
  identity plus a small kernel, and residual branches start scaled by 0.1;
* every other conv is scaled, in forward order, so its output has unit standard deviation on a
  batch of real training views (data-dependent "LSUV" initialisation).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import fastvit

RESIDUAL_SCALE = 0.1


def _identity_plus(conv: nn.Conv2d) -> None:
    """Depthwise conv → identity + 10 % of its random kernel (the folded residual of RepMixer/RepCPE)."""
    with torch.no_grad():
        conv.weight.mul_(0.1)
        conv.weight[:, 0, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] += 1.0
        if conv.bias is not None:
            conv.bias.zero_()


@torch.no_grad()
def init_vision_tower(tower: fastvit.FastViTHD, views: torch.Tensor) -> None:
    """Re-initialise `tower` in place; `views` is a batch of planner views [B, 3, S, S] in [0, 1]."""
    identity_convs = []
    for module in tower.modules():
        if isinstance(module, fastvit.RepMixerBlock):
            identity_convs.append(module.token_mixer.reparam_conv)
            module.layer_scale.fill_(RESIDUAL_SCALE)
        elif isinstance(module, fastvit.AttentionBlock):
            module.layer_scale_1.fill_(RESIDUAL_SCALE)
            module.layer_scale_2.fill_(RESIDUAL_SCALE)
    identity_convs += [layer.reparam_conv for layer in tower.network
                       if isinstance(layer, fastvit.RepConv) and not isinstance(layer.act, nn.GELU)]
    for conv in identity_convs:
        _identity_plus(conv)

    # The convs in the order the forward pass runs them.
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in tower.modules() if isinstance(m, nn.Conv2d)]
    tower(views)
    for hook in hooks:
        hook.remove()
    for conv in order:
        if any(conv is c for c in identity_convs) or conv.out_channels < conv.in_channels // 4:
            continue  # identity blocks keep their scale; squeeze-excite's reduce conv is a gate, not a path
        outputs: list[torch.Tensor] = []
        hook = conv.register_forward_hook(lambda m, i, o: outputs.append(o))
        tower(views)
        hook.remove()
        conv.weight.div_(outputs[0].std().clamp_min(1e-6))
        if conv.bias is not None:
            conv.bias.zero_()
