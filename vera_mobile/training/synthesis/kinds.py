"""Degradation kinds and how they are sampled; the photo helpers they need (working size, develop).

See the package docstring (vera_mobile/training/synthesis/__init__.py) for the table of kinds.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from ...develop.colour import linear_to_oklab, srgb_decode
from ...develop.engine import BANDS, NEUTRAL_CHROMA, band_weights
from ...develop.photo import develop_pixels
from ...errors import InputError
from ...prompts import validate_params

DEFAULT_SIZE = 512
FIT_STEPS = 60
FIT_SIZE = 64  # long side of the thumbnail the inverse is fitted on
LIGHT_KINDS = ("underexposed", "overexposed", "flat", "harsh")
GLOBAL_KINDS = ("warm", "cool", "magenta", "green", "dull", "oversaturated")
SPECIFIC_KINDS = ("off_hue",)
KINDS = LIGHT_KINDS + GLOBAL_KINDS + SPECIFIC_KINDS
CASTS = ("warm", "cool", "magenta", "green")
# Cast slider amounts (IncrementalTemperature / IncrementalTint), never mild: a weaker cast is
# smaller than the photos' own colour spread and cannot be read from the photo (RESULTS.md,
# "Why the colour cast is missed").
CAST_RANGE = (60, 100)
TEMPERATURE, TINT = "IncrementalTemperature", "IncrementalTint"  # the white-balance sliders a cast moves
_PROBE = sum(CAST_RANGE) // 2
# One clear shift per cast direction, the middle of CAST_RANGE: the probes of the cast-sensitivity checks.
CAST_PROBES = {"warm": {TEMPERATURE: _PROBE}, "cool": {TEMPERATURE: -_PROBE},
               "magenta": {TINT: _PROBE}, "green": {TINT: -_PROBE}}
BAND_MIN_COVERAGE = 0.08  # a band must cover this share of the photo (chroma-weighted) to be degraded
MILD_SHARE = 0.3  # share of degradation amounts drawn below each kind's range (down to half its low end)
COLOURFUL_MIN_COVERAGE = 0.1  # below this total band coverage (a near-monochrome photo) no saturation kinds
# --- Photos --------------------------------------------------------------------------------------


def load_working_photo(path: str | os.PathLike, size: int = DEFAULT_SIZE) -> np.ndarray:
    """A photo as upright 8-bit sRGB (H, W, 3), resized so its long side is at most `size`."""
    from ...photo_io import load_photo, to_8bit

    image = Image.fromarray(to_8bit(load_photo(path).pixels))
    if max(image.size) > size:
        scale = size / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)  # load_photo has already turned it upright and into sRGB


def _to_float(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)


def develop_uint8(pixels: np.ndarray, sliders: Mapping[str, float]) -> np.ndarray:
    """Exact develop of 8-bit pixels, as `vera-mobile develop --render exact` does (develop_pixels)."""
    return develop_pixels(pixels, dict(sliders))


def band_coverage(pixels: np.ndarray) -> dict[str, float]:
    """Share of the photo in each colour band, weighted as the per-band sliders weight it."""
    lab = linear_to_oklab(srgb_decode(_to_float(_thumbnail(pixels, 96)).double()))
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    hue = torch.rad2deg(torch.atan2(lab[..., 2], lab[..., 1]))
    weights = band_weights(hue) * (chroma**2 / (chroma**2 + NEUTRAL_CHROMA**2))[..., None]
    share = weights.reshape(-1, len(BANDS)).mean(0).numpy()
    return {band: float(s) for band, s in zip(BANDS, share)}


def _thumbnail(pixels: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(pixels)
    if max(image.size) > size:
        scale = size / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BOX)
    return np.asarray(image)


# --- Degradations --------------------------------------------------------------------------------


def _signed(rng: np.random.Generator, low: float, high: float, sign: float = 1.0) -> float:
    return float(sign * round(rng.uniform(low, high)))


def _amount(rng: np.random.Generator, low: float, high: float, sign: float = 1.0) -> float:
    """A degradation amount: usually in [low, high]; with MILD_SHARE, a mild one in [low / 2, low]."""
    if rng.random() < MILD_SHARE:
        low, high = low / 2, low
    return _signed(rng, low, high, sign)


def sample_kind(kind: str, rng: np.random.Generator, band: str | None = None) -> dict[str, float]:
    """The degradation sliders of one kind (see the module table)."""
    if kind == "underexposed":
        return {"Exposure2012": _amount(rng, 12, 36, -1)}
    if kind == "overexposed":
        return {"Exposure2012": _amount(rng, 8, 20)}
    if kind == "flat":
        out = {"Contrast2012": _amount(rng, 45, 85, -1)}
        if rng.random() < 0.5:
            out["Blacks2012"] = _amount(rng, 15, 40)
        return out
    if kind == "harsh":
        out = {"Contrast2012": _amount(rng, 45, 85)}
        if rng.random() < 0.5:
            out["Shadows2012"] = _amount(rng, 20, 50, -1)
        return out
    if kind in ("warm", "cool"):
        return {TEMPERATURE: _signed(rng, *CAST_RANGE, 1 if kind == "warm" else -1)}
    if kind in ("magenta", "green"):
        return {TINT: _signed(rng, *CAST_RANGE, 1 if kind == "magenta" else -1)}
    if kind == "dull":
        return {"Saturation": _amount(rng, 20, 50, -1)} if rng.random() < 0.5 else {"Vibrance": _amount(rng, 40, 80, -1)}
    if kind == "oversaturated":
        return {"Saturation": _amount(rng, 25, 60)} if rng.random() < 0.5 else {"Vibrance": _amount(rng, 50, 90)}
    if kind == "off_hue":
        if band not in BANDS:
            raise InputError(f"off_hue needs a colour band, one of {', '.join(BANDS)}")
        out = {f"HueAdjustment{band}": _amount(rng, 50, 100, rng.choice((-1, 1)))}
        if rng.random() < 0.5:
            out[f"SaturationAdjustment{band}"] = _amount(rng, 30, 60, rng.choice((-1, 1)))
        return out
    raise InputError(f"unknown degradation kind {kind!r}; choose from {', '.join(KINDS)}")


def pick_band(coverage: Mapping[str, float], rng: np.random.Generator) -> str | None:
    """A colour band covering at least BAND_MIN_COVERAGE of the photo, chosen in proportion to coverage."""
    bands = [b for b in BANDS if coverage.get(b, 0.0) >= BAND_MIN_COVERAGE]
    if not bands:
        return None
    weights = np.array([coverage[b] for b in bands])
    return str(bands[rng.choice(len(bands), p=weights / weights.sum())])


def sample_kinds(rng: np.random.Generator, band_available: bool = True, colourful: bool = True) -> list[str]:
    """A plausible combination: at most one exposure and one contrast problem, one cast, one saturation problem.

    A near-monochrome photo (`colourful` False) gets no dull / oversaturated kind: it would not show.
    """
    kinds: list[str] = []
    if rng.random() < 0.85:
        exposure, tone = rng.random() < 0.7, rng.random() < 0.4
        if not (exposure or tone):
            exposure = True
        if exposure:
            kinds.append("underexposed" if rng.random() < 0.65 else "overexposed")
        if tone:
            kinds.append(str(rng.choice(("flat", "harsh"))))
    if rng.random() < 0.85:
        cast, saturation = rng.random() < 0.75, rng.random() < 0.35 and colourful
        if not (cast or saturation):
            cast = True
        if cast:
            kinds.append(str(rng.choice(CASTS)))
        if saturation:
            kinds.append(str(rng.choice(("dull", "oversaturated"))))
    if band_available and rng.random() < 0.35:
        kinds.append("off_hue")
    if not kinds:
        kinds.append(str(rng.choice(LIGHT_KINDS + CASTS)))
    return kinds


def degradation_for(kinds: Sequence[str], rng: np.random.Generator, band: str | None = None) -> dict[str, float]:
    sliders: dict[str, float] = {}
    for kind in kinds:
        sliders.update(sample_kind(kind, rng, band))
    return validate_params(sliders)
