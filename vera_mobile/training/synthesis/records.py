"""Records (one training example each) and the seeded generator that makes them from photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from ...develop.styles import STYLES
from ...errors import InputError
from ...prompts import SLIDER_GROUPS, validate_params
from ..recipe import CLEAN_SHARE, WB_JITTER
from .inverse import FIT_STEPS, fit_inverse
from .kinds import (CAST_RANGE, COLOURFUL_MIN_COVERAGE, DEFAULT_SIZE, TEMPERATURE, TINT, _signed, band_coverage,
                    degradation_for, develop_uint8, load_working_photo, pick_band, sample_kinds)
from .reasoning import format_reasoning, plan_sentences, problem_sentences, true_directions

MODES = ("auto", "style", "param")
_JITTER_STREAM = 7  # third seed word of the white-balance jitter's generator
DEFAULT_MODE_WEIGHTS = {"auto": 0.6, "style": 0.2, "param": 0.2}

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
    wb_jitter: dict[str, float] | None = None  # the white balance given to the original first, if any

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
            "seed": self.seed, "wb_jitter": self.wb_jitter,
        }


def make_clean_record(original: np.ndarray, **meta) -> Record:
    """An auto record of a photo that needs nothing: the answer is "no problem, no change"."""
    text = format_reasoning(plan_sentences({}), problem_sentences([], {}, None))
    return Record(mode="auto", original=original, edited=original.copy(), sliders={}, text=text, kinds=[],
                  degradation={}, directions=true_directions([]), **meta)


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
    clean_share: float = CLEAN_SHARE, wb_jitter: float = WB_JITTER,
) -> Iterator[Record]:
    """Yield `count` records, deterministic by `seed`. `photos`: PhotoEntry items (see
    vera_mobile.data.photos.load_manifest) or paths. Photos are visited in a seeded shuffled
    order, epoch by epoch, so each is used about equally often; `modes` gives each mode's weight;
    `clean_share` of the auto records are clean photos (nothing to fix); `wb_jitter` > 0 first
    gives each record's original its own white balance (recipe.WB_JITTER), which then counts as
    natural.
    """
    if not 0 <= clean_share <= 1:
        raise InputError("clean_share must be between 0 and 1")
    if not 0 <= wb_jitter < CAST_RANGE[0]:
        raise InputError(f"wb_jitter must be between 0 and {CAST_RANGE[0]} (the weakest cast), got {wb_jitter}")
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
        if wb_jitter:  # its own random stream, so the records' sampling is the same with or without jitter
            jitter_rng = np.random.default_rng([seed, index, _JITTER_STREAM])
            meta["wb_jitter"] = {name: float(round(jitter_rng.uniform(-wb_jitter, wb_jitter)))
                                 for name in (TEMPERATURE, TINT)}
            original = develop_uint8(original, meta["wb_jitter"])
        if mode == "auto" and rng.random() < clean_share:
            yield make_clean_record(original, **meta)
        elif mode == "auto":
            yield make_auto_record(original, rng, fit_steps=fit_steps, **meta)
        elif mode == "style":
            yield make_style_record(original, rng, **meta)
        else:
            yield make_param_record(original, rng, **meta)
