"""Inverse-degradation data: degrade well-exposed photos with the develop engine and learn to undo it.

Three kinds of record, one per planner mode (training uses all three):

* **auto** -- sample a plausible *degradation* slider set (kinds below), apply it to a good
  photo: input = the degraded photo, target = the original. `sliders` is the *inverse*: the
  slider set that takes the degraded photo back towards the original. It starts from the
  analytic inverse (exact for exposure and for (band) saturation's chroma factor, negation for
  the rest) and is then **fitted** by `FIT_STEPS` Adam steps through the differentiable engine
  on a small thumbnail (MSE in sRGB), over the degradation's own sliders only; the fit is kept
  only where it lowers the error. It is an approximation wherever the degradation clipped
  (over-exposure, white balance or exposure pushing a channel past 1) -- the clipped detail is
  gone -- and `inverse_fit` reports the thumbnail error before and after. `text` is a short,
  factual reasoning in the upstream section format: a problem and a plan per group (lighting,
  global colour, specific colour), naming the true exposure direction ("underexposed" /
  "overexposed") and colour-cast direction ("warm", "cool", "green", "magenta" colour cast),
  then the three retouch tokens.
* **style** -- input = the original, target = `develop(original, STYLES[name].sliders)`;
  `prompt` is one of the style's instructions, `text` the plan sections only.
* **param** -- input = the original, target = `develop(original, sliders)` for a random sparse
  slider set; `text` the plan sections only.

Degradation kinds (`KINDS`), sampled per group (light, global colour, specific colour; a record
may combine one or two kinds per group; amounts are slider values, ±100 scale):

| kind | sliders |
| --- | --- |
| underexposed / overexposed | Exposure2012 -12..-36 (-0.6..-1.8 stops) / +8..+20 (+0.4..+1 stop) |
| flat / harsh | Contrast2012 -45..-85, maybe Blacks2012 +15..+40 / Contrast2012 +45..+85, maybe Shadows2012 -20..-50 |
| warm / cool | IncrementalTemperature +35..+90 / -35..-90 |
| magenta / green | IncrementalTint +35..+90 / -35..-90 (+ tint assumes greener light, so the photo turns magenta) |
| dull / oversaturated | Saturation -20..-50 or Vibrance -40..-80 / Saturation +25..+60 or Vibrance +50..+90 |
| off_hue | HueAdjustment{band} ±50..±100, maybe SaturationAdjustment{band} ±30..±60, on a band that covers ≥ 8 % of the photo |

Sampling (`sample_kinds`): light p = 0.85 (an exposure kind p = 0.7, two thirds under; a contrast
kind p = 0.4; at least one), global colour p = 0.85 (a cast p = 0.75, a saturation kind p = 0.35,
at least one; no saturation kind on a near-monochrome photo), specific colour p = 0.35 where a band
qualifies. The problem text states the degradation that was applied; the plan text states the
fitted inverse, whose values can differ from the negated degradation where kinds interact.

Everything is deterministic by seed (record i uses `numpy.random.default_rng([seed, i])`) and
streaming: `synthesize` is a generator, `write_dataset` writes as records arrive. Photos are
resized to a working size (long side `size`, default 512) before anything else.

Data set layout written by `write_dataset` (and `vera-mobile synthesize`):

    DIR/records.jsonl    one JSON object per record (fields below), written last-to-first-safe
    DIR/originals/*.png  each source photo once, at the working size (8-bit sRGB PNG)
    DIR/images/*.png     each record's edited photo: degraded (auto) or developed (style, param)
    DIR/dataset.json     how it was made: seed, count, size, modes, photo manifest, split, counts

Record fields: id, mode, input and target (paths relative to DIR), photo ("source/file"),
source, split, size ([width, height]), sliders (input -> target; ±100 scale, param-mode names),
text, prompt (style instruction, else null), style (name or null), kinds, degradation (auto
only), directions ({"exposure": "under"|"over"|null, "cast": "warm"|"cool"|"green"|"magenta"|null}),
inverse_fit (auto only: method, steps, mse_degraded, mse_start, mse_fitted on the thumbnail), seed.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..files import write_text_atomic
from ..plan import parse_plan
from ..prompts import RETOUCH_TOKENS, SECTION_TOKENS, SLIDER_GROUPS, SLIDER_LIMIT, SLIDER_NAMES, validate_params
from .colour import linear_to_oklab, srgb_decode
from .engine import BANDS, NEUTRAL_CHROMA, band_weights, develop
from .photo import develop_pixels
from .styles import STYLES

DEFAULT_SIZE = 512
FIT_STEPS = 60
FIT_SIZE = 64  # long side of the thumbnail the inverse is fitted on
MODES = ("auto", "style", "param")
DEFAULT_MODE_WEIGHTS = {"auto": 0.6, "style": 0.2, "param": 0.2}

LIGHT_KINDS = ("underexposed", "overexposed", "flat", "harsh")
GLOBAL_KINDS = ("warm", "cool", "magenta", "green", "dull", "oversaturated")
SPECIFIC_KINDS = ("off_hue",)
KINDS = LIGHT_KINDS + GLOBAL_KINDS + SPECIFIC_KINDS
CASTS = ("warm", "cool", "magenta", "green")
BAND_MIN_COVERAGE = 0.08  # a band must cover this share of the photo (chroma-weighted) to be degraded
COLOURFUL_MIN_COVERAGE = 0.1  # below this total band coverage (a near-monochrome photo) no saturation kinds

_GROUP_KEYS = ("light", "global_color", "specific_color")
_GROUP_OF_SLIDER = {name: key for key, names in zip(_GROUP_KEYS, SLIDER_GROUPS.values()) for name in names}
_EXPOSURE_STOPS = 5.0  # Exposure2012 ±100 = ±5 stops (engine.EXPOSURE_STOPS)


# --- Photos --------------------------------------------------------------------------------------


def load_working_photo(path: str | os.PathLike, size: int = DEFAULT_SIZE) -> np.ndarray:
    """A photo as upright 8-bit sRGB (H, W, 3), resized so its long side is at most `size`."""
    from ..photo_io import load_photo

    photo = load_photo(path)
    pixels = photo.pixels if photo.pixels.dtype == np.uint8 else np.round(photo.pixels / 257.0).astype(np.uint8)
    image = Image.fromarray(pixels)
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


def sample_kind(kind: str, rng: np.random.Generator, band: str | None = None) -> dict[str, float]:
    """The degradation sliders of one kind (see the module table)."""
    if kind == "underexposed":
        return {"Exposure2012": _signed(rng, 12, 36, -1)}
    if kind == "overexposed":
        return {"Exposure2012": _signed(rng, 8, 20)}
    if kind == "flat":
        out = {"Contrast2012": _signed(rng, 45, 85, -1)}
        if rng.random() < 0.5:
            out["Blacks2012"] = _signed(rng, 15, 40)
        return out
    if kind == "harsh":
        out = {"Contrast2012": _signed(rng, 45, 85)}
        if rng.random() < 0.5:
            out["Shadows2012"] = _signed(rng, 20, 50, -1)
        return out
    if kind in ("warm", "cool"):
        return {"IncrementalTemperature": _signed(rng, 35, 90, 1 if kind == "warm" else -1)}
    if kind in ("magenta", "green"):
        return {"IncrementalTint": _signed(rng, 35, 90, 1 if kind == "magenta" else -1)}
    if kind == "dull":
        return {"Saturation": _signed(rng, 20, 50, -1)} if rng.random() < 0.5 else {"Vibrance": _signed(rng, 40, 80, -1)}
    if kind == "oversaturated":
        return {"Saturation": _signed(rng, 25, 60)} if rng.random() < 0.5 else {"Vibrance": _signed(rng, 50, 90)}
    if kind == "off_hue":
        if band not in BANDS:
            raise InputError(f"off_hue needs a colour band, one of {', '.join(BANDS)}")
        out = {f"HueAdjustment{band}": _signed(rng, 50, 100, rng.choice((-1, 1)))}
        if rng.random() < 0.5:
            out[f"SaturationAdjustment{band}"] = _signed(rng, 30, 60, rng.choice((-1, 1)))
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


# --- Reasoning text ------------------------------------------------------------------------------

_BAND_WORD = {b: b.lower() + "s" for b in BANDS}
_BAND_WORD["Aqua"] = "aquas"
_PHRASES = {
    "Contrast2012": ("add contrast", "reduce contrast"),
    "Highlights2012": ("lift the highlights", "recover the highlights"),
    "Shadows2012": ("open up the shadows", "deepen the shadows"),
    "Whites2012": ("push the whites up", "pull the whites down"),
    "Blacks2012": ("lift the blacks", "deepen the blacks"),
    "ParametricShadows": ("brighten the deepest shadows", "darken the deepest shadows"),
    "ParametricDarks": ("brighten the darks", "darken the darks"),
    "ParametricLights": ("brighten the lights", "darken the lights"),
    "ParametricHighlights": ("brighten the brightest highlights", "tone down the brightest highlights"),
    "IncrementalTemperature": ("warm the white balance", "cool the white balance"),
    "IncrementalTint": ("move the tint towards magenta", "move the tint towards green"),
    "Vibrance": ("add vibrance", "reduce vibrance"),
    "Saturation": ("increase saturation", "decrease saturation"),
}


def _slider_phrase(name: str, value: float) -> str:
    positive = value > 0
    if name == "Exposure2012":
        stops = abs(value) * _EXPOSURE_STOPS / SLIDER_LIMIT
        return f"{'raise' if positive else 'lower'} exposure by about {stops:.1f} stops"
    if name in _PHRASES:
        return _PHRASES[name][0 if positive else 1]
    kind, band = re.fullmatch(r"(Hue|Saturation|Luminance)Adjustment(\w+)", name).groups()
    word = _BAND_WORD[band]
    if kind == "Hue":
        i = BANDS.index(band)
        towards = BANDS[(i + 1) % len(BANDS)] if positive else BANDS[i - 1]
        return f"shift the {word} towards {towards.lower()}"
    if kind == "Saturation":
        return f"{'saturate' if positive else 'desaturate'} the {word}"
    return f"{'brighten' if positive else 'darken'} the {word}"


def _join(phrases: Sequence[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


_NO_CHANGE = {
    "light": "No lighting change is needed.",
    "global_color": "No global colour change is needed.",
    "specific_color": "No specific colour change is needed.",
}


def plan_sentences(sliders: Mapping[str, float]) -> dict[str, str]:
    """One plan sentence per group ('light', 'global_color', 'specific_color') naming the sliders."""
    clean = validate_params(sliders)
    out = {}
    for key in _GROUP_KEYS:
        items = [(n, v) for n, v in clean.items() if _GROUP_OF_SLIDER[n] == key and abs(v) >= 0.5]
        items.sort(key=lambda item: SLIDER_NAMES.index(item[0]))
        if not items:
            out[key] = _NO_CHANGE[key]
            continue
        phrases = _join([_slider_phrase(n, v) for n, v in items])
        values = ", ".join(f"{n} {v:+.0f}" for n, v in items)
        out[key] = f"{phrases[0].upper()}{phrases[1:]} ({values})."
    return out


def _strength(value: float) -> str:
    value = abs(value)
    return "slight" if value < 50 else "noticeable" if value < 70 else "strong"


_CAST_WORDS = {"warm": "warm (yellow-orange)", "cool": "cool (blue)", "magenta": "magenta", "green": "green"}


def problem_sentences(kinds: Sequence[str], degradation: Mapping[str, float], band: str | None) -> dict[str, str]:
    """One factual problem sentence per group from the degradation that was applied."""
    light, colour, specific = [], [], []
    for kind in kinds:
        if kind in ("underexposed", "overexposed"):
            stops = abs(degradation["Exposure2012"]) * _EXPOSURE_STOPS / SLIDER_LIMIT
            light.append(f"The photo is {kind} by about {stops:.1f} stops: "
                         + ("midtones and shadows are too dark." if kind == "underexposed"
                            else "bright areas are washed out and lose detail."))
        elif kind == "flat":
            light.append("Contrast is flat" + (" and the blacks are lifted" if "Blacks2012" in degradation else "")
                         + ", so the image looks grey and lacks depth.")
        elif kind == "harsh":
            light.append("Contrast is too harsh" + (" and the shadows are too deep" if "Shadows2012" in degradation else "")
                         + ", so tones look heavy and abrupt.")
        elif kind in CASTS:
            value = degradation["IncrementalTemperature" if kind in ("warm", "cool") else "IncrementalTint"]
            colour.append(f"There is a {_strength(value)} {_CAST_WORDS[kind]} colour cast.")
        elif kind == "dull":
            colour.append("Colours are dull and undersaturated.")
        elif kind == "oversaturated":
            colour.append("Colours are oversaturated and look garish.")
        elif kind == "off_hue":
            hue = degradation[f"HueAdjustment{band}"]
            i = BANDS.index(band)
            towards = BANDS[(i + 1) % len(BANDS)] if hue > 0 else BANDS[i - 1]
            sentence = f"The {_BAND_WORD[band]} are shifted towards {towards.lower()}"
            sat = degradation.get(f"SaturationAdjustment{band}")
            if sat:
                sentence += f" and look too {'intense' if sat > 0 else 'muted'}"
            specific.append(sentence + ".")
    return {
        "light": " ".join(light) or "Exposure and contrast are well balanced.",
        "global_color": " ".join(colour) or "White balance and overall saturation look natural.",
        "specific_color": " ".join(specific) or "Individual colours look natural.",
    }


def format_reasoning(plans: Mapping[str, str], problems: Mapping[str, str] | None = None) -> str:
    """The upstream section format: problem sections (auto only), plan sections, then the retouch tokens."""
    parts = []
    if problems is not None:
        for key, field_name in zip(_GROUP_KEYS, ("problem_light", "problem_global_color", "problem_specific_color")):
            start, end = SECTION_TOKENS[field_name]
            parts.append(f"{start}{problems[key]}{end}")
    for key, field_name in zip(_GROUP_KEYS, ("plan_light", "plan_global_color", "plan_specific_color")):
        start, end = SECTION_TOKENS[field_name]
        parts.append(f"{start}{plans[key]}{end}")
    return "\n".join(parts) + "\n" + "".join(RETOUCH_TOKENS)


_CAST_PATTERN = re.compile(r"\b(warm|cool|magenta|green)\b[^.]{0,30}?colou?r cast")


def read_directions(text: str) -> dict[str, str | None]:
    """The exposure and colour-cast directions a reasoning text names (for scoring a model's text).

    Looks in the problem sections when present, else in the whole text: "underexposed" /
    "overexposed" give exposure "under" / "over"; "<warm|cool|magenta|green> ... colour cast"
    gives the cast.
    """
    plan = parse_plan(text)
    light = (plan.problem_light if plan.problem_light is not None else text).lower()
    colour = (plan.problem_global_color if plan.problem_global_color is not None else text).lower()
    exposure = "under" if "underexposed" in light else "over" if "overexposed" in light else None
    match = _CAST_PATTERN.search(colour)
    return {"exposure": exposure, "cast": match.group(1) if match else None}


def true_directions(kinds: Sequence[str]) -> dict[str, str | None]:
    exposure = "under" if "underexposed" in kinds else "over" if "overexposed" in kinds else None
    cast = next((k for k in kinds if k in CASTS), None)
    return {"exposure": exposure, "cast": cast}


# --- Param-mode slider sets ----------------------------------------------------------------------


def sample_param_sliders(rng: np.random.Generator) -> dict[str, float]:
    """A random sparse slider set: 1-3 sliders in each of 1-3 groups, integer values."""
    groups = [g for g, p in zip(SLIDER_GROUPS.values(), (0.8, 0.7, 0.35)) if rng.random() < p]
    if not groups:
        groups = [list(SLIDER_GROUPS.values())[int(rng.integers(3))]]
    sliders: dict[str, float] = {}
    for names in groups:
        for name in rng.choice(names, size=min(len(names), int(rng.integers(1, 4))), replace=False):
            limit = (5, 30) if name == "Exposure2012" else (10, 70)
            sliders[str(name)] = _signed(rng, *limit, rng.choice((-1, 1)))
    return validate_params(sliders)


# --- Records and the generator -------------------------------------------------------------------


@dataclass
class Record:
    """One training example; `original` and `edited` are (H, W, 3) uint8 at the working size."""

    id: str
    mode: str
    photo: str
    source: str
    split: str
    original: np.ndarray
    edited: np.ndarray
    sliders: dict[str, float]
    text: str
    prompt: str | None = None
    style: str | None = None
    kinds: list[str] = field(default_factory=list)
    degradation: dict[str, float] | None = None
    directions: dict[str, str | None] = field(default_factory=lambda: {"exposure": None, "cast": None})
    inverse_fit: dict | None = None
    seed: list[int] = field(default_factory=list)

    @property
    def input(self) -> np.ndarray:
        """What the model sees: the degraded photo (auto) or the original (style, param)."""
        return self.edited if self.mode == "auto" else self.original

    @property
    def target(self) -> np.ndarray:
        """What it should produce: the original (auto) or the developed photo (style, param)."""
        return self.original if self.mode == "auto" else self.edited

    def metadata(self) -> dict:
        return {
            "id": self.id, "mode": self.mode, "photo": self.photo, "source": self.source, "split": self.split,
            "size": [int(self.original.shape[1]), int(self.original.shape[0])], "sliders": self.sliders,
            "text": self.text, "prompt": self.prompt, "style": self.style, "kinds": self.kinds,
            "degradation": self.degradation, "directions": self.directions, "inverse_fit": self.inverse_fit,
            "seed": self.seed,
        }


def make_auto_record(
    original: np.ndarray, rng: np.random.Generator, kinds: Sequence[str] | None = None,
    fit_steps: int = FIT_STEPS, **meta,
) -> Record:
    """Degrade `original` (sampled kinds, or the given ones) and fit the inverse."""
    coverage = band_coverage(original)
    band = pick_band(coverage, rng)
    if kinds is None:
        kinds = sample_kinds(rng, band_available=band is not None,
                             colourful=sum(coverage.values()) >= COLOURFUL_MIN_COVERAGE)
    elif "off_hue" in kinds and band is None:  # a near-grey photo: use its strongest band anyway
        band = max(coverage, key=coverage.get)
    degradation = degradation_for(kinds, rng, band)
    degraded = develop_uint8(original, degradation)
    inverse, info = fit_inverse(degraded, original, degradation, steps=fit_steps)
    problems = problem_sentences(kinds, degradation, band)
    text = format_reasoning(plan_sentences(inverse), problems)
    return Record(mode="auto", original=original, edited=degraded, sliders=inverse, text=text, kinds=list(kinds),
                  degradation=degradation, directions=true_directions(kinds), inverse_fit=info, **meta)


def make_style_record(original: np.ndarray, rng: np.random.Generator, style: str | None = None, **meta) -> Record:
    name = style if style is not None else str(rng.choice(list(STYLES)))
    definition = STYLES[name]
    prompt = str(rng.choice(definition.prompts))
    sliders = dict(definition.sliders)
    text = format_reasoning(plan_sentences(sliders))
    return Record(mode="style", original=original, edited=develop_uint8(original, sliders), sliders=sliders,
                  text=text, prompt=prompt, style=name, **meta)


def make_param_record(original: np.ndarray, rng: np.random.Generator, **meta) -> Record:
    sliders = sample_param_sliders(rng)
    return Record(mode="param", original=original, edited=develop_uint8(original, sliders), sliders=sliders,
                  text=format_reasoning(plan_sentences(sliders)), **meta)


def _photo_fields(photo) -> tuple[str, str, str, str]:
    """(path, id "source/file", source, split) of a PhotoEntry or a plain path."""
    if hasattr(photo, "source"):
        return photo.path, f"{photo.source}/{Path(photo.path).name}", photo.source, photo.split
    return str(photo), f"dir/{Path(photo).name}", "dir", "unknown"


def synthesize(
    photos: Sequence, count: int, seed: int = 0, size: int = DEFAULT_SIZE,
    modes: Mapping[str, float] | Sequence[str] = DEFAULT_MODE_WEIGHTS, fit_steps: int = FIT_STEPS,
) -> Iterator[Record]:
    """Yield `count` records, deterministic by `seed`. `photos`: PhotoEntry items (see
    vera_mobile.data.photos.load_manifest) or paths. Photos are visited in a seeded shuffled
    order, epoch by epoch, so each is used about equally often; `modes` gives each mode's weight.
    """
    if count < 0:
        raise InputError("count must be >= 0")
    if not photos:
        raise InputError("no photos to synthesize from")
    weights = dict(modes) if isinstance(modes, Mapping) else {m: 1.0 for m in modes}
    unknown = [m for m in weights if m not in MODES]
    if unknown or not weights or sum(weights.values()) <= 0:
        raise InputError(f"modes must be a non-empty subset of {', '.join(MODES)}, got {list(weights)}")
    mode_names = list(weights)
    probabilities = np.array([weights[m] for m in mode_names], dtype=float)
    probabilities /= probabilities.sum()
    photos = list(photos)
    load = lru_cache(maxsize=None)(lambda path: load_working_photo(path, size))
    order: list[int] = []
    for index in range(count):
        while len(order) <= index:  # one seeded permutation per epoch
            epoch = len(order) // len(photos)
            order.extend(np.random.default_rng([seed, 1_000_003, epoch]).permutation(len(photos)).tolist())
        path, photo_id, source, split = _photo_fields(photos[order[index]])
        rng = np.random.default_rng([seed, index])
        mode = mode_names[int(rng.choice(len(mode_names), p=probabilities))]
        meta = dict(id=f"{index:06d}", photo=photo_id, source=source, split=split, seed=[seed, index])
        original = load(path)
        if mode == "auto":
            yield make_auto_record(original, rng, fit_steps=fit_steps, **meta)
        elif mode == "style":
            yield make_style_record(original, rng, **meta)
        else:
            yield make_param_record(original, rng, **meta)


# --- Writer --------------------------------------------------------------------------------------


def _save_png(pixels: np.ndarray, path: Path) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(pixels).save(temp, format="PNG", compress_level=3)
    os.replace(temp, path)


def write_dataset(
    records: Iterable[Record], out_dir: str | os.PathLike, total: int | None = None, progress: bool = True,
    info: Mapping | None = None,
) -> Path:
    """Write records as they arrive (layout in the module docstring); returns DIR/records.jsonl.

    records.jsonl appears only when every record is written (it is built as a hidden partial
    file and renamed), so an interrupted run never looks complete. Refuses a DIR that already
    holds a records.jsonl.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    final = out / "records.jsonl"
    if final.exists():
        raise InputError(f"{final} already exists; choose a new --out directory")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "originals").mkdir(parents=True, exist_ok=True)
    partial = out / ".records.jsonl.partial"
    saved: set[str] = set()
    counts: dict[str, int] = {}
    with partial.open("w", encoding="utf-8") as file:
        for record in tqdm(records, total=total, desc="synthesize", unit="rec", disable=not progress):
            key = re.sub(r"[^A-Za-z0-9._-]+", "_", record.photo.rsplit(".", 1)[0])
            original = f"originals/{key}_{record.original.shape[1]}x{record.original.shape[0]}.png"
            if original not in saved:
                _save_png(record.original, out / original)
                saved.add(original)
            edited = f"images/{record.id}.png"
            _save_png(record.edited, out / edited)
            row = record.metadata()
            row["input"], row["target"] = (edited, original) if record.mode == "auto" else (original, edited)
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[record.mode] = counts.get(record.mode, 0) + 1
    os.replace(partial, final)
    summary = {"format": "vera-mobile synthesized data v1", "records": sum(counts.values()), "modes": counts,
               "originals": len(saved), **(dict(info) if info else {})}
    write_text_atomic(out / "dataset.json", json.dumps(summary, indent=1) + "\n")
    return final


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of DIR/records.jsonl (or the file itself), with input/target made absolute."""
    path = Path(path)
    file = path / "records.jsonl" if path.is_dir() else path
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["input"], row["target"] = str(file.parent / row["input"]), str(file.parent / row["target"])
    return rows
