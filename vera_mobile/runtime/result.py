"""What a retouch gives back (`RetouchResult`) and how its photo is drawn from the latent (`RenderOptions`).

A result is built once, complete, by `draw`: the planner's (or reference encoder's) output, the
drawn photo and the timings. It keeps the unmasked latent and its renderer, so the same edit
can be drawn again with other options without running the planner.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from contextlib import AbstractContextManager
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..lut import DEFAULT_LUT_SIZE, RENDER_METHODS, apply_lut, bake_lut, check_lut_size, lut_grid, write_cube
from ..photo_io import Photo, save_photo
from ..plan import Plan
from ..prompts import Request
from ..render import DEFAULT_TILE, RendererBackend, blend, render_pixels

DEFAULT_RENDER_METHOD = "lut"  # chosen from the measured LUT error (benchmarks/RESULTS.md)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class RenderOptions:
    """How the retouched photo is drawn once the latent is known.

    `method="lut"` bakes the photo's colour function into a `lut_size`³ 3D LUT and applies it
    (fast; measured error in benchmarks/RESULTS.md); `"exact"` runs every pixel through the
    renderer, `tile` pixels per call.
    """

    method: str = DEFAULT_RENDER_METHOD
    lut_size: int = DEFAULT_LUT_SIZE
    tile: int = DEFAULT_TILE
    groups: tuple[bool, bool, bool] = (True, True, True)  # lighting, global colour, specific colour
    strength: float = 1.0  # 0: the photo as it was, 1: the full edit, between: a blend (`render.blend`)

    def __post_init__(self) -> None:
        groups = tuple(self.groups) if isinstance(self.groups, (tuple, list)) else ()
        if len(groups) != 3 or not all(isinstance(g, (bool, np.bool_)) for g in groups):
            raise InputError(f"groups must be three booleans (lighting, global colour, specific colour), got {self.groups!r}")
        object.__setattr__(self, "groups", tuple(bool(g) for g in groups))
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)) or not (
            0 <= self.strength <= 1
        ):
            raise InputError(f"strength must be a number from 0 to 1, got {self.strength!r}")
        if self.method not in RENDER_METHODS:
            raise InputError(f"render method must be one of {', '.join(RENDER_METHODS)}, got {self.method!r}")
        check_lut_size(self.lut_size, "lut_size")
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile <= 0:
            raise InputError(f"tile must be a positive number of pixels, got {self.tile!r}")


@dataclass(frozen=True)
class Reasoning:
    """What the planner wrote; empty for reference mode, which has no planner."""

    text: str = ""  # the reasoning as upstream saves it (special tokens removed, stripped)
    raw_text: str = ""  # the same with section and retouch tokens kept
    plan: Plan = field(default_factory=Plan)
    forced_retouch_tokens: tuple[str, ...] = ()  # appended because generation omitted them
    stop_reason: str = ""  # "eos" or "max_new_tokens"
    num_tokens: int = 0


@dataclass(frozen=True)
class Edit:
    """One edit, ready to draw: the unmasked latent and the renderer it conditions."""

    request: Request
    latent: np.ndarray  # (3 * latent_dim,) before any mask
    renderer: RendererBackend
    lock: AbstractContextManager[Any]  # the retoucher's (reentrant): one retouch or draw at a time

    def masked(self, mask: tuple[float, float, float]) -> np.ndarray:
        """The latent with the groups switched off by `mask` zeroed (what the retouch head gives for it)."""
        return self.latent * np.repeat(np.asarray(mask, np.float32), self.latent.size // 3)


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value for ==
class RetouchResult:
    """Everything one retouch produced. `image` has the input's size, bit depth and orientation."""

    request: Request
    image: np.ndarray  # (H, W, 3) uint8 or uint16, sRGB
    latent: np.ndarray  # (3 * latent_dim,) the renderer was conditioned on, after the mask
    mask: tuple[float, float, float]  # light, global colour, specific colour: 1 kept, 0 off
    render: RenderOptions
    reasoning: Reasoning
    timings: Mapping[str, float]  # seconds per stage
    lut: np.ndarray | None = field(repr=False)  # the baked [S**3, 3] LUT with method "lut"
    source: Photo = field(repr=False)
    edit: Edit = field(repr=False)

    @property
    def mode(self) -> str:
        return self.request.mode

    @property
    def text(self) -> str:
        return self.reasoning.text

    @property
    def raw_text(self) -> str:
        return self.reasoning.raw_text

    @property
    def plan(self) -> Plan:
        return self.reasoning.plan

    @property
    def forced_retouch_tokens(self) -> tuple[str, ...]:
        return self.reasoning.forced_retouch_tokens

    @property
    def stop_reason(self) -> str:
        return self.reasoning.stop_reason

    @property
    def num_tokens(self) -> int:
        return self.reasoning.num_tokens

    def rerender(
        self,
        groups: Sequence[bool] | None = None,
        strength: float | None = None,
        *,
        render: RenderOptions | None = None,
    ) -> "RetouchResult":
        """The same edit drawn again, without running the planner: other groups on or off (lighting,
        global colour, specific colour), another strength, or other render options.

        Drawn from the cached latent, so it equals a fresh retouch of the same photo with the same
        options. With a LUT it takes a bake and an apply (milliseconds; benchmarks/RESULTS.md).
        """
        changes = {name: value for name, value in (("groups", groups), ("strength", strength)) if value is not None}
        options = replace(render or self.render, **changes)
        return draw(self.edit, self.source, options, self.reasoning, {})

    def save(self, path: str | Path, protect: Sequence[str | Path] = ()) -> Path:
        """Write the retouched photo atomically (sRGB profile, EXIF and alpha carried over)."""
        return save_photo(self.image, path, like=self.source, protect=protect)

    def save_cube(self, path: str | Path) -> Path:
        """Write the baked LUT as a `.cube` file that editors and ffmpeg apply (method "lut" only)."""
        if self.lut is None:
            raise InputError("this result was rendered exactly; render with RenderOptions(method='lut') to get a LUT")
        return write_cube(path, self.lut, title=f"vera-mobile {self.mode}")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record: plan, latent, flags and timings."""
        return {
            "mode": self.mode,
            "text": self.text,
            "plan": self.plan.to_dict(),
            "mask": list(self.mask),
            "latent": [round(float(v), 6) for v in self.latent],
            "forced_retouch_tokens": list(self.forced_retouch_tokens),
            "stop_reason": self.stop_reason,
            "render": self.render.method,
            "groups": list(self.render.groups),
            "strength": self.render.strength,
            "num_tokens": self.num_tokens,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


def draw(
    edit: Edit,
    source: Photo,
    options: RenderOptions,
    reasoning: Reasoning,
    timings: dict[str, float],
    progress: Progress | None = None,
) -> RetouchResult:
    """Render `source` with `edit` and build the finished result; `timings` gains the render stages."""
    # The request's mask (param mode switches off untouched groups), then the groups asked for.
    mask = tuple(kept * float(on) for kept, on in zip(edit.request.mask(), options.groups))
    latent = edit.masked(mask)
    mask_array = np.asarray(mask, np.float32)
    lut = None
    with edit.lock:
        clock = time.perf_counter()
        if options.method == "lut":
            baked = bake_lut(edit.renderer, edit.renderer.condition(latent, mask_array), options.lut_size)
            lut = blend(lut_grid(options.lut_size), baked, options.strength)
            timings["lut_bake"] = time.perf_counter() - clock
            clock = time.perf_counter()
            image = apply_lut(source.pixels, lut)
            timings["lut_apply"] = time.perf_counter() - clock
        else:
            image = render_pixels(edit.renderer, source.pixels, latent, mask_array, tile=options.tile,
                                  progress=_pixel_counter(progress, source), strength=options.strength)
            timings["render"] = time.perf_counter() - clock
    timings["total"] = math.fsum(v for k, v in timings.items() if k != "total")
    return RetouchResult(request=edit.request, image=image, latent=latent, mask=mask, render=options,
                         reasoning=reasoning, timings=timings, lut=lut, source=source, edit=edit)


def _pixel_counter(progress: Progress | None, source: Photo) -> Callable[[int], None] | None:
    """Turn the renderer's per-tile pixel counts into progress("render", done, total) calls."""
    if progress is None:
        return None
    total, done = source.size[0] * source.size[1], [0]

    def rendered(count: int) -> None:
        done[0] += count
        progress("render", done[0], total)

    return rendered
