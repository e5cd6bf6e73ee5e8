"""4-bit weight scales chosen by search instead of min/max rounding.

A group-wise symmetric int4 weight is `scale * q` with q in [-8, 7], one positive scale per group
of input channels (the form XNNPACK's blockwise kernels take: it rejects negative scales, and has
no zero points). Min/max rounding (torchao's symmetric rule) sets `scale = max|w| / 7.5`, which spends the grid on the one
largest weight of each group. Here each group's scale is the one, among candidates from
`max|w| / 8.4` to `max|w| / 5.25` and the min/max one, that minimises the squared error of the group weighted by the
mean square of the input channel it multiplies (measured on calibration inputs): an error on a
channel that is usually near zero costs the layer's output little. This is the diagonal-Hessian
approximation of the output error GPTQ and AWQ work with, restricted to the choice of scales, so
the quantized values stay on the ordinary grid and lower like any other 8da4w linear.
Measured on SmolLM2-135M (benchmarks/RESULTS.md, "4-bit scales").

Without calibration inputs (the token embedding: a lookup table, every column read alike) the
weighting is uniform.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

INT4_MIN, INT4_MAX = -8, 7
MINMAX_DIVISOR = 7.5  # torchao's symmetric rule: scale = max|w| / ((INT4_MAX - INT4_MIN) / 2)
# Candidate scales are max|w| / (7 * t) for t on this grid: from a coarse grid that never clips
# (t = 0.75) to one that clips the group's largest weight (t = 1.2).
_SEARCH = torch.linspace(0.75, 1.2, 24).tolist()
_ROWS_PER_CHUNK = 8192  # bounds the search's working memory on a 151,936-row vocabulary matrix


@torch.no_grad()
def input_power(language_model: nn.Module, calibration: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean square of every input channel of every `nn.Linear`, over the calibration inputs.

    `calibration` holds input-embedding sequences [T, H] of the causal LM (each run as one
    sequence); the keys are the linears' qualified names in `language_model`.
    """
    sums: dict[str, torch.Tensor] = {}
    count = 0

    def hook(name: str):
        def accumulate(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[name] = sums.get(name, 0) + (x * x).sum(0)

        return accumulate

    handles = [module.register_forward_hook(hook(name)) for name, module in language_model.named_modules()
               if isinstance(module, nn.Linear)]
    try:
        for embeds in calibration:
            language_model(inputs_embeds=embeds[None].to(language_model.dtype))
            count += embeds.shape[0]
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / count).float() for name, total in sums.items()}


def _weighted_error(w: torch.Tensor, scale: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    rounded = torch.clamp(torch.round(w / scale), INT4_MIN, INT4_MAX) * scale
    return (importance * (rounded - w) ** 2).sum(-1, keepdim=True)


@torch.no_grad()
def search_scales(weight: torch.Tensor, group_size: int, power: torch.Tensor | None = None) -> torch.Tensor:
    """The per-group int4 scales [rows, columns / group_size] with the least weighted squared error."""
    rows, columns = weight.shape
    groups = columns // group_size
    importance = (torch.ones(columns) if power is None else power.clamp_min(1e-12)).reshape(1, groups, group_size)
    scales = torch.empty(rows, groups)
    for start in range(0, rows, _ROWS_PER_CHUNK):
        w = weight[start : start + _ROWS_PER_CHUNK].float().reshape(-1, groups, group_size)
        largest = w.abs().amax(-1, keepdim=True).clamp_min(1e-12)
        best_scale = largest / MINMAX_DIVISOR  # min/max rounding is a candidate too: never worse than it
        best_error = _weighted_error(w, best_scale, importance)
        for t in _SEARCH:
            scale = largest / (7 * t)
            error = _weighted_error(w, scale, importance)
            better = error < best_error
            best_error = torch.where(better, error, best_error)
            best_scale = torch.where(better, scale, best_scale)
        scales[start : start + len(w)] = best_scale[..., 0]
    return scales
