"""Bake a photo's edit into a 3D colour lookup table (LUT), apply it, and read/write `.cube` files.

The renderer maps every pixel's RGB value to a new RGB value with one function per photo (the
latent fixes it), so sampling that function on a regular S x S x S grid of colours captures the
whole edit. Any platform can then apply the table natively (Core Image, GPU shaders, Pillow,
ffmpeg, Resolve) with trilinear interpolation between grid points.

Layout. A LUT here is always a float32 array of shape [S**3, 3]: row `r + S*g + S*S*b` holds the
output colour for the input colour (r, g, b) / (S - 1), so **red varies fastest, then green, then
blue**. That is exactly the line order of the Adobe/Resolve `.cube` format and the flat table order
of Pillow's `ImageFilter.Color3DLUT` ("channels first, then first dimension (R), then second (G),
then third (B)"); `lut.reshape(S, S, S, 3)` is therefore indexed [b, g, r]. Values are in [0, 1].

This module needs only numpy and Pillow; the backend that bakes the table brings its own runtime.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .errors import InputError
from .files import write_text_atomic
from .photo_io import to_pixels
from .render import RendererBackend, render_flat

# Measured by benchmarks/lut_error.py (benchmarks/RESULTS.md) against exact rendering: 33 gives a
# mean CIEDE2000 of 0.13 (p99 0.84), a 4x margin under the 0.5 target. 17 meets the target too, but
# only on random renderer weights (trained edits may bend harder) and with a p99 above 1; 65 costs
# 8x the bake for 0.08 less. 33 is also the size Resolve and Adobe export by default.
DEFAULT_LUT_SIZE = 33
MIN_LUT_SIZE, MAX_LUT_SIZE = 2, 65  # Pillow's Color3DLUT limits; .cube allows more, no app needs it
# How a colour function is drawn onto a photo: baked into a LUT and applied, or exactly, pixel by pixel.
RENDER_METHODS = ("lut", "exact")

# Pixels interpolated at once on the 16-bit path: its dozen or so working arrays of this many
# colours take about 10 MiB, whatever the photo size.
_FLOAT_CHUNK_PIXELS = 65_536
_CUBE_DECIMALS = 8  # 5e-9 worst-case rounding: far below one 16-bit level (1.5e-5)


# --- Building a LUT --------------------------------------------------------------------------


def lut_grid(size: int) -> np.ndarray:
    """The [size**3, 3] float32 input colours of a LUT in [0, 1], red fastest, then green, then blue."""
    check_lut_size(size)
    # i / (size - 1) in float64, then one rounding to float32: the end points are exactly 0 and 1.
    axis = (np.arange(size, dtype=np.float64) / (size - 1)).astype(np.float32)
    blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([red, green, blue], axis=-1).reshape(-1, 3)


def bake_lut(backend: RendererBackend, biases: np.ndarray, size: int = DEFAULT_LUT_SIZE) -> np.ndarray:
    """Sample the renderer (conditioned by `biases`) on the LUT grid; returns float32 [size**3, 3]."""
    grid = lut_grid(size)
    # The same float32 steps as views.renderer_input, so a grid colour that equals a pixel
    # value reaches the renderer as exactly the same input.
    points = (grid - np.float32(0.5)) * np.float32(2)
    return render_flat(backend, points, biases)


def lut_size(lut: np.ndarray) -> int:
    """The grid size S of a [S**3, 3] LUT; raises InputError for any other shape or size."""
    lut = np.asarray(lut)
    size = round(lut.shape[0] ** (1 / 3)) if lut.ndim == 2 and lut.shape[0] > 0 else 0
    if lut.ndim != 2 or lut.shape[1] != 3 or size**3 != lut.shape[0]:
        raise InputError(f"a LUT must be a [S**3, 3] array, got shape {lut.shape}")
    check_lut_size(size)
    return size


def check_lut_size(size: object, what: str = "the LUT size") -> None:
    """Refuse a LUT grid size that is not a whole number from MIN_LUT_SIZE to MAX_LUT_SIZE; `what` names it."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_LUT_SIZE <= size <= MAX_LUT_SIZE:
        raise InputError(f"{what} must be a whole number from {MIN_LUT_SIZE} to {MAX_LUT_SIZE}, got {size!r}")


# --- Applying a LUT --------------------------------------------------------------------------


def apply_lut(pixels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map (H, W, 3) uint8 or uint16 RGB pixels through the LUT (trilinear); same shape and dtype out.

    8-bit photos go through Pillow's C implementation; 16-bit photos through float interpolation
    in chunks, rounded half to even like the exact renderer's output. Alpha is the caller's: pass
    RGB only.
    """
    size = lut_size(lut)
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise InputError(f"expected uint8 or uint16 (H, W, 3) pixels, got {pixels.dtype} with shape {pixels.shape}")
    table = np.asarray(lut, dtype=np.float32)
    if pixels.dtype == np.uint8:
        return _apply_8bit(pixels, table, size)
    return _apply_float(pixels, table, size)


def _apply_8bit(pixels: np.ndarray, table: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return np.asarray(image.filter(ImageFilter.Color3DLUT(size, table)))


def _apply_float(pixels: np.ndarray, table: np.ndarray, size: int) -> np.ndarray:
    """Trilinear interpolation in float32, a band of rows at a time."""
    height, width, _ = pixels.shape
    rows = max(1, _FLOAT_CHUNK_PIXELS // max(width, 1))
    scale = np.float32((size - 1) / np.iinfo(pixels.dtype).max)
    out = np.empty_like(pixels)
    for top in range(0, height, rows):
        band = pixels[top:top + rows].reshape(-1, 3)
        colours = _trilinear(table, size, band.astype(np.float32) * scale)
        out[top:top + rows] = to_pixels(colours, 8 * pixels.dtype.itemsize).reshape(-1, width, 3)
    return out


def _trilinear(table: np.ndarray, size: int, coords: np.ndarray) -> np.ndarray:
    """Interpolate the table at [N, 3] grid coordinates (r, g, b) in [0, size - 1]."""
    # The lower corner stops one short of the edge so that a coordinate of exactly size - 1 is
    # the upper corner with weight 1 rather than an index past the table.
    low = np.minimum(coords.astype(np.intp), size - 2)
    frac = coords - low
    base = low[:, 0] + size * (low[:, 1] + size * low[:, 2])
    step_r, step_g, step_b = 1, size, size * size

    def lerp(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return a + (b - a) * frac[:, axis:axis + 1]

    def along_red(offset: int) -> np.ndarray:
        index = base + offset
        return lerp(table[index], table[index + step_r], 0)

    bottom = lerp(along_red(0), along_red(step_g), 1)
    top = lerp(along_red(step_b), along_red(step_b + step_g), 1)
    return lerp(bottom, top, 2)


# --- .cube files -----------------------------------------------------------------------------


def write_cube(path: str | os.PathLike, lut: np.ndarray, title: str = "vera-mobile") -> Path:
    """Write the LUT as an Adobe/Resolve `.cube` file, atomically; returns the path.

    Domain 0..1, one "R G B" line per grid point with red varying fastest (the format's order).
    """
    size = lut_size(lut)
    if '"' in title or "\n" in title or "\r" in title:
        raise InputError(f"a .cube TITLE cannot contain quotes or line breaks, got {title!r}")
    values = np.asarray(lut, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError("the LUT contains NaN or infinite values")
    header = f'TITLE "{title}"\nLUT_3D_SIZE {size}\nDOMAIN_MIN 0.0 0.0 0.0\nDOMAIN_MAX 1.0 1.0 1.0\n'
    number = f"{{:.{_CUBE_DECIMALS}f}}"
    line = f"{number} {number} {number}\n"
    body = "".join(line.format(*rgb) for rgb in values.tolist())
    target = Path(path)
    _write_text_atomically(target, header + body)
    return target


def _write_text_atomically(target: Path, text: str) -> None:
    try:
        write_text_atomic(target, text, encoding="ascii")
    except (OSError, UnicodeEncodeError) as exc:
        raise InputError(f"could not write the LUT to {target}: {exc}") from exc


def read_cube(path: str | os.PathLike) -> np.ndarray:
    """Read a 3D `.cube` file into a float32 [S**3, 3] LUT; raises InputError if it is malformed.

    Accepts TITLE, LUT_3D_SIZE, DOMAIN_MIN 0 0 0, DOMAIN_MAX 1 1 1, `#` comments and blank lines.
    Other keywords (1D LUTs, other domains, vendor extensions) are refused rather than misread.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"could not read the .cube file {source}: {exc}") from exc

    size: int | None = None
    rows: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{source}, line {number}"
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.replace("\t", " ").partition(" ")
        if keyword == "TITLE":
            continue
        if keyword == "LUT_3D_SIZE":
            size = _parse_size(rest, where)
        elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
            _check_domain(keyword, _parse_numbers(rest, where), where)
        elif keyword[0].isalpha():
            raise InputError(f"{where}: unsupported .cube keyword {keyword!r}; only 3D LUTs on domain 0..1 are read")
        else:
            rows.append(_parse_numbers(line, where))

    if size is None:
        raise InputError(f"{source} has no LUT_3D_SIZE line; is it a 3D .cube LUT?")
    if len(rows) != size**3:
        raise InputError(f"{source} declares LUT_3D_SIZE {size}, so {size**3} colour lines, but has {len(rows)}")
    return np.array(rows, dtype=np.float32)


def _parse_size(text: str, where: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise InputError(f"{where}: LUT_3D_SIZE must be a whole number, got {text!r}") from None
    check_lut_size(size, f"{where}: LUT_3D_SIZE")
    return size


def _parse_numbers(text: str, where: str) -> list[float]:
    """Exactly three finite numbers separated by whitespace."""
    fields = text.split()
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise InputError(f"{where}: expected three numbers, got {text!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise InputError(f"{where}: expected three finite numbers, got {text!r}")
    return values


def _check_domain(keyword: str, values: list[float], where: str) -> None:
    expected = [0.0] * 3 if keyword == "DOMAIN_MIN" else [1.0] * 3
    if values != expected:
        raise InputError(f"{where}: only the domain 0..1 is supported, got {keyword} {values}")
