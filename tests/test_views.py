"""Tests for vera_mobile.views: the planner, renderer and reference views match upstream's pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vera_mobile.photo_io import Photo, load_photo
from vera_mobile.views import planner_view, reference_view, renderer_input


def photo_of(pixels: np.ndarray) -> Photo:
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    return Photo(pixels, alpha=None, bit_depth=bit_depth, exif=None, source_icc=None, path=None)


# --- planner_view ----------------------------------------------------------------------------


def test_planner_view_intermediate_is_682x512_centred_on_black():
    # 1707 * 512 / 1280 = 682.8 -> 682. With image_size 682 the last resize is a no-op, so the
    # result is the padded square itself: 85 black rows, 512 image rows, 85 black rows.
    view = planner_view(load_photo(Image.new("RGB", (1707, 1280), (255, 255, 255))), image_size=682)

    assert view.shape == (3, 682, 682)
    assert view.dtype == np.float32
    assert (view[:, :85] == 0).all()
    assert (view[:, 85:597] == 1).all()
    assert (view[:, 597:] == 0).all()


def test_planner_view_pads_portrait_photos_left_and_right():
    view = planner_view(load_photo(Image.new("RGB", (1280, 1707), (255, 255, 255))), image_size=682)

    assert (view[:, :, :85] == 0).all()
    assert (view[:, :, 85:597] == 1).all()
    assert (view[:, :, 597:] == 0).all()


def test_planner_view_matches_the_upstream_pipeline():
    noise = np.random.default_rng(1).integers(0, 256, (1280, 1707, 3), dtype=np.uint8)
    source = Image.fromarray(noise)

    # Upstream, step by step with the numbers written out.
    resized = source.resize((682, 512), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (682, 682), (0, 0, 0))
    square.paste(resized, (0, 85))
    final = square.resize((1024, 1024), Image.Resampling.BICUBIC)
    expected = (np.asarray(final, dtype=np.float32) / 255).transpose(2, 0, 1)

    view = planner_view(load_photo(source))
    assert view.shape == (3, 1024, 1024)
    np.testing.assert_array_equal(view, expected)


def test_planner_view_of_16_bit_photo_uses_rounded_8_bit():
    grey16 = np.full((40, 60, 3), 257 * 100 + 128, dtype=np.uint16)  # 100.498 -> 100
    grey8 = np.full((40, 60, 3), 100, dtype=np.uint8)

    np.testing.assert_array_equal(
        planner_view(photo_of(grey16), image_size=64), planner_view(photo_of(grey8), image_size=64)
    )


# --- renderer_input and reference_view ------------------------------------------------------


def test_renderer_input_is_full_size_in_minus_one_to_one():
    pixels = np.zeros((3, 5, 3), dtype=np.uint8)
    pixels[0, 0] = 255
    values = renderer_input(photo_of(pixels).pixels)

    assert values.shape == (3, 5, 3) and values.dtype == np.float32
    assert values.min() == -1 and values.max() == 1
    assert values[0, 0].tolist() == [1, 1, 1]


def test_renderer_input_16_bit():
    pixels = np.array([[[0, 65535, 32768]]], dtype=np.uint16)
    values = renderer_input(photo_of(pixels).pixels)

    assert values[0, 0, 0] == -1 and values[0, 0, 1] == 1
    assert values[0, 0, 2] == pytest.approx(1 / 65535, abs=1e-6)


def test_reference_view_is_squashed_and_bgr():
    red = np.zeros((200, 300, 3), dtype=np.uint8)
    red[..., 0] = 255
    view = reference_view(photo_of(red))

    assert view.shape == (3, 512, 512) and view.dtype == np.float32
    assert (view[2] == 1).all()  # red lands in the last channel, as in OpenCV's BGR order
    assert (view[0] == -1).all() and (view[1] == -1).all()


def test_reference_view_matches_the_upstream_pipeline():
    noise = np.random.default_rng(2).integers(0, 256, (90, 130, 3), dtype=np.uint8)

    bgr_image = Image.fromarray(np.ascontiguousarray(noise[:, :, ::-1]))
    squashed = bgr_image.resize((64, 64), Image.Resampling.BILINEAR)
    expected = (np.asarray(squashed, dtype=np.float32) / 255 * 2 - 1).transpose(2, 0, 1)

    np.testing.assert_array_equal(reference_view(photo_of(noise), size=64), expected)
