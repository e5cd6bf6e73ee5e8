"""The develop engine against independent photo editors, on real photos.

* Exposure2012 against darktable-cli (darktable 4.2): an XMP whose history holds only the exposure
  module, run in darktable's scene-referred v3.0 JPEG module order, so exposure acts on linear
  light (colour in -> exposure -> colour out). Both must be the analytic x2 per stop.
* Saturation, Vibrance and the per-band Hue/Saturation/Luminance sliders against rawtherapee-cli
  (RawTherapee 5.9) with plain-INI .pp3 profiles built on RawTherapee's neutral profile. These
  tools define their sliders differently (Lab chroma, HSV saturation, HSV-hue curves), so the
  check is direction and monotonicity, and the measured per-pixel agreement is printed
  (`pytest -s tests/test_develop_oracles.py`).

Each program runs once per setting on all photos, in a temporary directory with its own
configuration and cache folders. A missing program skips its tests and names the Debian package.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

tifffile = pytest.importorskip("tifffile")  # reads the editors' 16-bit / float TIFF output

from conftest import skimage_photo  # noqa: E402
from vera_mobile.develop import BANDS, develop  # noqa: E402
from vera_mobile.develop import colour as dcolour  # noqa: E402
from vera_mobile.develop.engine import band_weights  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402

DARKTABLE = shutil.which("darktable-cli")
RAWTHERAPEE = shutil.which("rawtherapee-cli")
needs_darktable = pytest.mark.skipif(
    DARKTABLE is None,
    reason="darktable-cli not found: install darktable (Debian: apt-get install --no-install-recommends darktable)")
needs_rawtherapee = pytest.mark.skipif(
    RAWTHERAPEE is None,
    reason="rawtherapee-cli not found: install RawTherapee (Debian: apt-get install --no-install-recommends rawtherapee)")

PHOTOS = ("coffee", "chelsea", "astronaut")
SIDE = 160  # long side in pixels: ~17 000 pixels per photo keeps every editor run well under a second
VALUES = (-60, -30, 30, 60)  # slider values compared in direction and monotonicity
EDITOR_TIMEOUT_S = 120


# --- Photos and colour measures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Downscaled real photos as 8-bit PNG files in one folder, and as float64 sRGB [0, 1] arrays."""
    folder = tmp_path_factory.mktemp("oracle_photos")
    arrays = {}
    for name in PHOTOS:
        image = Image.fromarray(load_photo(skimage_photo(f"{name}.png")).pixels)
        image.thumbnail((SIDE, SIDE), Image.Resampling.BILINEAR)
        image.save(folder / f"{name}.png")
        arrays[name] = np.asarray(image).astype(np.float64) / 255
    return folder, arrays


def ours(rgb: np.ndarray, params: dict[str, float]) -> np.ndarray:
    return develop(torch.from_numpy(rgb), params).numpy()


def linear(rgb: np.ndarray) -> np.ndarray:
    return dcolour.srgb_decode(torch.from_numpy(np.clip(rgb, 0, 1))).numpy()


def oklch(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OKLab lightness, chroma and hue (degrees) of sRGB-encoded pixels."""
    lab = dcolour.linear_to_oklab(torch.from_numpy(linear(rgb))).numpy()
    return lab[..., 0], np.hypot(lab[..., 1], lab[..., 2]), np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))


def hsv_hue(rgb: np.ndarray) -> np.ndarray:
    """HSV hue in degrees (the axis of RawTherapee's HSV equalizer)."""
    r, g, b = np.moveaxis(rgb, -1, 0)
    top, spread = rgb.max(-1), np.ptp(rgb, -1) + 1e-12
    hue = np.where(top == r, (g - b) / spread, np.where(top == g, 2 + (b - r) / spread, 4 + (r - g) / spread))
    return (60 * hue) % 360


def hue_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + 180) % 360 - 180


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (the data are continuous, so ties do not matter)."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def agreement(theirs: list[np.ndarray], mine: list[np.ndarray], noise: float) -> tuple[float, float]:
    """(fraction of pixels that both move by more than `noise` in the same direction, pooled Spearman rho)."""
    t, m = np.concatenate([a.ravel() for a in theirs]), np.concatenate([a.ravel() for a in mine])
    moved = (np.abs(t) > noise) & (np.abs(m) > noise)
    assert moved.mean() > 0.2, "too few pixels moved to compare directions"
    return float(np.mean(np.sign(t[moved]) == np.sign(m[moved]))), spearman(t, m)


def isolated_env(root: Path) -> dict[str, str]:
    """Run an editor with HOME, XDG and RawTherapee settings / cache folders inside `root`."""
    env = dict(os.environ)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "RT_SETTINGS", "RT_CACHE"):
        env[key] = str(root / key.lower())
    return env


def run_editor(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=EDITOR_TIMEOUT_S)
    output = result.stdout[-2000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"{command[0]} failed ({result.returncode}):\n{output}"


# --- darktable: exposure -------------------------------------------------------------------------

# dt_iop_exposure_params_t of darktable 4.2 (src/iop/exposure.c, introspection version 6), little endian:
# mode (0 = manual), black, exposure (EV), deflicker_percentile, deflicker_target_level,
# compensate_exposure_bias (gboolean).
EXPOSURE_MODVERSION = 6


def exposure_xmp(ev: float) -> str:
    params = struct.pack("<iffffi", 0, 0.0, ev, 50.0, -4.0, 0).hex()
    # auto_presets_applied="1": no workflow defaults (filmic / sigmoid, +0.7 EV exposure) are added.
    # iop_order_version="3": darktable's v3.0 order for JPEG/PNG input, where colour in (sRGB ->
    # linear working space) comes before exposure; without it, exposure acts on encoded values.
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:darktable="http://darktable.sf.net/"
   darktable:xmp_version="4"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="1"
   darktable:iop_order_version="3">
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="{EXPOSURE_MODVERSION}"
      darktable:params="{params}"
      darktable:multi_name=""
      darktable:multi_priority="0"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def darktable(photos, tmp_path: Path, ev: float) -> dict[str, np.ndarray]:
    """darktable-cli's 32-bit float TIFF export of every photo with exposure `ev`, clipped to [0, 1]."""
    folder, _ = photos
    xmp, out = tmp_path / "exposure.xmp", tmp_path / "out"
    xmp.write_text(exposure_xmp(ev))
    run_editor([
        DARKTABLE, str(folder), str(xmp), str(out / "$(FILE_NAME)"), "--out-ext", "tif",
        "--apply-custom-presets", "false",
        "--core", "--configdir", str(tmp_path / "config"), "--cachedir", str(tmp_path / "cache"),
        "--library", ":memory:", "--disable-opencl",  # the CPU path on every machine
        "--conf", "plugins/darkroom/workflow=none",
        "--conf", "plugins/imageio/format/tiff/bpp=32",
        "--conf", "plugins/imageio/format/tiff/compress=0",
    ], isolated_env(tmp_path))
    # darktable's float export is unbounded; an 8-bit display (and our engine) clips each channel.
    return {name: np.clip(tifffile.imread(out / f"{name}.tif")[..., :3].astype(np.float64), 0, 1) for name in PHOTOS}


@needs_darktable
@pytest.mark.parametrize("ev", [0.0, -1.0, 1.0, 2.5])
def test_exposure_matches_darktable_and_two_per_stop(photos, tmp_path, ev):
    _, arrays = photos
    theirs = darktable(photos, tmp_path, ev)
    worst, stops = 0.0, []
    for name in PHOTOS:
        source = arrays[name]
        mine = ours(source, {"Exposure2012": 20 * ev})  # ±100 = ±5 EV, so one stop is 20
        worst = max(worst, float(np.abs(theirs[name] - mine).max()))
        # Analytic: x2 per stop in linear light, on pixels that neither tool clips or quantises away.
        lin = linear(source)
        clean = (lin.min(-1) > 0.01) & (lin.max(-1) * 2**ev < 0.99)
        for result in (theirs[name], mine):
            stops.append(np.log2(linear(result)[clean] / lin[clean]))
    dt_stops, our_stops = np.concatenate(stops[0::2]), np.concatenate(stops[1::2])
    print(f"\nexposure {ev:+.1f} EV vs darktable-cli: max |darktable - ours| = {worst * 255:.3f} / 255; "
          f"darktable {np.median(dt_stops):+.4f} stops "
          f"(1-99% {np.percentile(dt_stops, 1):+.4f}..{np.percentile(dt_stops, 99):+.4f}), "
          f"ours {np.median(our_stops):+.4f}")
    # At 0 EV darktable's output is the input: only the exposure module is active (no filmic, no
    # workflow exposure bias) and its colour in/out round trip is exact.
    assert worst < 0.5 / 255
    np.testing.assert_allclose(np.median(dt_stops), ev, atol=2e-3)
    assert np.percentile(np.abs(dt_stops - ev), 99) < 0.01  # 8-bit input, float pipeline
    np.testing.assert_allclose(our_stops, ev, atol=1e-9)


# --- RawTherapee: saturation, vibrance, per-band HSL ----------------------------------------------

PP3_HEADER = "[Version]\nAppVersion=5.9\nVersion=349\n\n"  # what rawtherapee-cli 5.9 writes itself


def rawtherapee(photos, tmp_path: Path, profile: str) -> dict[str, np.ndarray]:
    """rawtherapee-cli's 16-bit TIFF output of every photo with a partial .pp3 on the neutral profile."""
    folder, _ = photos
    pp3, out = tmp_path / "profile.pp3", tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    pp3.write_text(PP3_HEADER + profile)
    run_editor([RAWTHERAPEE, "-q", "-a", "-Y", "-t", "-b16", "-p", str(pp3), "-o", str(out),
                "-c", *(str(folder / f"{name}.png") for name in PHOTOS)], isolated_env(tmp_path))
    return {name: tifffile.imread(out / f"{name}.tif")[..., :3].astype(np.float64) / 65535 for name in PHOTOS}


@needs_rawtherapee
def test_rawtherapee_neutral_profile_is_the_identity(photos, tmp_path):
    _, arrays = photos
    theirs = rawtherapee(photos, tmp_path, "")
    for name in PHOTOS:
        assert np.abs(theirs[name] - arrays[name]).max() < 0.5 / 255


# slider -> (RawTherapee tool, its .pp3 section for a value in -100..100)
COLOUR_PROFILES = {
    "Saturation vs Lab chromaticity": ("Saturation", lambda v: f"[Luminance Curve]\nEnabled=true\nChromaticity={v}\n"),
    "Saturation vs HSV saturation": ("Saturation", lambda v: f"[Exposure]\nSaturation={v}\n"),
    "Vibrance vs vibrance": ("Vibrance", lambda v: (
        f"[Vibrance]\nEnabled=true\nPastels={v}\nSaturated={v}\nPastSatTog=true\nPSThreshold=0;75;\n"
        "ProtectSkins=false\nAvoidColorShift=true\n")),
}
# Minimum pooled Spearman rho of per-pixel OKLab chroma change (measured: 0.999 / 0.906 / 0.954).
COLOUR_MIN_RHO = {"Saturation vs Lab chromaticity": 0.98, "Saturation vs HSV saturation": 0.85,
                  "Vibrance vs vibrance": 0.9}


@needs_rawtherapee
@pytest.mark.parametrize("check", list(COLOUR_PROFILES))
def test_saturation_and_vibrance_agree_with_rawtherapee(photos, tmp_path, check):
    _, arrays = photos
    slider, section = COLOUR_PROFILES[check]
    chroma = {name: oklch(arrays[name])[1] for name in PHOTOS}
    theirs_d, ours_d, theirs_mean, ours_mean, rho_each = [], [], [], [], []
    for value in VALUES:
        theirs = rawtherapee(photos, tmp_path / f"v{value}", section(value))
        t_mean = o_mean = 0.0
        for name in PHOTOS:
            coloured = chroma[name] > 0.01  # the hue of a grey is noise in both tools
            t = (oklch(theirs[name])[1] - chroma[name])[coloured]
            o = (oklch(ours(arrays[name], {slider: value}))[1] - chroma[name])[coloured]
            assert np.abs(t).mean() > 1e-3, f"RawTherapee ignored the profile {section(value)!r}"
            theirs_d.append(t), ours_d.append(o)
            t_mean, o_mean = t_mean + t.mean() / len(PHOTOS), o_mean + o.mean() / len(PHOTOS)
        theirs_mean.append(t_mean), ours_mean.append(o_mean)
        rho_each.append(spearman(np.concatenate(theirs_d[-len(PHOTOS):]), np.concatenate(ours_d[-len(PHOTOS):])))
    same_sign, rho = agreement(theirs_d, ours_d, noise=2e-3)
    print(f"\n{check}: mean OKLab chroma change at {VALUES}: RawTherapee "
          f"{' '.join(f'{m:+.4f}' for m in theirs_mean)}, ours {' '.join(f'{m:+.4f}' for m in ours_mean)}; "
          f"per-pixel same direction {same_sign:.3f}, Spearman rho {rho:.3f} (at each value alone: "
          f"{' '.join(f'{r:.2f}' for r in rho_each)})")
    for means in (theirs_mean, ours_mean):
        assert np.all(np.sign(means) == np.sign(VALUES)), "mean chroma change must follow the slider's sign"
        assert np.all(np.diff(means) > 0), "mean chroma change must grow with the slider"
    assert same_sign > 0.98
    assert rho > COLOUR_MIN_RHO[check]


# The sRGB colours that name our bands; RawTherapee's HSV equalizer curves run over their HSV hues.
BAND_HSV_HUES = {"Red": 0, "Orange": 30, "Yellow": 60, "Green": 120, "Aqua": 180, "Blue": 240, "Purple": 270,
                 "Magenta": 300}
assert tuple(BAND_HSV_HUES) == BANDS
# kind -> (our slider prefix, HSV equalizer curve, curve offset from 0.5 at ±100)
# RawTherapee shifts HSV hue by (y - 0.5) turns, so ±0.05 (±18°) keeps hues from wrapping.
BAND_KINDS = {"Hue": ("HueAdjustment", "HCurve", 0.05), "Saturation": ("SaturationAdjustment", "SCurve", 0.5),
              "Luminance": ("LuminanceAdjustment", "VCurve", 0.5)}


def band_curve(band: str, amount: float, offset: float) -> str:
    """A periodic flat curve (type 1: x;y;left;right tangents) with one bump at the band's HSV hue,
    falling back to neutral (0.5) at the neighbouring bands' hues, like our band weights."""
    names = list(BAND_HSV_HUES)
    i = names.index(band)
    points = [(BAND_HSV_HUES[names[i - 1]], 0.5), (BAND_HSV_HUES[band], 0.5 + offset * amount),
              (BAND_HSV_HUES[names[(i + 1) % len(names)]], 0.5)]
    return "1;" + "".join(f"{x / 360:.6f};{y:.6f};0.35;0.35;" for x, y in sorted(points))


def in_rawtherapee_support(hue: np.ndarray, band: str) -> np.ndarray:
    names = list(BAND_HSV_HUES)
    i = names.index(band)
    centre = BAND_HSV_HUES[band]
    before = (centre - BAND_HSV_HUES[names[i - 1]]) % 360
    after = (BAND_HSV_HUES[names[(i + 1) % len(names)]] - centre) % 360
    offset = hue_difference(hue, centre)
    return (offset > -before) & (offset < after)


@needs_rawtherapee
@pytest.mark.parametrize("kind", list(BAND_KINDS))
@pytest.mark.parametrize("band", ["Orange", "Red"])  # the bands these photos have plenty of
def test_band_hsl_agrees_with_rawtherapee(photos, tmp_path, band, kind):
    _, arrays = photos
    prefix, curve, offset = BAND_KINDS[kind]
    lch = {name: oklch(arrays[name]) for name in PHOTOS}

    def change(rgb: np.ndarray, name: str) -> np.ndarray:
        lightness, chroma, hue = oklch(rgb)
        before = lch[name]
        return {"Hue": hue_difference(hue, before[2]), "Saturation": chroma - before[1],
                "Luminance": lightness - before[0]}[kind]

    inside, outside = {}, {}
    for name in PHOTOS:
        _, chroma, hue = lch[name]
        weight = band_weights(torch.from_numpy(hue)).numpy()[..., BANDS.index(band)]
        inside[name] = (weight > 0.6) & (chroma > 0.04)
        # Far from the band for both tools: none of our band weight, outside RawTherapee's curve.
        outside[name] = (weight < 1e-6) & (chroma > 0.04) & ~in_rawtherapee_support(hsv_hue(arrays[name]), band)
    theirs_d, ours_d, theirs_med, ours_med, theirs_far, theirs_near, rho_each = [], [], [], [], [], [], []
    for value in VALUES:
        section = f"[HSV Equalizer]\nEnabled=true\n{curve}={band_curve(band, value / 100, offset)}\n"
        theirs = rawtherapee(photos, tmp_path / f"v{value}", section)
        t_all, o_all = [], []
        for name in PHOTOS:
            t = change(theirs[name], name)
            o = change(ours(arrays[name], {f"{prefix}{band}": value}), name)
            assert np.abs(o[outside[name]]).max(initial=0) < 1e-9, "our band edit leaked far from its band"
            theirs_far.append(np.abs(t[outside[name]]))
            theirs_near.append(np.abs(t[inside[name]]))
            t_all.append(t[inside[name]]), o_all.append(o[inside[name]])
        theirs_d += t_all
        ours_d += o_all
        rho_each.append(spearman(np.concatenate(t_all), np.concatenate(o_all)))
        theirs_med.append(float(np.median(np.concatenate(t_all))))
        ours_med.append(float(np.median(np.concatenate(o_all))))
    noise = {"Hue": 0.1, "Saturation": 2e-4, "Luminance": 2e-4}[kind]
    same_sign, rho = agreement(theirs_d, ours_d, noise=noise)
    far, near = np.concatenate(theirs_far).mean(), np.concatenate(theirs_near).mean()
    print(f"\n{kind}Adjustment{band} vs HSV equalizer {curve}: in-band median change at {VALUES}: RawTherapee "
          f"{' '.join(f'{m:+.4f}' for m in theirs_med)}, ours {' '.join(f'{m:+.4f}' for m in ours_med)}; "
          f"{sum(m.sum() for m in inside.values())} in-band pixels: same direction {same_sign:.3f}, "
          f"Spearman rho {rho:.3f} (at each value alone: {' '.join(f'{r:.2f}' for r in rho_each)}); "
          f"RawTherapee's mean |change| far from the band / in it: {far / near:.3f} (ours: 0)")
    assert near > (0.5 if kind == "Hue" else 1e-3), "RawTherapee ignored the HSV equalizer profile"
    for medians in (theirs_med, ours_med):
        assert np.all(np.sign(medians) == np.sign(VALUES)), "in-band change must follow the slider's sign"
        assert np.all(np.diff(medians) > 0), "in-band change must grow with the slider"
    assert same_sign > 0.95
    assert rho > 0.75  # measured 0.87 .. 0.97
    assert far < 0.1 * near
