"""Stream a full-resolution photo through the renderer, one fixed-size tile of pixels at a time.

The renderer is split in two programs (models/folded_renderer.py): `condition` turns the latent
into per-layer biases once per photo, and `render_points` maps a tile of pixels. The renderer's
only per-pixel input is RGB, so any split of the pixels gives the same result; tiling bounds the
working set and the float copy of the photo is never made whole. Exported programs take a fixed
number of points, so the last tile is padded and the padding dropped.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from .errors import InputError
from .photo_io import to_pixels
from .views import renderer_input

DEFAULT_TILE = 65_536  # pixels per tile: 128 MiB of fp32 activations at the widest layer


class RendererBackend(Protocol):
    """How one backend runs the two renderer programs (numpy in, numpy out)."""

    tile: int | None  # the fixed number of points `render_points` takes, or None for any

    def condition(self, latent: np.ndarray, mask: np.ndarray) -> np.ndarray: ...  # [3L], [3] → [bias_size]

    def render_points(self, points: np.ndarray, biases: np.ndarray) -> np.ndarray: ...  # [T,3] [-1,1] → [T,3] [0,1]


def render_flat(
    backend: RendererBackend,
    points: np.ndarray,
    biases: np.ndarray,
    tile: int = DEFAULT_TILE,
) -> np.ndarray:
    """Run `render_points` over [N, 3] float points in tiles; returns [N, 3] floats in [0, 1]."""
    tile = backend.tile or tile
    out = np.empty(points.shape, dtype=np.float32)
    for start in range(0, points.shape[0], tile):
        out[start:start + tile] = _render_tile(backend, points[start:start + tile], biases, tile)
    return out


def _render_tile(backend: RendererBackend, points: np.ndarray, biases: np.ndarray, tile: int) -> np.ndarray:
    count = points.shape[0]
    if backend.tile is not None and count < backend.tile:  # fixed-shape program: pad, then drop
        points = np.concatenate([points, np.zeros((backend.tile - count, 3), dtype=points.dtype)])
    return backend.render_points(np.ascontiguousarray(points, dtype=np.float32), biases)[:count]


def blend(original: np.ndarray, edited: np.ndarray, strength: float) -> np.ndarray:
    """original + strength · (edited − original): an editor's "amount", from no edit (0) to the edit (1).

    Both are float RGB in [0, 1]: pixels, or a LUT's grid colours and their edited colours.
    """
    if strength == 1:
        return edited
    return original + np.float32(strength) * (edited - original)


def render_pixels(
    backend: RendererBackend,
    pixels: np.ndarray,
    latent: np.ndarray,
    mask: np.ndarray,
    tile: int = DEFAULT_TILE,
    progress: Callable[[int], None] | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Render an (H, W, 3) uint8/uint16 photo exactly; returns the same shape and dtype.

    Input scaling and output quantisation (clip, scale, round half to even) are upstream's.
    `strength` blends each pixel's edited colour with its own (see `blend`).
    """
    if tile <= 0:
        raise InputError(f"tile must be a positive number of pixels, got {tile}")
    biases = backend.condition(np.asarray(latent, np.float32), np.asarray(mask, np.float32))
    tile = backend.tile or tile
    bit_depth = 8 * pixels.dtype.itemsize
    flat_in = pixels.reshape(-1, 3)
    out = np.empty_like(pixels)
    flat_out = out.reshape(-1, 3)
    scale = np.float32(np.iinfo(pixels.dtype).max)
    for start in range(0, flat_in.shape[0], tile):
        chunk = flat_in[start:start + tile]
        colours = _render_tile(backend, renderer_input(chunk), biases, tile)
        if strength != 1:
            colours = blend(chunk.astype(np.float32) / scale, colours, strength)
        flat_out[start:start + tile] = to_pixels(colours, bit_depth)
        if progress is not None:
            progress(chunk.shape[0])
    return out
