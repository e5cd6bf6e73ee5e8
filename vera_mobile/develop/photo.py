"""Developing photos with a slider set: exactly (every pixel) or through a baked 3D LUT."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..lut import DEFAULT_LUT_SIZE, RENDER_METHODS, apply_lut, lut_grid, write_cube
from ..photo_io import Photo, load_photo, save_photo, to_pixels
from ..prompts import validate_params
from .engine import develop, slider_tensor

DEFAULT_RENDER = "lut"  # every operator is a per-pixel colour function, so a LUT holds the whole edit
# Pixels developed at once on the exact path: the engine's float32 intermediates stay near 100 MiB.
_EXACT_CHUNK_PIXELS = 262_144


def bake_develop_lut(params: Mapping[str, object], size: int = DEFAULT_LUT_SIZE) -> np.ndarray:
    """The slider set sampled on lut.lut_grid(size): float32 [size**3, 3], ready for apply_lut / write_cube."""
    sliders = slider_tensor(params, dtype=torch.float64)  # bake in float64: the table is reused many times
    with torch.inference_mode():
        out = develop(torch.from_numpy(lut_grid(size).astype(np.float64)), sliders)
    return out.numpy().astype(np.float32)


def develop_pixels(pixels: np.ndarray, params: Mapping[str, object]) -> np.ndarray:
    """Develop (H, W, 3) uint8/uint16 sRGB pixels exactly, in bounded memory; same shape and dtype out."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise InputError(f"expected uint8 or uint16 (H, W, 3) pixels, got {pixels.dtype} with shape {pixels.shape}")
    sliders = slider_tensor(params)
    bits = 8 * pixels.dtype.itemsize
    scale = np.float32(1 / np.iinfo(pixels.dtype).max)
    flat = pixels.reshape(-1, 3)
    out = np.empty_like(flat)
    with torch.inference_mode():
        for start in range(0, flat.shape[0], _EXACT_CHUNK_PIXELS):
            chunk = torch.from_numpy(flat[start:start + _EXACT_CHUNK_PIXELS].astype(np.float32) * scale)
            out[start:start + chunk.shape[0]] = to_pixels(develop(chunk, sliders).numpy(), bits)
    return out.reshape(pixels.shape)


@dataclass(frozen=True)
class Developed:
    """A developed photo: its pixels, the source photo (EXIF, alpha) and, in lut mode, the LUT."""

    photo: Photo
    pixels: np.ndarray
    lut: np.ndarray | None

    def save(self, path: str | os.PathLike, protect: Iterable[str | os.PathLike] = ()) -> Path:
        """Write atomically; never over the source photo or any path in `protect`."""
        return save_photo(self.pixels, path, like=self.photo, protect=protect)

    def save_cube(self, path: str | os.PathLike) -> Path:
        """Write the LUT as a `.cube` file (lut mode only)."""
        if self.lut is None:
            raise InputError("this photo was developed in exact mode; use render='lut' to get a LUT")
        return write_cube(path, self.lut, title="vera-mobile develop")


def develop_photo(
    source: str | os.PathLike | bytes | Image.Image | Photo,
    params: Mapping[str, object],
    render: str = DEFAULT_RENDER,
    lut_size: int | None = None,
) -> Developed:
    """Load a photo (or take a loaded one) and apply the slider set, exactly or through a LUT."""
    if render not in RENDER_METHODS:
        raise InputError(f"render must be one of {', '.join(RENDER_METHODS)}, got {render!r}")
    if lut_size is not None and render != "lut":
        raise InputError("lut_size applies to render='lut' only")
    validate_params(params)  # before decoding a possibly large photo
    photo = source if isinstance(source, Photo) else load_photo(source)
    if render == "exact":
        return Developed(photo, develop_pixels(photo.pixels, params), None)
    lut = bake_develop_lut(params, DEFAULT_LUT_SIZE if lut_size is None else lut_size)
    return Developed(photo, apply_lut(photo.pixels, lut), lut)
