"""The inverse of a degradation: analytic start, then fitted through the differentiable engine."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Mapping

import numpy as np
import torch

from ...develop.engine import develop
from ...prompts import SLIDER_LIMIT, SLIDER_NAMES, validate_params
from .kinds import _thumbnail, _to_float

FIT_STEPS = 60
FIT_SIZE = 64  # long side of the thumbnail the inverse is fitted on

# --- Inverse -------------------------------------------------------------------------------------


def analytic_inverse(degradation: Mapping[str, float]) -> dict[str, float]:
    """Exact for exposure and for (band) saturation's chroma factor (1 + a -> 1 / (1 + a)); negation otherwise."""
    out = {}
    for name, value in validate_params(degradation).items():
        if name == "Saturation" or name.startswith("SaturationAdjustment"):
            a = value / SLIDER_LIMIT
            value = -SLIDER_LIMIT * a / (1 + a) if a > -1 else SLIDER_LIMIT
        else:
            value = -value
        out[name] = float(np.clip(value, -SLIDER_LIMIT, SLIDER_LIMIT))
    return out


@contextmanager
def _torch_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_inverse(
    degraded: np.ndarray, original: np.ndarray, degradation: Mapping[str, float],
    steps: int = FIT_STEPS, size: int = FIT_SIZE,
) -> tuple[dict[str, float], dict]:
    """The inverse slider set: analytic start, then Adam through the engine on the degradation's sliders.

    Returns (sliders rounded to 0.1, info). The fitted set is kept only if it beats the start.
    """
    start = analytic_inverse(degradation)
    names = [n for n in SLIDER_NAMES if n in start]
    src = _to_float(_thumbnail(degraded, size)).double()
    dst = _to_float(_thumbnail(original, size)).double()
    index = torch.tensor([SLIDER_NAMES.index(n) for n in names])
    mse_degraded = float(torch.mean((src - dst) ** 2))

    def loss_of(values: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(len(SLIDER_NAMES), dtype=torch.float64).index_copy(0, index, values)
        return torch.mean((develop(src, full) - dst) ** 2)

    init = torch.tensor([start[n] for n in names], dtype=torch.float64)
    with _torch_threads(1):  # a thumbnail is too small to split across threads: one is several times faster
        sliders, info = _fit(loss_of, names, init, steps, size)
    return sliders, {**info, "mse_degraded": mse_degraded}


def _fit(loss_of, names: list[str], init: torch.Tensor, steps: int, size: int) -> tuple[dict[str, float], dict]:
    with torch.no_grad():
        mse_start = float(loss_of(init))
    best, best_loss = init.clone(), mse_start
    values = init.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([values], lr=4.0)
    for step in range(steps):
        for group in optimiser.param_groups:  # cosine decay 4 -> 0.2 slider units
            group["lr"] = 0.2 + 3.8 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        optimiser.zero_grad()
        loss = loss_of(values.clamp(-SLIDER_LIMIT, SLIDER_LIMIT))
        if float(loss.detach()) < best_loss:
            best, best_loss = values.detach().clamp(-SLIDER_LIMIT, SLIDER_LIMIT).clone(), float(loss.detach())
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = values.clamp(-SLIDER_LIMIT, SLIDER_LIMIT)
        final_loss = float(loss_of(final))
    if final_loss < best_loss:
        best, best_loss = final.clone(), final_loss
    rounded = {n: round(float(v), 1) for n, v in zip(names, best)}
    rounded = {n: v for n, v in rounded.items() if v != 0}
    info = {"method": "analytic start + Adam through the engine" if steps else "analytic",
            "steps": steps, "thumbnail": size, "mse_start": mse_start, "mse_fitted": best_loss}
    return rounded, info
