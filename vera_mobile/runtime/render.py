"""Stream a full-resolution photo through a per-pixel renderer, one tile of pixels at a time.

The renderer's only per-pixel input is RGB, so any split of the pixels gives the same result;
tiling bounds the working set (upstream recommends 262,144-pixel chunks) and the float copy of
the photo is never made whole.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

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

    Quantisation matches upstream: clip to [0, 1], scale, round half to even.
    """
    if tile <= 0:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    max_value = float(np.iinfo(pixels.dtype).max)
    flat_in = pixels.reshape(-1, 3)
    out = np.empty_like(pixels)
    flat_out = out.reshape(-1, 3)
    for start in range(0, flat_in.shape[0], tile):
        chunk = flat_in[start:start + tile].astype(np.float32) / max_value
        rgb = backend.render_points((chunk - 0.5) * 2.0, latent)  # upstream: (ToTensor(x) - 0.5) * 2
        flat_out[start:start + tile] = np.round(np.clip(rgb, 0.0, 1.0) * max_value)
        if progress is not None:
            progress(chunk.shape[0])
    return out
