"""Tests for vera_mobile.photo_io: loading, pixel encoding and safe saving.

Every test image is built here with Pillow in a temporary folder. The two ICC profiles the colour
tests need (Display P3, and a CMYK printer profile) are written byte by byte below, because no
Debian package ships a Display P3 profile and real CMYK profiles are not freely licensed.
"""

from __future__ import annotations

import io
import itertools
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from vera_mobile.errors import InputError, PhotoError
from vera_mobile.photo_io import (
    DEFAULT_MAX_PIXELS,
    Photo,
    load_photo,
    save_photo,
    to_pixels,
)

ORIENTATION = 0x0112
MAKE = 0x010F
EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003

RED = (255, 0, 0)
GREY = (128, 128, 128)


# --- Colour science for the reference values -------------------------------------------------

D65_XY = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])
SRGB_PRIMARIES = [(0.640, 0.330), (0.300, 0.600), (0.150, 0.060)]
P3_PRIMARIES = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries: list[tuple[float, float]]) -> np.ndarray:
    """Linear RGB -> XYZ for a D65 colour space, so that RGB (1, 1, 1) is the D65 white."""
    columns = np.stack([xy_to_xyz(*xy) for xy in primaries], axis=1)
    scale = np.linalg.solve(columns, xy_to_xyz(*D65_XY))
    return columns * scale


def adapt_to_d50(matrix: np.ndarray) -> np.ndarray:
    """Bradford-adapt an RGB -> XYZ(D65) matrix to D50, the ICC connection space."""
    cone_ratio = (BRADFORD @ D50_XYZ) / (BRADFORD @ xy_to_xyz(*D65_XY))
    return np.linalg.inv(BRADFORD) @ np.diag(cone_ratio) @ BRADFORD @ matrix


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def p3_to_srgb_reference(rgb8: tuple[int, int, int]) -> np.ndarray:
    """Display P3 -> sRGB in plain maths (both D65, so no adaptation), clipped to sRGB."""
    linear_p3 = srgb_decode(np.array(rgb8) / 255)  # Display P3 uses the sRGB transfer curve
    xyz = rgb_to_xyz_matrix(P3_PRIMARIES) @ linear_p3
    linear_srgb = np.clip(np.linalg.solve(rgb_to_xyz_matrix(SRGB_PRIMARIES), xyz), 0, 1)
    return srgb_encode(linear_srgb) * 255


def linear_srgb_to_lab_d50(rgb: np.ndarray) -> np.ndarray:
    xyz = adapt_to_d50(rgb_to_xyz_matrix(SRGB_PRIMARIES)) @ rgb / D50_XYZ
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# --- Minimal ICC v2 profile writer -----------------------------------------------------------


def s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(s15fixed16(v) for v in xyz)


def text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def description_tag(text: str) -> bytes:
    """textDescriptionType: ASCII part, then empty Unicode and ScriptCode parts."""
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # Unicode language code and length
        + struct.pack(">HB", 0, 0)  # ScriptCode code and length
        + bytes(67)  # ScriptCode string
    )


def curve_tag(table: np.ndarray) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">I", len(table)) + table.astype(">u2").tobytes()


def lut16_tag(inputs: int, clut: np.ndarray) -> bytes:
    """lut16Type with a 2-point grid, identity curves and the given (2**inputs, 3) uint16 table."""
    identity_curve = struct.pack(">HH", 0, 65535)
    identity_matrix = b"".join(s15fixed16(v) for v in np.eye(3).ravel())
    return (
        b"mft2\0\0\0\0"
        + struct.pack(">BBBB", inputs, 3, 2, 0)
        + identity_matrix
        + struct.pack(">HH", 2, 2)
        + identity_curve * inputs
        + clut.astype(">u2").tobytes()
        + identity_curve * 3
    )


def icc_profile(device_class: bytes, colour_space: bytes, pcs: bytes, tags: dict) -> bytes:
    """Header, tag table and 4-byte-aligned tag data; tags with identical data share it."""
    data_start = 128 + 4 + 12 * len(tags)
    entries, data, offsets = [], b"", {}
    for signature, payload in tags.items():
        if payload not in offsets:
            offsets[payload] = data_start + len(data)
            data += payload + bytes(-len(payload) % 4)
        entries.append(struct.pack(">4sII", signature, offsets[payload], len(payload)))
    body = struct.pack(">I", len(tags)) + b"".join(entries) + data
    header = (
        struct.pack(">I", 128 + len(body))
        + bytes(4)  # preferred CMM
        + struct.pack(">I", 0x02100000)  # version 2.1
        + device_class
        + colour_space
        + pcs
        + bytes(12)  # creation date
        + b"acsp"
        + bytes(24)  # platform, flags, manufacturer, model, attributes
        + bytes(4)  # rendering intent
        + b"".join(s15fixed16(v) for v in D50_XYZ)
        + bytes(48)  # creator, profile ID, reserved
    )
    return header + body


def display_p3_profile() -> bytes:
    """A matrix/TRC Display P3 profile: P3 primaries, D65 white, sRGB transfer curve."""
    colorants = adapt_to_d50(rgb_to_xyz_matrix(P3_PRIMARIES))
    trc = curve_tag(np.round(srgb_decode(np.linspace(0, 1, 1024)) * 65535))
    return icc_profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"desc": description_tag("Display P3 (vera test)"),
            b"cprt": text_tag("No copyright"),
            b"wtpt": xyz_tag(D50_XYZ),
            b"rXYZ": xyz_tag(colorants[:, 0]),
            b"gXYZ": xyz_tag(colorants[:, 1]),
            b"bXYZ": xyz_tag(colorants[:, 2]),
            b"rTRC": trc,
            b"gTRC": trc,
            b"bTRC": trc,
        },
    )


def swapped_cmyk_profile() -> bytes:
    """A CMYK profile that prints cyan ink as magenta and magenta ink as cyan.

    Pillow's naive CMYK conversion does the opposite, so a test can tell the profile was used.
    """
    rows = []
    for c, m, y, k in itertools.product((0, 1), repeat=4):  # the last input varies fastest
        lab = linear_srgb_to_lab_d50(np.array([1 - m, 1 - c, 1 - y]) * (1 - k))
        # ICC v2 16-bit Lab: L 0..100 -> 0..0xFF00, a and b -128..128 -> 0..0x10000.
        rows.append([lab[0] * 0xFF00 / 100, (lab[1] + 128) * 256, (lab[2] + 128) * 256])
    clut = np.clip(np.round(rows), 0, 65535)
    return icc_profile(
        b"prtr",
        b"CMYK",
        b"Lab ",
        {
            b"desc": description_tag("Swapped CMYK (vera test)"),
            b"cprt": text_tag("No copyright"),
            b"wtpt": xyz_tag(D50_XYZ),
            b"A2B0": lut16_tag(4, clut),
        },
    )


# --- Image helpers ---------------------------------------------------------------------------


def exif_bytes(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "VeraCam"
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = "2024:05:06 07:08:09"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def write(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def png_rgb(width: int, height: int, bit_depth: int, rows: bytes) -> bytes:
    """A PNG file of RGB rows (each starting with its filter byte), written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_48bit(samples: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, which Pillow cannot write itself."""
    height, width, _ = samples.shape
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(height))
    return png_rgb(width, height, 16, rows)


def marked_jpeg(path: Path, orientation: int) -> Path:
    """A 64x32 grey JPEG with a red 16x16 block in the stored top-left corner."""
    image = Image.new("RGB", (64, 32), GREY)
    image.paste(RED, (0, 0, 16, 16))
    return write(image, path, quality=95, exif=exif_bytes(orientation))


def is_red(pixel: np.ndarray) -> bool:
    return pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


def icc_description(path: Path) -> str:
    with Image.open(path) as image:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    return profile.profile.profile_description


# --- load_photo: orientation and EXIF --------------------------------------------------------


def test_orientation_6_rotates_clockwise(tmp_path):
    photo = load_photo(marked_jpeg(tmp_path / "six.jpg", orientation=6))

    assert photo.size == (32, 64)
    assert is_red(photo.pixels[8, 24])  # stored top-left is now top-right
    assert not is_red(photo.pixels[8, 8])


def test_orientation_8_rotates_counter_clockwise(tmp_path):
    photo = load_photo(marked_jpeg(tmp_path / "eight.jpg", orientation=8))

    assert photo.size == (32, 64)
    assert is_red(photo.pixels[56, 8])  # stored top-left is now bottom-left
    assert not is_red(photo.pixels[8, 8])


def test_exif_is_kept_without_orientation(tmp_path):
    photo = load_photo(marked_jpeg(tmp_path / "six.jpg", orientation=6))

    exif = Image.Exif()
    exif.load(photo.exif)
    assert ORIENTATION not in exif
    assert exif[MAKE] == "VeraCam"
    assert exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] == "2024:05:06 07:08:09"


def test_exif_without_orientation_is_kept_byte_for_byte(tmp_path):
    original = exif_bytes()
    path = write(Image.new("RGB", (8, 8)), tmp_path / "plain.jpg", exif=original)

    assert load_photo(path).exif == original


def test_photo_without_exif_has_none(tmp_path):
    path = write(Image.new("RGB", (8, 8)), tmp_path / "bare.png")
    photo = load_photo(path)

    assert photo.exif is None
    assert photo.path == path


# --- load_photo: colour management -----------------------------------------------------------


def load_p3(tmp_path: Path, colours: list[tuple[int, int, int]]) -> Photo:
    image = Image.new("RGB", (len(colours), 1))
    image.putdata(colours)
    return load_photo(write(image, tmp_path / "p3.png", icc_profile=display_p3_profile()))


def test_display_p3_red_becomes_clipped_srgb_red(tmp_path):
    photo = load_p3(tmp_path, [RED])

    assert photo.source_icc == "Display P3 (vera test)"
    red = photo.pixels[0, 0].astype(int)
    assert red[0] == 255 and red[1] <= 2 and red[2] <= 2


def test_display_p3_grey_stays_grey(tmp_path):
    grey = load_p3(tmp_path, [GREY]).pixels[0, 0].astype(int)

    assert np.abs(grey - 128).max() <= 1


def test_display_p3_colours_match_the_reference_maths(tmp_path):
    # (234, 51, 35) is sRGB red written in Display P3; (100, 150, 200) is well inside sRGB;
    # (60, 200, 90) is just outside it, so its red clips to 0 while green and blue stay exact.
    colours = [(234, 51, 35), (100, 150, 200), (60, 200, 90)]
    photo = load_p3(tmp_path, colours)

    for x, colour in enumerate(colours):
        expected = p3_to_srgb_reference(colour)
        assert np.abs(photo.pixels[0, x] - expected).max() <= 2, colour
    assert np.abs(photo.pixels[0, 0].astype(int) - RED).max() <= 2
    assert photo.pixels[0, 1].tolist() != list(colours[1])  # the conversion really changed values


def test_srgb_tagged_photo_is_left_untouched(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = write(Image.new("RGB", (4, 4), (100, 150, 200)), tmp_path / "s.png", icc_profile=srgb)
    photo = load_photo(path)

    assert photo.source_icc is None
    assert (photo.pixels == (100, 150, 200)).all()


def test_unusable_icc_profile_warns_and_is_treated_as_srgb(tmp_path):
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    path = write(image, tmp_path / "bad.png", icc_profile=b"junk" * 40)

    with pytest.warns(UserWarning, match="ICC profile"):
        photo = load_photo(path)
    assert photo.source_icc is None
    assert (photo.pixels == (1, 2, 3)).all()


def test_cmyk_without_profile_uses_plain_conversion(tmp_path):
    path = write(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), tmp_path / "cmyk.tif")
    photo = load_photo(path)

    assert photo.pixels.dtype == np.uint8
    assert (photo.pixels == RED).all()


def test_cmyk_with_profile_is_converted_through_the_profile(tmp_path):
    cyan_ink = Image.new("CMYK", (4, 4), (255, 0, 0, 0))
    path = write(cyan_ink, tmp_path / "cmyk.tif", icc_profile=swapped_cmyk_profile())
    photo = load_photo(path)

    assert photo.source_icc == "Swapped CMYK (vera test)"
    # The profile prints cyan ink as magenta; Pillow's plain conversion would give cyan.
    assert np.abs(photo.pixels[0, 0].astype(int) - (255, 0, 255)).max() <= 3


# --- load_photo: pixel modes -----------------------------------------------------------------


def test_greyscale_becomes_rgb(tmp_path):
    photo = load_photo(write(Image.new("L", (5, 3), 77), tmp_path / "l.png"))

    assert photo.pixels.shape == (3, 5, 3)
    assert photo.bit_depth == 8
    assert (photo.pixels == 77).all()


def test_palette_becomes_rgb(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.putdata([0, 1])
    photo = load_photo(write(image, tmp_path / "p.png"))

    assert photo.pixels[0].tolist() == [[10, 20, 30], [200, 100, 50]]
    assert photo.alpha is None


def test_palette_transparency_becomes_alpha(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.putdata([0, 1])
    photo = load_photo(write(image, tmp_path / "p.png", transparency=0))

    assert photo.alpha.tolist() == [[0, 255]]
    assert photo.pixels[0, 1].tolist() == [200, 100, 50]


def test_rgba_keeps_alpha_separately(tmp_path):
    image = Image.new("RGBA", (3, 2), (10, 20, 30, 77))
    photo = load_photo(write(image, tmp_path / "rgba.png"))

    assert photo.pixels.shape == (2, 3, 3)
    assert (photo.pixels == (10, 20, 30)).all()
    assert photo.alpha.dtype == np.uint8 and (photo.alpha == 77).all()


def test_grey_with_alpha_keeps_alpha(tmp_path):
    photo = load_photo(write(Image.new("LA", (3, 2), (90, 40)), tmp_path / "la.png"))

    assert (photo.pixels == 90).all()
    assert (photo.alpha == 40).all()


def test_one_bit_becomes_black_and_white(tmp_path):
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    photo = load_photo(write(image, tmp_path / "bw.png"))

    assert photo.pixels[0].tolist() == [[0, 0, 0], [255, 255, 255]]


GREY_16 = [[0, 1000, 65535]]
GREY_16_IMAGES = {
    "I;16": lambda: Image.fromarray(np.array(GREY_16, dtype=np.uint16)),
    "I;16B": lambda: Image.frombytes("I;16B", (3, 1), np.array(GREY_16, dtype=">u2").tobytes()),
    "I": lambda: Image.fromarray(np.array(GREY_16, dtype=np.int32)),
}


@pytest.mark.parametrize("mode, suffix", [("I;16", ".png"), ("I;16B", ".tif"), ("I", ".tif")])
def test_16_bit_greyscale_becomes_16_bit_rgb(tmp_path, mode, suffix):
    image = GREY_16_IMAGES[mode]()
    assert image.mode == mode
    photo = load_photo(write(image, tmp_path / f"grey16{suffix}"))

    assert photo.bit_depth == 16
    assert photo.pixels.dtype == np.uint16
    assert photo.pixels[0].tolist() == [[0, 0, 0], [1000, 1000, 1000], [65535, 65535, 65535]]


def test_48_bit_png_loads_as_8_bit_high_bytes():
    # Documents a Pillow 13 fact: there is no 16-bit RGB mode, it keeps the high byte.
    samples = np.array([[[0x12FF, 0x3480, 0xFFFF]]], dtype=np.uint16)
    photo = load_photo(png_48bit(samples))

    assert photo.bit_depth == 8
    assert photo.pixels[0, 0].tolist() == [0x12, 0x34, 0xFF]


@pytest.mark.parametrize("mode", ["F", "LAB"])
def test_modes_without_a_faithful_rgb_conversion_are_refused(mode):
    with pytest.raises(PhotoError, match=f"mode '{mode}'"):
        load_photo(Image.new(mode, (2, 2)))


def test_bytes_and_pil_inputs_are_accepted(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 2), (5, 6, 7)).save(buffer, "PNG")

    from_bytes = load_photo(buffer.getvalue())
    from_image = load_photo(Image.new("RGB", (4, 2), (5, 6, 7)))

    for photo in (from_bytes, from_image):
        assert photo.path is None
        assert photo.size == (4, 2)
        assert (photo.pixels == (5, 6, 7)).all()


# --- load_photo: limits and errors -----------------------------------------------------------


def test_default_limit_lets_48_mp_photos_through():
    # A header-only 8000x6000 PNG passes the size check and only then fails, for lack of data.
    assert DEFAULT_MAX_PIXELS > 8_000 * 6_000
    with pytest.raises(PhotoError, match="truncated"):
        load_photo(png_rgb(8_000, 6_000, 8, rows=b"\0" * 10))


def test_too_many_pixels_is_refused(tmp_path):
    path = write(Image.new("RGB", (100, 100)), tmp_path / "big.png")

    with pytest.raises(PhotoError, match="10,000 pixels"):
        load_photo(path, max_pixels=5_000)
    with pytest.raises(PhotoError, match="more than the limit"):
        load_photo(Image.new("RGB", (100, 100)), max_pixels=5_000)


def test_limit_is_checked_before_decoding(tmp_path):
    # The header claims 15000x10000 but there is no pixel data: decoding would fail differently
    # (and slowly), so the limit error proves the header alone was judged.
    path = tmp_path / "claims_150mp.png"
    path.write_bytes(png_rgb(15_000, 10_000, 8, rows=b"\0" * 10))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's own bomb warning must not leak either
        with pytest.raises(PhotoError, match="more than the limit"):
            load_photo(path, max_pixels=100_000_000)


def test_our_limit_replaces_pillows_bomb_error(tmp_path, monkeypatch):
    path = write(Image.new("RGB", (50, 50)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow alone would error above 2,000 pixels

    assert load_photo(path).size == (50, 50)  # within our default limit
    with pytest.raises(PhotoError, match="more than the limit of 2,000"):
        load_photo(path, max_pixels=2_000)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # Pillow's guard is restored afterwards


def test_pillow_bomb_warning_is_replaced_by_our_limit(tmp_path, monkeypatch):
    path = write(Image.new("RGB", (50, 50)), tmp_path / "fine.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # Pillow warns at 2,500 pixels

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_photo(path, max_pixels=3_000).size == (50, 50)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.jpg"
    with pytest.raises(PhotoError, match="nowhere.jpg does not exist"):
        load_photo(path)


def test_directory(tmp_path):
    with pytest.raises(PhotoError, match="is a directory"):
        load_photo(tmp_path)


def test_garbage_file_and_bytes(tmp_path):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"this is not a photo" * 10)

    with pytest.raises(PhotoError, match=r"garbage\.jpg is not an image"):
        load_photo(path)
    with pytest.raises(PhotoError, match="given image bytes"):
        load_photo(b"this is not a photo")


def test_truncated_jpeg(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])

    with pytest.raises(PhotoError, match=r"could not read .*cut\.jpg.*truncated"):
        load_photo(path)


# --- to_pixels ------------------------------------------------------------------------------


def test_to_pixels_rounds_half_to_even_after_clipping():
    halves = np.array([0.5, 1.5, 2.5, 126.5]) / 255
    assert ((halves * 255) % 1 == 0.5).all()  # the inputs really are exact halves
    rgb = np.stack([halves] * 3, axis=1)[np.newaxis]
    out_of_range = np.array([[[-0.3, 1.7, 1.0]]])

    assert to_pixels(rgb)[0, :, 0].tolist() == [0, 2, 2, 126]
    assert to_pixels(out_of_range).tolist() == [[[0, 255, 255]]]
    assert to_pixels(rgb).dtype == np.uint8


def test_to_pixels_16_bit():
    rgb = np.array([[[0.0, 0.5, 1.0]]])
    pixels = to_pixels(rgb, bit_depth=16)

    assert pixels.dtype == np.uint16
    assert pixels.tolist() == [[[0, 32768, 65535]]]  # 32767.5 rounds to the even 32768


def test_to_pixels_rejects_bad_arguments():
    with pytest.raises(InputError, match="bit_depth"):
        to_pixels(np.zeros((2, 2, 3)), bit_depth=12)
    with pytest.raises(InputError, match="shape"):
        to_pixels(np.zeros((2, 2)))


# --- save_photo -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_save_embeds_srgb_and_carries_exif_without_orientation(tmp_path, suffix):
    photo = load_photo(marked_jpeg(tmp_path / "in.jpg", orientation=6))
    out = save_photo(photo.pixels, tmp_path / f"out{suffix}", like=photo)

    assert out == tmp_path / f"out{suffix}"
    assert icc_description(out) == "sRGB built-in"
    with Image.open(out) as saved:
        exif = saved.getexif()
        assert saved.size == (32, 64)  # written upright ...
        assert ORIENTATION not in exif  # ... so no viewer may rotate it again
        assert exif[MAKE] == "VeraCam"


def test_save_creates_parent_folders(tmp_path):
    out = save_photo(np.zeros((2, 2, 3), np.uint8), tmp_path / "a" / "b" / "out.png")

    assert out.is_file()


def test_save_reattaches_alpha_where_the_format_allows(tmp_path):
    image = Image.new("RGBA", (4, 3), (10, 20, 30, 0))
    image.putpixel((1, 1), (10, 20, 30, 200))
    photo = load_photo(write(image, tmp_path / "in.png"))

    png = save_photo(photo.pixels, tmp_path / "out.png", like=photo)
    jpg = save_photo(photo.pixels, tmp_path / "out.jpg", like=photo)

    with Image.open(png) as saved:
        assert saved.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(saved.getchannel("A")), photo.alpha)
    with Image.open(jpg) as saved:
        assert saved.mode == "RGB"


def test_save_writes_16_bit_pixels_as_rounded_8_bit(tmp_path):
    every_value = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    pixels = np.stack([every_value] * 3, axis=2)
    out = save_photo(pixels, tmp_path / "out.png")

    with Image.open(out) as saved:
        np.testing.assert_array_equal(np.asarray(saved)[..., 0], np.round(every_value / 257))


def test_save_never_overwrites_the_input(tmp_path):
    source = write(Image.new("RGB", (4, 4), (1, 2, 3)), tmp_path / "in.png")
    original_bytes = source.read_bytes()
    photo = load_photo(source)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(source)

    for same_file in [source, tmp_path / "sub" / ".." / "in.png", tmp_path / "link.png"]:
        with pytest.raises(PhotoError, match="refusing to write"):
            save_photo(np.zeros((4, 4, 3), np.uint8), same_file, like=photo)
    assert source.read_bytes() == original_bytes


def test_save_never_overwrites_protected_paths(tmp_path):
    keep = write(Image.new("RGB", (4, 4)), tmp_path / "keep.png")
    original_bytes = keep.read_bytes()

    with pytest.raises(PhotoError, match="refusing to write"):
        save_photo(np.zeros((4, 4, 3), np.uint8), keep, protect=[tmp_path / "other.png", str(keep)])
    assert keep.read_bytes() == original_bytes


def broken_save(self, fp, *args, **kwargs):
    """Stands in for Image.save: writes part of a file, then fails like a crashing encoder."""
    fp.write(b"half an image")
    raise OSError("encoder exploded")


def test_failed_encoding_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(PhotoError, match="encoder exploded"):
        save_photo(np.zeros((4, 4, 3), np.uint8), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_encoding_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(PhotoError):
        save_photo(np.zeros((4, 4, 3), np.uint8), target)
    assert target.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [target]


def test_save_overwrites_an_unprotected_previous_result(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")
    save_photo(np.full((2, 2, 3), 9, np.uint8), target)

    assert load_photo(target).pixels.tolist() == [[[9, 9, 9]] * 2] * 2


def test_save_rejects_unknown_suffix_and_bad_pixels(tmp_path):
    with pytest.raises(PhotoError, match="unknown suffix '.bmp'"):
        save_photo(np.zeros((2, 2, 3), np.uint8), tmp_path / "out.bmp")
    with pytest.raises(InputError, match="uint8 or uint16"):
        save_photo(np.zeros((2, 2, 3), np.float32), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
