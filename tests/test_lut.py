"""Tests for vera_mobile.lut: grid order, baking, applying (8- and 16-bit), .cube files, and ffmpeg.

The fake backends below are not mocks of the code under test: they are the per-pixel colour
functions a LUT gets baked from, chosen so the exact answer is known in closed form.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from conftest import skimage_photo
from vera_mobile.errors import InputError
from vera_mobile.lut import (
    DEFAULT_LUT_SIZE,
    apply_lut,
    bake_lut,
    lut_grid,
    lut_size,
    read_cube,
    write_cube,
)
from vera_mobile.models.renderer import ConditionalMLPDecoder
from vera_mobile.photo_io import load_photo, to_pixels
from vera_mobile.render import render_pixels
from vera_mobile.runtime.torch_backend import TorchRenderer

# Rows sum to 1 and entries are positive, so both functions below map [0, 1]³ into [0, 1]³.
MATRIX = np.array([[0.80, 0.15, 0.05], [0.10, 0.75, 0.15], [0.05, 0.20, 0.75]])
NO_BIASES = np.zeros(1, dtype=np.float32)


def affine_grade(rgb01: np.ndarray) -> np.ndarray:
    """A colour matrix with lift: affine, so trilinear interpolation reproduces it exactly."""
    return 0.02 + 0.96 * np.asarray(rgb01, np.float64) @ MATRIX.T


def gamma_grade(rgb01: np.ndarray) -> np.ndarray:
    """A smooth non-linear grade (gamma 1.25, then the matrix): the LUT can only approximate it."""
    return affine_grade(np.asarray(rgb01, np.float64) ** 1.25)


class FunctionBackend:
    """A RendererBackend whose per-pixel function is `grade`, on the renderer's [-1, 1] inputs."""

    tile = None

    def __init__(self, grade) -> None:
        self.grade = grade

    def condition(self, latent: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return NO_BIASES

    def render_points(self, points: np.ndarray, biases: np.ndarray) -> np.ndarray:
        return self.grade((points.astype(np.float64) + 1) / 2).astype(np.float32)


def all_8bit_colours() -> np.ndarray:
    """Every one of the 2**24 8-bit RGB colours, as a 4096 x 4096 image."""
    values = np.arange(256, dtype=np.uint8)
    red, green, blue = np.meshgrid(values, values, values, indexing="ij")
    return np.stack([red, green, blue], axis=-1).reshape(4096, 4096, 3)


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute per-channel difference in output levels."""
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_photo(skimage_photo("coffee.png")).pixels


@pytest.fixture(scope="module")
def renderer_case() -> tuple[TorchRenderer, np.ndarray, np.ndarray]:
    """The real renderer at upstream size (random weights, seeded) and one random latent."""
    torch.manual_seed(0)
    backend = TorchRenderer(ConditionalMLPDecoder().eval())
    latent = np.random.default_rng(0).standard_normal(2688).astype(np.float32)
    return backend, latent, np.ones(3, dtype=np.float32)


@pytest.fixture(scope="module")
def renderer_lut(renderer_case) -> np.ndarray:
    backend, latent, mask = renderer_case
    return bake_lut(backend, backend.condition(latent, mask))


# --- Layout ----------------------------------------------------------------------------------


def test_grid_is_red_fastest_like_pillow_and_cube():
    size = 5
    grid = lut_grid(size)
    assert grid.shape == (size**3, 3) and grid.dtype == np.float32
    step = 1 / (size - 1)
    np.testing.assert_allclose(grid[[0, 1, size, size * size, -1]],
                               [[0, 0, 0], [step, 0, 0], [0, step, 0], [0, 0, step], [1, 1, 1]])
    # Pillow's own generator is an independent statement of its table order.
    pillow = ImageFilter.Color3DLUT.generate(size, lambda r, g, b: (r, g, b))
    np.testing.assert_allclose(grid.ravel(), pillow.table, atol=1e-7)


def test_lut_size_refuses_bad_shapes():
    assert lut_size(lut_grid(DEFAULT_LUT_SIZE)) == DEFAULT_LUT_SIZE
    for shape in [(26, 3), (27, 4), (27,), (0, 3), (66**3, 3), (1, 3)]:
        with pytest.raises(InputError):
            lut_size(np.zeros(shape, np.float32))


@pytest.mark.parametrize("size", [1, 66, True, 2.0, "33"])
def test_every_lut_size_goes_through_one_check(size):
    from vera_mobile.runtime.result import RenderOptions

    # The grid, the render options and the .cube reader share check_lut_size: one range, one wording.
    with pytest.raises(InputError, match=r"^the LUT size must be a whole number from 2 to 65, got "):
        lut_grid(size)
    with pytest.raises(InputError, match=r"^lut_size must be a whole number from 2 to 65, got "):
        RenderOptions(lut_size=size)
    assert RenderOptions(lut_size=np.int64(2)).lut_size == 2


# --- Applying --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, DEFAULT_LUT_SIZE, 65])
def test_identity_lut_is_exact_on_every_8bit_colour(size):
    colours = all_8bit_colours()
    np.testing.assert_array_equal(apply_lut(colours, lut_grid(size)), colours)


@pytest.mark.parametrize("size", [2, DEFAULT_LUT_SIZE, 65])
def test_identity_lut_is_within_one_level_at_16bit(size):
    rng = np.random.default_rng(size)
    # 701 columns: row bands of the float path do not divide the photo evenly.
    pixels = rng.integers(0, 65536, size=(300, 701, 3), dtype=np.uint16)
    pixels[0, :2] = [[0, 0, 0], [65535, 65535, 65535]]
    out = apply_lut(pixels, lut_grid(size))
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    assert levels(out, pixels).max() <= 1


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_affine_grade_is_reproduced_to_one_level(photo, bit_depth):
    pixels = photo if bit_depth == 8 else photo.astype(np.uint16) * 257
    lut = bake_lut(FunctionBackend(affine_grade), NO_BIASES, size=9)  # exact at any size
    exact = to_pixels(affine_grade(pixels / np.iinfo(pixels.dtype).max), bit_depth)
    assert levels(apply_lut(pixels, lut), exact).max() <= 1


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_smooth_grade_is_approximated_closely(photo, bit_depth):
    pixels = photo if bit_depth == 8 else photo.astype(np.uint16) * 257
    top = np.iinfo(pixels.dtype).max
    lut = bake_lut(FunctionBackend(gamma_grade), NO_BIASES)
    error = levels(apply_lut(pixels, lut), to_pixels(gamma_grade(pixels / top), bit_depth)) / top
    assert error.max() <= 1 / 255 + 1e-9, f"max error {error.max() * 255:.3f} 8-bit levels"
    assert error.mean() < 0.1 / 255, f"mean error {error.mean() * 255:.4f} 8-bit levels"


def test_8bit_and_16bit_paths_agree(photo, renderer_lut):
    eight = apply_lut(photo, renderer_lut)
    sixteen = apply_lut(photo.astype(np.uint16) * 257, renderer_lut)
    assert levels((sixteen.astype(np.uint32) + 128) // 257, eight).max() <= 1


def test_apply_refuses_bad_pixels():
    lut = lut_grid(3)
    for pixels in [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 3), np.uint8)]:
        with pytest.raises(InputError):
            apply_lut(pixels, lut)


def test_baked_renderer_matches_exact_rendering(photo, renderer_case, renderer_lut):
    backend, latent, mask = renderer_case
    crop = photo[100:260, 200:440]  # 38,400 pixels keeps the exact render to about a second
    exact = render_pixels(backend, crop, latent, mask)
    error = levels(apply_lut(crop, renderer_lut), exact)
    assert error.mean() < 0.25 and error.max() <= 2, f"mean {error.mean():.4f}, max {error.max()} levels"


# --- .cube files -----------------------------------------------------------------------------


def test_cube_round_trip(tmp_path, renderer_lut):
    path = write_cube(tmp_path / "edit.cube", renderer_lut, title="coffee edit")
    lines = path.read_text().splitlines()
    assert lines[:4] == ['TITLE "coffee edit"', f"LUT_3D_SIZE {DEFAULT_LUT_SIZE}",
                         "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    assert len(lines) == 4 + DEFAULT_LUT_SIZE**3
    np.testing.assert_allclose(read_cube(path), renderer_lut, rtol=0, atol=5e-9)
    assert [p.name for p in tmp_path.iterdir()] == ["edit.cube"]  # no temporary file left behind


def test_cube_reader_accepts_comments_and_blank_lines(tmp_path):
    path = tmp_path / "commented.cube"
    rows = "\n".join(" ".join(map(str, rgb)) for rgb in lut_grid(2).tolist())
    path.write_text(f"# made by hand\r\n\r\nLUT_3D_SIZE 2\r\n\r\n{rows}\r\n")
    np.testing.assert_array_equal(read_cube(path), lut_grid(2))


def test_cube_title_with_quote_is_refused(tmp_path):
    with pytest.raises(InputError, match="TITLE"):
        write_cube(tmp_path / "x.cube", lut_grid(2), title='say "hi"')
    assert not any(tmp_path.iterdir())


EIGHT_ROWS = "\n".join(["0 0 0"] * 8)  # a complete size-2 table
SEVEN_ROWS = "\n".join(["0 0 0"] * 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"LUT_3D_SIZE 2\n{EIGHT_ROWS}\n0 0 0\n", "8 colour lines, but has 9"),
        ("LUT_3D_SIZE 2\n0 0 0\n", "8 colour lines, but has 1"),
        (f"{EIGHT_ROWS}\n", "no LUT_3D_SIZE"),
        (f"LUT_3D_SIZE two\n{EIGHT_ROWS}\n", "whole number"),
        ("LUT_3D_SIZE 1\n0 0 0\n", "LUT_3D_SIZE must be a whole number from 2 to 65"),
        (f"LUT_3D_SIZE 2\n{SEVEN_ROWS}\n0.5 x 0.2\n", "line 9: expected three numbers"),
        (f"LUT_3D_SIZE 2\n{SEVEN_ROWS}\n0.5 0.2\n", "expected three finite numbers"),
        (f"LUT_3D_SIZE 2\n{SEVEN_ROWS}\n0.5 0.2 inf\n", "expected three finite numbers"),
        (f"LUT_3D_SIZE 2\nDOMAIN_MAX 4 4 4\n{EIGHT_ROWS}\n", "only the domain 0..1"),
        ("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n", "unsupported .cube keyword 'LUT_1D_SIZE'"),
    ],
)
def test_malformed_cube_is_refused_clearly(tmp_path, text, message):
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        read_cube(path)


def test_missing_cube_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="could not read"):
        read_cube(tmp_path / "absent.cube")


# --- Independent check: ffmpeg's lut3d filter ------------------------------------------------


def ffmpeg_lut3d(source: Path, cube: Path, target: Path) -> np.ndarray:
    """Apply a .cube with ffmpeg, rgb24 PNG in and out, so no range or matrix conversion happens."""
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(source),
               "-vf", f"lut3d=file={cube}:interp=trilinear", "-pix_fmt", "rgb24", str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    with Image.open(target) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_ffmpeg_lut3d_agrees_with_apply_lut(tmp_path, photo, renderer_lut):
    source = tmp_path / "in.png"
    Image.fromarray(photo).save(source)  # plain rgb24 PNG: no ICC, gamma or colour-matrix chunks

    # The identity LUT passes every pixel through unchanged, so ffmpeg converts nothing on the way.
    identity = ffmpeg_lut3d(source, write_cube(tmp_path / "identity.cube", lut_grid(DEFAULT_LUT_SIZE)), tmp_path / "id.png")
    np.testing.assert_array_equal(identity, photo)

    theirs = ffmpeg_lut3d(source, write_cube(tmp_path / "edit.cube", renderer_lut), tmp_path / "edit.png")
    difference = levels(theirs, apply_lut(photo, read_cube(tmp_path / "edit.cube")))
    within_one = (difference <= 1).all(axis=-1).mean()
    exact = (difference == 0).all(axis=-1).mean()
    print(f"ffmpeg vs apply_lut: max {difference.max()} levels, mean {difference.mean():.4f} levels, "
          f"{within_one:.4%} of pixels within 1 level, {exact:.2%} identical")
    assert within_one >= 0.999 and difference.max() <= 2
