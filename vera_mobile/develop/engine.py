"""The develop engine: the 38 param-mode sliders as pure, differentiable, batched PyTorch operators.

Formulas and scales are documented once, in the `vera_mobile.develop` package docstring.
"""

from __future__ import annotations

import math
from typing import Mapping, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..prompts import SLIDER_GROUPS, SLIDER_LIMIT, SLIDER_NAMES, validate_params
from .colour import (
    D65_CCT,
    adaptation_matrix,
    linear_to_oklab,
    oklab_to_linear,
    source_white_xy,
    srgb_decode,
    srgb_encode,
)

Sliders = Union[Mapping[str, object], Tensor]

_INDEX = {name: i for i, name in enumerate(SLIDER_NAMES)}

# --- Scales: what ±100 means for each operator (the package docstring's table) ---------------------

EXPOSURE_STOPS = 5.0  # Lightroom's Exposure2012 range is ±5 stops; ±100 spans it
TEMPERATURE_MIRED = 75.0  # ±100 moves the assumed illuminant ∓75 mired: 12 700 K .. 4 370 K
TINT_DUV = 0.02  # ±100 moves the assumed illuminant ±0.02 Duv (green side for +, so the photo turns magenta)
CONTRAST_STRENGTH = 0.75  # S-curve slope 1.75 at mid-grey, 0.25 at the ends, at +100
REGION_STRENGTH = 0.75  # a tone region's curve slope stays within 1 ± 0.75
ENDPOINT_SHIFT = 0.2  # Whites / Blacks move the white / black point by ±0.2 (encoded) at ±100
BAND_LUMINANCE_STOPS = 1.0  # per-band luminance: ±1 stop on that band's colours at ±100
HUE_SHIFT_FRACTION = 0.3  # per-band hue: ±0.3 x the narrower gap to a neighbour band, so hue order is kept

# Tone regions on the sRGB-encoded axis: (centre, half width) of a raised-cosine bump.
TONE_REGIONS = {
    "Highlights2012": (0.7, 0.3),
    "Shadows2012": (0.3, 0.3),
    "ParametricShadows": (0.15, 0.15),
    "ParametricDarks": (0.375, 0.25),
    "ParametricLights": (0.625, 0.25),
    "ParametricHighlights": (0.85, 0.15),
}
VIBRANCE_CHROMA = 0.1  # OKLab chroma at which vibrance acts at half strength
VIBRANCE_SKIN_PROTECTION = 0.5  # vibrance is halved on the Orange (skin) band
NEUTRAL_CHROMA = 0.04  # OKLab chroma at which hue-dependent edits reach half strength (greys: none)

# --- Colour bands: centres are the OKLab hues of the sRGB colours that name them --------------------

BANDS = tuple(name.removeprefix("HueAdjustment") for name in SLIDER_NAMES if name.startswith("HueAdjustment"))
BAND_COLOURS = {
    "Red": (1.0, 0.0, 0.0), "Orange": (1.0, 0.5, 0.0), "Yellow": (1.0, 1.0, 0.0), "Green": (0.0, 1.0, 0.0),
    "Aqua": (0.0, 1.0, 1.0), "Blue": (0.0, 0.0, 1.0), "Purple": (0.5, 0.0, 1.0), "Magenta": (1.0, 0.0, 1.0),
}
assert tuple(BAND_COLOURS) == BANDS, "band colours must follow the slider order in prompts.py"


def _band_geometry() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band centres (degrees, increasing) and the gaps to the previous and next centre."""
    lab = linear_to_oklab(srgb_decode(torch.tensor(list(BAND_COLOURS.values()), dtype=torch.float64)))
    centres = np.degrees(np.arctan2(lab[:, 2].numpy(), lab[:, 1].numpy())) % 360
    assert np.all(np.diff(centres) > 0), "band hues must increase around the circle in slider order"
    after = (np.roll(centres, -1) - centres) % 360
    return centres, np.roll(after, 1), after


BAND_HUES, _GAP_BEFORE, _GAP_AFTER = _band_geometry()
BAND_HUE_SHIFT = HUE_SHIFT_FRACTION * np.minimum(_GAP_BEFORE, _GAP_AFTER)  # degrees at ±100


# --- Sliders -------------------------------------------------------------------------------------


def slider_tensor(params: Mapping[str, object], dtype: torch.dtype = torch.float32) -> Tensor:
    """A validated slider set as a [38] tensor in SLIDER_NAMES order, ±100 scale, missing = 0."""
    clean = validate_params(params)
    return torch.tensor([clean.get(name, 0.0) for name in SLIDER_NAMES], dtype=dtype)


def _check_slider_tensor(sliders: Tensor, rgb: Tensor) -> None:
    if sliders.shape[-1:] != (len(SLIDER_NAMES),) or sliders.ndim > 2:
        raise InputError(f"a slider tensor must be [{len(SLIDER_NAMES)}] or [B, {len(SLIDER_NAMES)}], got {tuple(sliders.shape)}")
    if sliders.ndim == 2 and (rgb.ndim < 3 or rgb.shape[0] != sliders.shape[0]):
        raise InputError(f"[B, {len(SLIDER_NAMES)}] sliders need rgb of shape [B, ..., 3] with the same B")
    values = sliders.detach()
    if not torch.isfinite(values).all():
        raise InputError("slider values must be finite")
    if (values.abs() > SLIDER_LIMIT).any():
        raise InputError("slider values must lie within -100 .. 100")


# --- Operators (amounts are slider / 100, in [-1, 1]) ----------------------------------------------


def white_balance(linear: Tensor, temperature: Tensor, tint: Tensor) -> Tensor:
    """Von Kries (Bradford) adaptation from the slider-chosen illuminant to D65, in linear sRGB."""
    mired = 1e6 / D65_CCT - TEMPERATURE_MIRED * temperature.double()
    source = source_white_xy(1e6 / mired, TINT_DUV * tint.double())
    matrix = adaptation_matrix(source).to(linear.dtype)
    return (matrix @ linear[..., None])[..., 0]


def exposure(linear: Tensor, amount: Tensor) -> Tensor:
    """Scale linear light by 2**stops."""
    return linear * torch.exp2(EXPOSURE_STOPS * amount)[..., None]


def contrast(x: Tensor, amount: Tensor) -> Tensor:
    """S-curve about mid-grey (0.5 encoded) with fixed end points; monotone for |amount| <= 1."""
    k = (CONTRAST_STRENGTH * amount)[..., None]
    return x - k * torch.sin(2 * math.pi * x) / (2 * math.pi)


def tone_region(x: Tensor, amount: Tensor, centre: float, half_width: float) -> Tensor:
    """Lift (amount > 0) or lower one tonal region with a raised-cosine bump; monotone, ends fixed."""
    offset = (x - centre) / half_width
    bump = torch.where(offset.abs() < 1, torch.cos(0.5 * math.pi * offset) ** 2, torch.zeros_like(x))
    # Peak shift = strength * 2h/pi keeps the bump's slope within ±strength.
    peak = REGION_STRENGTH * 2 * half_width / math.pi
    return x + (peak * amount)[..., None] * bump


def whites(x: Tensor, amount: Tensor) -> Tensor:
    """Move the white point (1 -> 1 ± 0.2, clipped later), fading to nothing at black."""
    return x + (ENDPOINT_SHIFT * amount)[..., None] * x**4


def blacks(x: Tensor, amount: Tensor) -> Tensor:
    """Move the black point (0 -> ±0.2, clipped later), fading to nothing at white."""
    return x + (ENDPOINT_SHIFT * amount)[..., None] * (1 - x) ** 4


def band_weights(hue_degrees: Tensor) -> Tensor:
    """[..., 8] raised-cosine memberships of the 8 colour bands; they sum to 1 at every hue.

    Between two neighbouring centres the weights are cos² and sin² of the same ramp, so each
    band fades from 1 at its centre to 0 at its neighbours' centres, with a continuous slope.
    """
    centres, before, after = (torch.as_tensor(a, dtype=hue_degrees.dtype, device=hue_degrees.device)
                              for a in (BAND_HUES, _GAP_BEFORE, _GAP_AFTER))
    offset = torch.remainder(hue_degrees[..., None] - centres + 180, 360) - 180
    gap = torch.where(offset >= 0, after, before)
    ramp = (offset / gap).clamp(-1, 1)
    return torch.cos(0.5 * math.pi * ramp) ** 2


def colour_adjust(lab: Tensor, vibrance: Tensor, saturation: Tensor, hue_bands: Tensor,
                  saturation_bands: Tensor, luminance_bands: Tensor) -> Tensor:
    """Saturation, vibrance and per-band hue/saturation/luminance on OKLab colours.

    All factors are computed from the colour entering this stage. `*_bands` are [..., 8] amounts.
    """
    a, b = lab[..., 1], lab[..., 2]
    chroma = torch.sqrt(a * a + b * b + 1e-12)  # the epsilon keeps sqrt's gradient finite at grey
    # atan2's gradient is 0/0 at the origin; the hue of a grey only ever meets a zero-chroma factor.
    hue = torch.rad2deg(torch.atan2(b, torch.where(chroma < 1e-6, torch.full_like(a, 1e-6), a)))
    # A near-grey colour's hue jumps with tiny RGB changes, so hue-dependent edits fade in with
    # chroma: the map stays smooth across the grey axis (and so interpolates well in a LUT).
    weights = band_weights(hue) * (chroma**2 / (chroma**2 + NEUTRAL_CHROMA**2))[..., None]
    skin = weights[..., BANDS.index("Orange")]

    vibrance_gain = 1 + vibrance * (1 - VIBRANCE_SKIN_PROTECTION * skin) / (1 + (chroma / VIBRANCE_CHROMA) ** 2)
    band_gain = 1 + (saturation_bands * weights).sum(-1)
    chroma_gain = (1 + saturation) * vibrance_gain * band_gain

    shift = torch.as_tensor(np.radians(BAND_HUE_SHIFT), dtype=lab.dtype, device=lab.device)
    angle = (hue_bands * shift * weights).sum(-1)
    cos, sin = torch.cos(angle) * chroma_gain, torch.sin(angle) * chroma_gain
    a, b = a * cos - b * sin, a * sin + b * cos

    # Scaling all of OKLab by k scales linear RGB by k**3, so k = 2**(stops/3) is an exposure of
    # that band's colours.
    stops = BAND_LUMINANCE_STOPS * (luminance_bands * weights).sum(-1)
    scale = torch.exp2(stops / 3)
    return torch.stack([lab[..., 0], a, b], dim=-1) * scale[..., None]


# --- The pipeline --------------------------------------------------------------------------------

_WB = ("IncrementalTemperature", "IncrementalTint")
_TONE = ("Contrast2012", *TONE_REGIONS, "Whites2012", "Blacks2012")
_COLOUR = ("Vibrance", "Saturation", *SLIDER_GROUPS["Specific Color Adjustment"])


def develop(rgb: Tensor, sliders: Sliders) -> Tensor:
    """Apply a slider set to sRGB-encoded float RGB in [0, 1], channels last: [..., 3] -> [..., 3].

    `sliders` is a param-mode mapping (validated like param mode) or a ±100-scale tensor in
    SLIDER_NAMES order: [38] for every image, or [B, 38] for rgb of shape [B, ..., 3]. Gradients
    flow to rgb and to a slider tensor. Stages whose sliders are all zero are skipped unless the
    sliders need gradients, so all-zero sliders return the input exactly.
    """
    if not torch.is_tensor(rgb) or not rgb.is_floating_point() or rgb.shape[-1:] != (3,):
        raise InputError(f"rgb must be a float tensor of shape [..., 3], got {getattr(rgb, 'shape', type(rgb))}")
    if not torch.is_tensor(sliders):
        sliders = slider_tensor(sliders)
    _check_slider_tensor(sliders, rgb)
    amounts = sliders.to(rgb.dtype) / SLIDER_LIMIT
    if amounts.ndim == 2:  # [B, 38] -> [B, 1, ..., 1, 38] so each image gets its own row
        amounts = amounts.reshape(amounts.shape[0], *([1] * (rgb.ndim - 2)), amounts.shape[1])
    keep_all = amounts.requires_grad

    def active(names: tuple[str, ...]) -> bool:
        return keep_all or bool(amounts[..., [_INDEX[n] for n in names]].detach().ne(0).any())

    def amount(name: str) -> Tensor:
        return amounts[..., _INDEX[name]]

    out = rgb.clamp(0, 1)
    if active(_WB + ("Exposure2012",)):
        linear = srgb_decode(out)
        if active(_WB):
            linear = white_balance(linear, amount("IncrementalTemperature"), amount("IncrementalTint"))
        if active(("Exposure2012",)):
            linear = exposure(linear, amount("Exposure2012"))
        out = srgb_encode(linear.clamp(0, 1))
    if active(_TONE):
        out = contrast(out, amount("Contrast2012"))
        for name, (centre, half_width) in TONE_REGIONS.items():
            out = tone_region(out, amount(name), centre, half_width)
        out = blacks(whites(out, amount("Whites2012")), amount("Blacks2012")).clamp(0, 1)
    if active(_COLOUR):
        def bands(kind: str) -> Tensor:
            return amounts[..., [_INDEX[f"{kind}Adjustment{band}"] for band in BANDS]]

        lab = linear_to_oklab(srgb_decode(out))
        lab = colour_adjust(lab, amount("Vibrance"), amount("Saturation"),
                            bands("Hue"), bands("Saturation"), bands("Luminance"))
        out = srgb_encode(oklab_to_linear(lab).clamp(0, 1))
    return out
