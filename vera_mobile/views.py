"""The model's input views of a loaded `Photo`: exactly the pixels the VeraRetouch models were trained on.

* `planner_view`: the planner's (vision-language model's) square RGB input;
* `renderer_input`: the renderer's per-pixel input, at full resolution, a tile at a time;
* `reference_view`: the reference encoder's squashed BGR input.

They reproduce upstream's preprocessing number for number on 8-bit photos, one of its bugs
included on purpose (see `reference_view`). Resizing always happens on 8-bit PIL images, as
upstream did; 16-bit photos are rounded to 8 bit first. Reading and writing files is
`photo_io`'s job.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .photo_io import Photo, to_8bit

PLANNER_IMAGE_SIZE = 1024  # side of upstream's planner view (its FastViTHD input); a checkpoint may say otherwise
PLANNER_SHORT_SIDE = 512
# The planner view's long side before padding, at most: 8x the short side. Upstream resizes any
# photo's short side to 512 and pads to a square of the long side, so a 3x20000 panorama strip
# would become a 3.4-million-pixel square (7.5 GB) before shrinking to 1024; past this aspect
# ratio we shrink the long side first instead, which bounds the work and changes no usual photo.
PLANNER_MAX_LONG_SIDE = 8 * PLANNER_SHORT_SIDE
REFERENCE_SIZE = 512  # side of the squashed reference views (upstream)


def planner_view(photo: Photo, image_size: int = PLANNER_IMAGE_SIZE) -> np.ndarray:
    """The planner (vision-language model) input: float32 (3, S, S) RGB in [0, 1].

    Matches upstream exactly: the short side is resized to 512 with LANCZOS (long side
    `int(long * 512 / short)`), the result is centred on a black square, and the square is resized
    to `image_size` with BICUBIC (what CLIPImageProcessor does to a square image). Photos more than
    8 times longer than wide (PLANNER_MAX_LONG_SIDE) get a long side of 4096 instead, and a short
    side in proportion, so the padded square stays small.
    """
    image = _rgb8_image(photo)
    resized = image.resize(planner_resized_size(*image.size), Image.Resampling.LANCZOS)
    square = _pad_to_square(resized)
    final = square.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return _chw_unit(final)


def planner_resized_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the planner view's first resize, before padding to a square.

    The short side becomes PLANNER_SHORT_SIDE and the long side truncates (as upstream); past
    PLANNER_MAX_LONG_SIDE both sides shrink by the same factor, rounded, at least 1 pixel. The app
    cores compute the same from the manifest's `preprocessing.planner`.
    """
    resized = _short_side_to((width, height), PLANNER_SHORT_SIDE)
    long_side = max(resized)
    if long_side <= PLANNER_MAX_LONG_SIDE:
        return resized
    scale = PLANNER_MAX_LONG_SIDE / long_side
    return max(1, round(resized[0] * scale)), max(1, round(resized[1] * scale))


def renderer_input(pixels: np.ndarray) -> np.ndarray:
    """Renderer input for full-resolution pixels (a whole photo or a tile of it): float32 in [-1, 1].

    Computed as upstream does, `(pixels / maxval - 0.5) * 2` with maxval 255 or 65535; never
    resized. The runtime converts one tile at a time, so a 48 MP photo never exists as float32.
    """
    values = pixels.astype(np.float32)
    values /= np.iinfo(pixels.dtype).max
    values -= 0.5
    values *= 2
    return values


def reference_view(photo: Photo, size: int = REFERENCE_SIZE) -> np.ndarray:
    """The reference-encoder input: float32 (3, size, size) in [-1, 1], in **BGR** channel order.

    Upstream read reference images with OpenCV (BGR) and passed that array to torchvision's
    `ToPILImage` without swapping channels, then resized to (size, size) with BILINEAR, squashing
    the aspect ratio. The released reference-encoder weights were trained on exactly that, so we
    reproduce it: channel 0 of the result is the *blue* channel.
    """
    bgr = to_8bit(photo.pixels)[:, :, ::-1]
    image = Image.fromarray(np.ascontiguousarray(bgr))
    squashed = image.resize((size, size), Image.Resampling.BILINEAR)
    return _chw_unit(squashed) * 2 - 1


def _rgb8_image(photo: Photo) -> Image.Image:
    """The photo as an 8-bit PIL RGB image, as upstream resized it."""
    return Image.fromarray(to_8bit(photo.pixels))


def _short_side_to(size: tuple[int, int], short: int) -> tuple[int, int]:
    """(width, height) scaled so the short side is `short`; the long side truncates, as upstream."""
    width, height = size
    if width <= height:
        return short, int(height * short / width)
    return int(width * short / height), short


def _pad_to_square(image: Image.Image) -> Image.Image:
    """Centre `image` on a black square whose side is its long side."""
    side = max(image.size)
    square = Image.new("RGB", (side, side), (0, 0, 0))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def _chw_unit(image: Image.Image) -> np.ndarray:
    """An 8-bit PIL RGB image as float32 (3, H, W) in [0, 1]."""
    values = np.asarray(image, dtype=np.float32) / 255
    return np.ascontiguousarray(values.transpose(2, 0, 1))
