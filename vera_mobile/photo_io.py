"""Reading and writing photo files: decoding, orientation and colour profile into a `Photo`, and safe saves.

Loading (`load_photo`) turns any photo Pillow can open into one canonical `Photo`:

* **Orientation.** The EXIF orientation is applied once, at load, with `ImageOps.exif_transpose`.
  Upstream VeraRetouch applied it to only one of its two image views, so a portrait phone photo
  reached one model upright and the other sideways. Doing it at load fixes that for every view.
  The Orientation tag is then removed from the kept EXIF so no viewer rotates the result again.
* **Colour.** Embedded ICC profiles are converted to sRGB with littleCMS (`PIL.ImageCms`), because
  the models saw sRGB and iPhones save Display P3. We use the *relative colorimetric* intent:
  every colour sRGB can show stays exactly that colour and only out-of-gamut ones are clipped,
  which is what browsers and photo viewers show. (Matrix profiles such as Display P3 carry no
  perceptual tables, so a "perceptual" request would fall back to colorimetric anyway.)
  Black-point compensation maps a CMYK profile's darkest ink to sRGB black instead of dark grey.
  Photos whose profile calls itself sRGB are not touched, so they stay bit-identical to what
  upstream saw. A profile littleCMS cannot use is ignored with a warning (treated as sRGB).
* **Pixel modes.** RGB, RGBX, YCbCr, L, P, 1 and CMYK become 8-bit RGB. Transparency (RGBA, RGBa,
  LA, PA, or palette / colour-key transparency) is split off into `Photo.alpha`. 16-bit greyscale
  (I;16, I;16B, I) becomes 16-bit RGB; an ICC profile on such an image is ignored (rare, and Pillow
  has no 16-bit RGB mode to convert into). Float ("F") and CIELAB images are refused.
* **16-bit colour, Pillow 13 facts.** Pillow has no 16-bit-per-channel RGB mode. It opens 48-bit
  PNGs and TIFFs as 8-bit RGB by keeping the high byte of each sample (a truncation, not a
  rounding), so such photos load with `bit_depth == 8`. For the same reason `save_photo` writes
  16-bit pixels as 8 bit (rounded). Only greyscale keeps 16 bits through `load_photo`.
* **Size limit.** Photos with more than `max_pixels` pixels are refused from the header alone,
  before any pixel data is decoded. Pillow's own decompression-bomb guard (a warning, then an error
  at about 179 MP) is switched off while we open a file, because our explicit limit replaces it.
* **Frames.** Only the first frame of an animated GIF, APNG or multi-page TIFF is read, with a
  warning that says how many frames were left out.
* **Damaged EXIF.** A photo whose EXIF block cannot be parsed loads without EXIF, with a warning.

The model's input views of a `Photo` are made in `vera_mobile.views`.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from vera_mobile.errors import InputError, PhotoError
from vera_mobile.files import same_file, temp_path

# Far above 48 MP phone photos, far below what a decompression bomb claims.
DEFAULT_MAX_PIXELS = 200_000_000

_ORIENTATION_TAG = 0x0112
_EXIF_HEADER = b"Exif\x00\x00"

# Pillow modes holding one 16-bit (or, for "I", 32-bit integer) grey sample per pixel.
_GREY_16_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
# Modes with an alpha band ("RGBa" is TIFF's premultiplied alpha).
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "PA"}
# Every mode Pillow's file readers produce that converts faithfully to RGB. Left out: "F" (float
# samples of unknown scale) and "LAB" (Pillow's plain conversion of it gives wrong colours).
_SUPPORTED_MODES = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr"} | _ALPHA_MODES | _GREY_16_MODES

# Which Pillow mode an image must be in to match its ICC profile's colour space.
_PROFILE_SPACE_MODES = {"RGB ": "RGB", "GRAY": "L", "CMYK": "CMYK"}

_SRGB_PROFILE = ImageCms.createProfile("sRGB")
_SRGB_ICC = ImageCms.ImageCmsProfile(_SRGB_PROFILE).tobytes()

# What Pillow's decoders raise on missing, corrupt or truncated files.
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    struct.error,
    Image.DecompressionBombError,
    MemoryError,
)

_SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}
_LOSSY_QUALITY = 95


@dataclass(eq=False)  # eq=False: comparing numpy arrays with == has no single truth value.
class Photo:
    """A decoded photo: upright, sRGB, with its alpha and EXIF kept aside for saving."""

    pixels: np.ndarray  # (H, W, 3) RGB, uint8 or uint16, sRGB-encoded, already upright
    alpha: np.ndarray | None  # (H, W), same dtype as pixels, or None
    bit_depth: int  # 8 or 16
    exif: bytes | None  # source EXIF without the Orientation tag
    source_icc: str | None  # description of the profile converted from; None if none or sRGB
    path: Path | None  # where it was loaded from, if a file

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]


# --- Loading ---------------------------------------------------------------------------------


def load_photo(
    source: str | os.PathLike | bytes | Image.Image,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Photo:
    """Decode a photo file, encoded bytes or PIL image into an upright sRGB `Photo`.

    Raises `PhotoError` (naming the file) if it is missing, unreadable, truncated, or has more
    than `max_pixels` pixels.
    """
    if isinstance(source, Image.Image):
        label = "the given PIL image"
        _load_checked(source, max_pixels, label)
        return _to_photo(source, None, label)

    path = None if isinstance(source, bytes) else Path(source)
    label = "the given image bytes" if path is None else str(path)
    with _open_checked(source, max_pixels, label) as image:
        return _to_photo(image, path, label)


def check_photo_file(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise PhotoError unless `path` is a file Pillow recognises within `max_pixels`; reads the header only.

    For checking a batch cheaply before a model loads; a photo can still fail later in decoding.
    """
    path = Path(path)
    if path.is_dir():
        raise PhotoError(f"{path} is a directory, not a photo")
    if not path.exists():
        raise PhotoError(f"{path} does not exist")
    try:
        with _without_pillow_bomb_guard(Image.open, path) as image:
            width, height = image.size
            mode = image.mode
    except _READ_ERRORS as exc:
        raise _read_error(str(path), exc) from exc
    if width * height > max_pixels:
        raise PhotoError(
            f"{path} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
        )
    if mode not in _SUPPORTED_MODES:
        raise PhotoError(f"{path} stores pixels in Pillow mode {mode!r}, which vera-mobile cannot read")


def _open_checked(source: str | os.PathLike | bytes, max_pixels: int, label: str) -> Image.Image:
    """Open and fully decode `source`, refusing oversized images before decoding them."""
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = _without_pillow_bomb_guard(Image.open, file)
    except _READ_ERRORS as exc:
        raise _read_error(label, exc) from exc
    try:
        _load_checked(image, max_pixels, label)
    except PhotoError:
        image.close()
        raise
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        warnings.warn(f"{label} has {frames} frames; only the first is used", stacklevel=3)
    return image


def _without_pillow_bomb_guard(function, *args):  # noqa: ANN001, ANN202 (a thin wrapper)
    """Call `function` with Pillow's decompression-bomb guard off: our `max_pixels` check replaces it.

    Pillow's guard is a module global, so another thread opening an image meanwhile also runs
    without it; our own limit still applies to every photo loaded through this module.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return function(*args)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _load_checked(image: Image.Image, max_pixels: int, label: str) -> None:
    """Check the header size against `max_pixels`, then decode the pixel data."""
    width, height = image.size
    if width * height > max_pixels:
        raise PhotoError(
            f"{label} is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} (in Python, load_photo(..., max_pixels=N) raises it for a trusted photo)"
        )
    try:
        _without_pillow_bomb_guard(image.load)
    except _READ_ERRORS as exc:
        raise _read_error(label, exc) from exc


def _read_error(label: str, exc: BaseException) -> PhotoError:
    """A PhotoError that says in plain words why `label` could not be read."""
    if isinstance(exc, FileNotFoundError):
        return PhotoError(f"{label} does not exist")
    if isinstance(exc, IsADirectoryError):
        return PhotoError(f"{label} is a directory, not a photo")
    if isinstance(exc, Image.UnidentifiedImageError):
        return PhotoError(f"{label} is not an image format Pillow can read")
    if isinstance(exc, MemoryError):
        return PhotoError(f"{label} needs more memory to decode than is available")
    return PhotoError(f"could not read {label}: {exc}")


def _to_photo(image: Image.Image, path: Path | None, label: str) -> Photo:
    """Turn a decoded PIL image into a `Photo` (upright, sRGB, alpha split off)."""
    if image.mode not in _SUPPORTED_MODES:
        raise PhotoError(
            f"{label} stores pixels in Pillow mode {image.mode!r}, which vera-mobile cannot read; "
            "save it as 8- or 16-bit RGB or greyscale"
        )
    exif = _exif_without_orientation(image)
    upright = _upright(image)
    if upright.mode in _GREY_16_MODES:
        return Photo(_grey16_to_rgb(upright), None, 16, exif, None, path)

    colour, alpha = _split_alpha(upright)
    rgb, source_icc = _convert_to_srgb(colour, image.info.get("icc_profile"), label)
    return Photo(np.array(rgb), alpha, 8, exif, source_icc, path)


def _exif_without_orientation(image: Image.Image) -> bytes | None:
    """The image's EXIF block with the Orientation tag dropped, since we apply it at load."""
    raw = image.info.get("exif")
    if not raw:
        return None
    # WebP stores EXIF without the JPEG-style header; add it so every writer gets the same form.
    if not raw.startswith(_EXIF_HEADER):
        raw = _EXIF_HEADER + raw
    exif = Image.Exif()
    try:
        exif.load(raw)
        if _ORIENTATION_TAG not in exif:
            return raw  # keep the original bytes when there is nothing to change
        del exif[_ORIENTATION_TAG]
        return exif.tobytes()
    except _READ_ERRORS as exc:  # Pillow raises SyntaxError, struct.error, ... on damaged blocks
        warnings.warn(f"dropping the unreadable EXIF block of {_label_of(image)} ({exc})", stacklevel=4)
        return None


def _label_of(image: Image.Image) -> str:
    return str(getattr(image, "filename", "") or "the photo")


def _upright(image: Image.Image) -> Image.Image:
    """`ImageOps.exif_transpose`, or the image as stored when its EXIF cannot be parsed."""
    try:
        return ImageOps.exif_transpose(image)
    except _READ_ERRORS:  # already warned about by _exif_without_orientation
        return image.copy()


def _grey16_to_rgb(image: Image.Image) -> np.ndarray:
    """16-bit greyscale as (H, W, 3) uint16 RGB."""
    # Mode "I" holds 32-bit integers; 16-bit files fit 0..65535, the clip only guards odd files.
    grey = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def _split_alpha(image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """Separate transparency (alpha band, or palette/colour-key transparency) from colour."""
    if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
        return image, None
    rgba = image.convert("RGBA")  # also un-premultiplies RGBa and resolves palette alpha
    return rgba.convert("RGB"), np.array(rgba.getchannel("A"))


def _convert_to_srgb(
    image: Image.Image, icc: bytes | None, label: str
) -> tuple[Image.Image, str | None]:
    """Convert `image` to 8-bit sRGB; also return the description of the profile converted from."""
    if not icc:
        return image.convert("RGB"), None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = profile.profile.profile_description or "unnamed ICC profile"
        if "srgb" in description.lower():
            return image.convert("RGB"), None
        mode = _PROFILE_SPACE_MODES[profile.profile.xcolor_space]
        transform = ImageCms.buildTransform(
            profile,
            _SRGB_PROFILE,
            mode,
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
    except (ImageCms.PyCMSError, KeyError, OSError, ValueError) as exc:
        warnings.warn(
            f"ignoring the unusable ICC profile embedded in {label} ({exc!r}); "
            "treating its colours as sRGB",
            stacklevel=4,
        )
        return image.convert("RGB"), None
    return ImageCms.applyTransform(image.convert(mode), transform), description


# --- Pixels and saving -----------------------------------------------------------------------


def to_pixels(rgb01: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float (..., 3) RGB in [0, 1] (a photo or a tile) to uint8/uint16: clip, scale, round half to even."""
    dtypes = {8: np.uint8, 16: np.uint16}
    if bit_depth not in dtypes:
        raise InputError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
    values = np.asarray(rgb01)
    if values.ndim < 2 or values.shape[-1] != 3 or not np.issubdtype(values.dtype, np.floating):
        raise InputError(f"expected a float (..., 3) RGB array, got {values.dtype} with shape {values.shape}")
    dtype = dtypes[bit_depth]
    return np.round(np.clip(values, 0.0, 1.0) * np.iinfo(dtype).max).astype(dtype)


def save_photo(
    pixels: np.ndarray,
    path: str | os.PathLike,
    like: Photo | None = None,
    protect: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write RGB pixels to `path` atomically, in the format its suffix names; return the path.

    Never overwrites `like.path` or any path in `protect` (raises `PhotoError` and writes nothing).
    Embeds an sRGB ICC profile, carries `like.exif` and re-attaches `like.alpha` where the format
    allows (alpha: PNG, TIFF, WebP). JPEG and WebP use quality 95. Pillow 13 cannot write 16-bit
    RGB, so uint16 pixels are rounded to 8 bit. Missing parent folders are created.
    """
    target = Path(path)
    file_format = _format_for(target)
    _refuse_overwrite(target, like, protect)
    image = _image_for_saving(pixels, like, file_format)
    _write_atomically(image, target, file_format, _save_options(file_format, like))
    return target


def _format_for(target: Path) -> str:
    """The Pillow format name for the target's suffix."""
    file_format = _SAVE_FORMATS.get(target.suffix.lower())
    if file_format is None:
        raise PhotoError(
            f"cannot write {target}: unknown suffix {target.suffix!r}; "
            f"use one of {', '.join(sorted(_SAVE_FORMATS))}"
        )
    return file_format


def _refuse_overwrite(
    target: Path, like: Photo | None, protect: Iterable[str | os.PathLike]
) -> None:
    """Raise PhotoError if `target` is the input photo or any protected path."""
    guarded = [Path(p) for p in protect]
    if like is not None and like.path is not None:
        guarded.append(like.path)
    for original in guarded:
        if same_file(target, original):
            raise PhotoError(
                f"refusing to write {target}: it would overwrite {original}, which is an input "
                "or protected file; choose a different output path"
            )


def _image_for_saving(pixels: np.ndarray, like: Photo | None, file_format: str) -> Image.Image:
    """A PIL image of the pixels, with the source alpha attached where the format keeps it."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise InputError(
            "expected uint8 or uint16 (H, W, 3) pixels, "
            f"got {pixels.dtype} with shape {pixels.shape}"
        )
    image = Image.fromarray(to_8bit(pixels))
    alpha = like.alpha if like is not None else None
    if alpha is not None and file_format in _ALPHA_FORMATS:
        if alpha.shape != pixels.shape[:2]:
            raise InputError(
                f"the source alpha is {alpha.shape[1]}x{alpha.shape[0]} but the pixels are "
                f"{pixels.shape[1]}x{pixels.shape[0]}"
            )
        image.putalpha(Image.fromarray(to_8bit(alpha)))
    return image


def _save_options(file_format: str, like: Photo | None) -> dict[str, object]:
    """Pillow save() keyword arguments: sRGB profile, EXIF, and quality for lossy formats."""
    options: dict[str, object] = {"icc_profile": _SRGB_ICC}
    if like is not None and like.exif:
        options["exif"] = like.exif  # all four formats we write can hold EXIF
    if file_format in ("JPEG", "WEBP"):
        options["quality"] = _LOSSY_QUALITY
    return options


def _write_atomically(
    image: Image.Image, target: Path, file_format: str, options: dict[str, object]
) -> None:
    """Encode into a temporary file beside `target`, then rename it over `target`.

    A rename within one folder is atomic, so readers see the old file or the complete new one,
    never a partial one; a failed encode leaves nothing behind.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhotoError(f"cannot create the folder {target.parent}: {exc}") from exc

    temp = temp_path(target)
    try:
        # "x" creates the file exclusively, with the usual permissions for new files.
        with temp.open("xb") as file:
            image.save(file, format=file_format, **options)
            # Data must be on disk before the rename, or a crash could expose an empty file.
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except (OSError, ValueError) as exc:
        raise PhotoError(f"could not write {target}: {exc}") from exc
    finally:
        try:
            temp.unlink(missing_ok=True)  # no-op after a successful rename
        except OSError:  # never hide the error that brought us here
            pass


def to_8bit(values: np.ndarray) -> np.ndarray:
    """uint8 unchanged; uint16 rounded to the nearest 8-bit value."""
    if values.dtype == np.uint8:
        return values
    # (v + 128) // 257 equals round(v / 257) exactly (257 is odd, so there are no ties), and
    # integer maths avoids a float64 copy of a full-size photo.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
