"""Stream a full-resolution photo through a per-pixel renderer, one tile of pixels at a time.

The renderer's only per-pixel input is RGB, so any split of the pixels gives the same result;
tiling bounds the working set (upstream recommends 262,144-pixel chunks) and the float copy of
the photo is never made whole.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..errors import InputError
from ..photo_io import renderer_input, to_pixels

DEFAULT_TILE = 262_144  # pixels per tile (512 × 512), upstream's recommended chunk


class RendererBackend(Protocol):
    def render_points(self, points: np.ndarray, latent: np.ndarray) -> np.ndarray: ...  # [N,3] [-1,1] → [N,3] [0,1]


def render_pixels(
    backend: RendererBackend,
    pixels: np.ndarray,
    latent: np.ndarray,
    tile: int = DEFAULT_TILE,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Render an (H, W, 3) uint8/uint16 photo; returns the same shape and dtype.

    Input scaling and output quantisation (clip, scale, round half to even) are upstream's.
    """
    if tile <= 0:
        raise InputError(f"tile must be a positive number of pixels, got {tile}")
    bit_depth = 8 * pixels.dtype.itemsize
    flat_in = pixels.reshape(-1, 3)
    out = np.empty_like(pixels)
    flat_out = out.reshape(-1, 3)
    for start in range(0, flat_in.shape[0], tile):
        chunk = flat_in[start:start + tile]
        rgb = backend.render_points(renderer_input(chunk), latent)
        flat_out[start:start + tile] = to_pixels(rgb, bit_depth)
        if progress is not None:
            progress(chunk.shape[0])
    return out
