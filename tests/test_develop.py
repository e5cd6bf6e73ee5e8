"""The develop engine against analytic results, colour-science, and its own LUT path, on real photos."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

colour = pytest.importorskip("colour")

from conftest import skimage_photo  # noqa: E402
from vera_mobile.cli import main  # noqa: E402
from vera_mobile.develop import BANDS, bake_develop_lut, develop, develop_photo, develop_pixels  # noqa: E402
from vera_mobile.develop import colour as dcolour  # noqa: E402
from vera_mobile.develop.engine import (  # noqa: E402
    BAND_HUES, D65_CCT, TEMPERATURE_MIRED, TINT_DUV, band_weights,
)
from vera_mobile.errors import InputError  # noqa: E402
from vera_mobile.lut import DEFAULT_LUT_SIZE, apply_lut, lut_grid, read_cube, write_cube  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.prompts import SLIDER_GROUPS, SLIDER_NAMES  # noqa: E402

PHOTOS = ("coffee.png", "chelsea.png", "astronaut.png")


def small(name: str, side: int = 96) -> np.ndarray:
    """A real photo, downscaled so every test stays fast: (H, W, 3) uint8."""
    image = Image.fromarray(load_photo(skimage_photo(name)).pixels)
    image.thumbnail((side, side), Image.Resampling.BILINEAR)
    return np.asarray(image)


@pytest.fixture(scope="module", params=PHOTOS)
def photo(request) -> torch.Tensor:
    return torch.from_numpy(small(request.param).astype(np.float64) / 255)


def oklch(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lab = dcolour.linear_to_oklab(dcolour.srgb_decode(rgb))
    return lab[..., 0], torch.hypot(lab[..., 1], lab[..., 2]), torch.rad2deg(torch.atan2(lab[..., 2], lab[..., 1]))


# --- Constants against colour-science ------------------------------------------------------------


def test_constants_match_colour_science():
    srgb = colour.models.RGB_COLOURSPACE_sRGB
    np.testing.assert_allclose(dcolour.SRGB_TO_XYZ, srgb.matrix_RGB_to_XYZ, atol=1e-12)
    np.testing.assert_allclose(dcolour.D65_XY, srgb.whitepoint, atol=1e-12)
    np.testing.assert_allclose(dcolour._BRADFORD, colour.adaptation.CAT_BRADFORD, atol=1e-12)
    for cct in (2000.0, 4372.0, 6504.0, 12698.0):
        ours = dcolour.planckian_uv(torch.tensor(cct, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(ours, colour.temperature.CCT_to_uv_Krystek1985(cct), atol=1e-12)
    rgb = torch.rand(500, 3, dtype=torch.float64)
    ours = dcolour.linear_to_oklab(dcolour.srgb_decode(rgb)).numpy()
    theirs = colour.XYZ_to_Oklab(colour.sRGB_to_XYZ(rgb.numpy()))
    np.testing.assert_allclose(ours, theirs, atol=2e-3)  # colour goes via XYZ and rounded matrices
    np.testing.assert_allclose(dcolour.srgb_encode(dcolour.srgb_decode(rgb)).numpy(), rgb.numpy(), atol=1e-12)


# --- Identity, validation, gradients ---------------------------------------------------------------


def test_all_zero_sliders_are_the_identity(photo):
    assert torch.equal(develop(photo, {}), photo)
    assert torch.equal(develop(photo, {name: 0 for name in SLIDER_NAMES}), photo)
    # With gradients every stage runs; the colour round trips are then within float64 noise.
    zeros = torch.zeros(len(SLIDER_NAMES), dtype=torch.float64, requires_grad=True)
    assert (develop(photo, zeros) - photo).abs().max() <= 1e-6


@pytest.mark.parametrize(("params", "message"), [
    ({"Exposure": 10}, "unknown slider"),
    ({"Exposure2012": 150}, "outside the range"),
    ({"Saturation": float("nan")}, "finite"),
    ({"Saturation": "high"}, "must be a number"),
    ({"Saturation": {"value": True}}, "must be a number"),
])
def test_bad_slider_sets_are_input_errors(params, message):
    with pytest.raises(InputError, match=message):
        develop(torch.rand(4, 3), params)


def test_bad_slider_tensors_and_images_are_input_errors():
    with pytest.raises(InputError, match="slider tensor"):
        develop(torch.rand(4, 3), torch.zeros(37))
    with pytest.raises(InputError, match="within -100"):
        develop(torch.rand(4, 3), torch.full((38,), 101.0))
    with pytest.raises(InputError, match="same B"):
        develop(torch.rand(2, 4, 3), torch.zeros(3, 38))
    with pytest.raises(InputError, match="float tensor"):
        develop(torch.zeros(4, 3, dtype=torch.uint8), {})


def test_batched_sliders_match_one_image_at_a_time(photo):
    batch = torch.stack([photo, photo.flip(0)])
    sliders = torch.randn(2, 38, generator=torch.Generator().manual_seed(1), dtype=torch.float64).mul(30).clamp(-100, 100)
    together = develop(batch, sliders)
    for i in range(2):
        torch.testing.assert_close(together[i], develop(batch[i], sliders[i]), rtol=0, atol=1e-12)


def test_gradients_flow_to_pixels_and_sliders():
    rng = torch.Generator().manual_seed(0)
    rgb = (torch.rand(6, 3, generator=rng, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    sliders = (torch.rand(38, generator=rng, dtype=torch.float64) * 40 - 20).requires_grad_()
    assert torch.autograd.gradcheck(develop, (rgb, sliders), eps=1e-6, atol=1e-5)
    # A whole photo, greys and clipped pixels included: finite gradients everywhere.
    image = torch.from_numpy(small("astronaut.png", 48).astype(np.float32) / 255).requires_grad_()
    zeros = torch.zeros(38, requires_grad=True)
    develop(image, zeros).square().sum().backward()
    assert torch.isfinite(image.grad).all() and torch.isfinite(zeros.grad).all()
    assert (zeros.grad != 0).sum() >= 30  # every slider that can move this photo does, from zero


# --- Exposure: ×2 per stop in linear light -------------------------------------------------------


@pytest.mark.parametrize("slider", [20.0, -40.0, 35.0])
def test_exposure_is_two_to_the_stops_in_linear_light(photo, slider):
    stops = slider / 20  # ±100 = ±5 stops
    expected = (dcolour.srgb_decode(photo) * 2**stops).clamp(0, 1)
    got = dcolour.srgb_decode(develop(photo, {"Exposure2012": slider}))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


# --- White balance vs colour-science's chromatic adaptation -----------------------------------------


def oracle_source_xy(temperature: float, tint: float) -> np.ndarray:
    """The documented illuminant, built from colour-science's loci (Krystek along, Ohno 2013 across)."""
    cct = 1e6 / (1e6 / D65_CCT - TEMPERATURE_MIRED * temperature / 100)
    duv = TINT_DUV * tint / 100
    along = colour.temperature.CCT_to_uv_Krystek1985(cct) - colour.temperature.CCT_to_uv_Krystek1985(D65_CCT)
    across = (colour.temperature.CCT_to_uv_Ohno2013(np.array([cct, duv]))
              - colour.temperature.CCT_to_uv_Ohno2013(np.array([cct, 0.0])))
    uv = colour.xy_to_UCS_uv(np.array(dcolour.D65_XY)) + along + across
    return colour.UCS_uv_to_xy(uv)


WB_CASES = [(60.0, 0.0), (-80.0, 0.0), (0.0, 50.0), (-30.0, -70.0), (100.0, 100.0), (-100.0, -100.0)]


def our_source_xy(temperature: float, tint: float) -> np.ndarray:
    mired = torch.tensor(1e6 / D65_CCT - TEMPERATURE_MIRED * temperature / 100, dtype=torch.float64)
    return dcolour.source_white_xy(1e6 / mired, torch.tensor(TINT_DUV * tint / 100, dtype=torch.float64)).numpy()


@pytest.mark.parametrize(("temperature", "tint"), WB_CASES)
def test_illuminant_follows_colour_science_loci(temperature, tint):
    ours = colour.xy_to_UCS_uv(our_source_xy(temperature, tint))
    # Krystek's locus tangent vs Ohno 2013's CMF-based normal: under 4e-4 uv at ±0.02 Duv.
    assert np.abs(ours - colour.xy_to_UCS_uv(oracle_source_xy(temperature, tint))).max() < 4e-4


@pytest.mark.parametrize(("temperature", "tint"), WB_CASES)
def test_white_balance_matches_colour_science_adaptation(photo, temperature, tint):
    got = develop(photo, {"IncrementalTemperature": temperature, "IncrementalTint": tint}).numpy()
    xyz = colour.sRGB_to_XYZ(photo.numpy())
    white = colour.xy_to_XYZ(our_source_xy(temperature, tint))
    adapted = colour.adaptation.chromatic_adaptation(
        xyz, white, colour.xy_to_XYZ(np.array(dcolour.D65_XY)), method="Von Kries", transform="Bradford")
    # colour's XYZ -> sRGB matrix is the standard's rounded inverse; ours is the exact inverse.
    to_rgb = np.linalg.inv(colour.models.RGB_COLOURSPACE_sRGB.matrix_RGB_to_XYZ)
    expected = colour.cctf_encoding(np.clip(adapted @ to_rgb.T, 0, 1), function="sRGB")
    assert np.abs(got - expected).max() < 1e-9


def test_white_balance_directions(photo):
    def channel_means(params):
        return develop(photo, params).mean(dim=(0, 1)).numpy()

    warm, cool = channel_means({"IncrementalTemperature": 50}), channel_means({"IncrementalTemperature": -50})
    assert warm[0] - warm[2] > cool[0] - cool[2]
    magenta, green = channel_means({"IncrementalTint": 50}), channel_means({"IncrementalTint": -50})
    assert magenta[1] - (magenta[0] + magenta[2]) / 2 < green[1] - (green[0] + green[2]) / 2
    # A neutral lit by the chosen illuminant comes out neutral (that is what the adaptation means).
    for temperature, tint in [(70.0, 0.0), (-40.0, 60.0)]:
        source = oracle_source_xy(temperature, tint)
        grey_in = np.clip(colour.XYZ_to_sRGB(colour.xy_to_XYZ(source) * 0.3), 0, 1)
        grey_out = develop(torch.from_numpy(grey_in), {"IncrementalTemperature": temperature, "IncrementalTint": tint})
        assert float(grey_out.max() - grey_out.min()) < 2e-3


# --- Tone curves ---------------------------------------------------------------------------------


LIGHT = SLIDER_GROUPS["Light Adjustment"][1:]  # exposure is tested above


@pytest.mark.parametrize("name", LIGHT)
def test_tone_curves_are_monotone_and_move_the_right_tones(name):
    ramp = torch.linspace(0, 1, 1001, dtype=torch.float64)[:, None].expand(-1, 3)
    curves = {v: develop(ramp, {name: v})[:, 0] for v in (-100, -50, 0, 50, 100)}
    for curve in curves.values():
        assert (curve.diff() >= -1e-12).all()  # a tone curve never reverses tones
    lower, upper = curves[-100], curves[100]
    assert (curves[-50] <= curves[0] + 1e-12).all() or name == "Contrast2012"
    if name == "Contrast2012":
        assert upper[200] < lower[200] and upper[800] > lower[800]
        return
    # Raising the slider raises its tones, monotonically in the slider, and never lowers any.
    assert (upper >= curves[50] - 1e-12).all() and (curves[50] >= curves[0] - 1e-12).all() and (curves[0] >= lower - 1e-12).all()
    moved = (upper - lower).numpy()
    peak = np.argmax(moved) / 1000
    expected = {"Highlights2012": (0.55, 0.85), "Shadows2012": (0.15, 0.45), "Whites2012": (0.8, 1.0),
                "Blacks2012": (0.0, 0.2), "ParametricShadows": (0.05, 0.25), "ParametricDarks": (0.3, 0.45),
                "ParametricLights": (0.55, 0.7), "ParametricHighlights": (0.75, 0.95)}[name]
    assert expected[0] <= peak <= expected[1]


# --- Saturation, vibrance, per-band HSL -----------------------------------------------------------


@pytest.mark.parametrize("name", ["Saturation", "Vibrance"])
def test_saturation_and_vibrance_raise_chroma_monotonically(photo, name):
    means = [float(oklch(develop(photo, {name: v}))[1].mean()) for v in (-100, -50, 0, 50, 100)]
    assert all(a < b for a, b in zip(means, means[1:])), means
    if name == "Saturation":
        assert means[0] < 1e-3  # -100 is greyscale


def test_vibrance_favours_muted_colours(photo):
    _, chroma, _ = oklch(photo)
    _, boosted, _ = oklch(develop(photo, {"Vibrance": 50}))
    gain = boosted / chroma.clamp_min(1e-6)
    muted, vivid = (chroma > 0.02) & (chroma < 0.05), chroma > 0.09
    if muted.sum() < 20 or vivid.sum() < 20:
        pytest.skip("this photo lacks muted or vivid colours")
    assert float(gain[muted].median()) > float(gain[vivid].median())


def test_band_weights_are_a_smooth_partition_of_unity():
    hues = torch.linspace(-180, 540, 72_001, dtype=torch.float64)
    weights = band_weights(hues)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(hues), rtol=0, atol=1e-12)
    assert weights.min() >= 0 and weights.max() <= 1
    assert weights.diff(dim=0).abs().max() < 1e-3  # no jumps on a 0.01° grid
    at_centres = band_weights(torch.tensor(BAND_HUES))
    torch.testing.assert_close(at_centres, torch.eye(len(BANDS), dtype=at_centres.dtype), rtol=0, atol=1e-12)


@pytest.mark.parametrize("band", BANDS)
def test_hue_band_moves_its_own_hues_only(band):
    photo = torch.from_numpy(np.concatenate([small(name, 64).reshape(-1, 3) for name in PHOTOS]) / 255)
    _, chroma, hue = oklch(photo)
    weight = band_weights(hue)[:, BANDS.index(band)]  # cos²(π/2) is ~4e-33, not 0
    inside, outside = (weight > 0.5) & (chroma > 0.05), weight < 1e-20
    for kind in ("Hue", "Saturation", "Luminance"):
        edited = develop(photo, {f"{kind}Adjustment{band}": 100})
        assert (edited[outside] - photo[outside]).abs().max() < 1e-9, kind  # OKLab round trip only
        lightness, new_chroma, new_hue = oklch(edited)
        old_lightness = oklch(photo)[0]
        if inside.sum() < 5:
            continue  # the photos have few colours of this band; the out-of-band check still ran
        if kind == "Hue":  # +100 turns hues towards the next band, counter-clockwise
            turned = torch.remainder(new_hue[inside] - hue[inside] + 180, 360) - 180
            assert float(turned.median()) > 1.0
        elif kind == "Saturation":
            assert float((new_chroma[inside] - chroma[inside]).median()) > 0
        else:
            assert float((lightness[inside] - old_lightness[inside]).median()) > 0


# --- Sliders to LUT ------------------------------------------------------------------------------


def random_slider_sets(count: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(count):
        chosen = rng.choice(len(SLIDER_NAMES), 8, replace=False)
        sets.append({SLIDER_NAMES[i]: float(rng.uniform(-60, 60)) for i in chosen})
    return sets


def test_lut_uses_the_lut_module_layout(tmp_path):
    params = {"Exposure2012": 10, "Saturation": 30, "HueAdjustmentBlue": -40}
    lut = bake_develop_lut(params, size=9)
    assert lut.shape == (9**3, 3) and lut.dtype == np.float32
    direct = develop(torch.from_numpy(lut_grid(9).astype(np.float64)), params).numpy()
    np.testing.assert_allclose(lut, direct, atol=1e-7)
    np.testing.assert_array_equal(bake_develop_lut({}, size=9), lut_grid(9))
    write_cube(tmp_path / "edit.cube", lut)
    np.testing.assert_allclose(read_cube(tmp_path / "edit.cube"), lut, atol=1e-8)


def delta_e_2000(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    def lab(pixels):
        return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(pixels / 255.0))

    return colour.delta_E(lab(a), lab(b), method="CIE 2000")


@pytest.mark.parametrize("name", PHOTOS)
def test_lut_path_matches_direct_path(name):
    pixels = small(name, 128)
    errors = [delta_e_2000(apply_lut(pixels, bake_develop_lut(p, DEFAULT_LUT_SIZE)), develop_pixels(pixels, p))
              for p in random_slider_sets(3, seed=PHOTOS.index(name))]
    # Measured (S = 33, 8 sliders uniform in ±60, 128 px photos): mean 0.08 .. 0.31, p99 0.70 .. 1.34.
    for error in errors:
        assert error.mean() < 0.5 and np.percentile(error, 99) < 2.0


def test_develop_photo_exact_and_lut_agree(tmp_path):
    source = skimage_photo("coffee.png")
    params = {"Exposure2012": 8, "Contrast2012": 20, "IncrementalTemperature": -25}
    exact = develop_photo(source, params, render="exact")
    via_lut = develop_photo(source, params, render="lut")
    assert exact.lut is None and via_lut.lut.shape == (DEFAULT_LUT_SIZE**3, 3)
    assert delta_e_2000(exact.pixels[::4, ::4], via_lut.pixels[::4, ::4]).mean() < 0.3
    with pytest.raises(InputError, match="render"):
        develop_photo(source, params, render="fast")


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_develop_writes_png_and_cube(tmp_path, capsys):
    photo_path = tmp_path / "cat.photo.png"
    Image.fromarray(small("chelsea.png", 64)).save(photo_path)
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"Exposure2012": {"value": 10}, "Vibrance": 40}))
    assert main(["develop", "--params", str(params), str(photo_path), "--out", str(tmp_path / "out")]) == 0
    out = load_photo(tmp_path / "out" / "cat.png").pixels
    lut = read_cube(tmp_path / "out" / "cat.cube")
    np.testing.assert_array_equal(out, apply_lut(small("chelsea.png", 64), lut))
    assert main(["develop", "--params", str(params), str(photo_path), "--out", str(tmp_path / "exact"),
                 "--render", "exact"]) == 0
    assert not (tmp_path / "exact" / "cat.cube").exists()
    assert delta_e_2000(load_photo(tmp_path / "exact" / "cat.png").pixels, out).mean() < 0.5


@pytest.mark.parametrize(("content", "extra", "message"), [
    ({"Exposure": 10}, [], "unknown slider"),
    ({"Exposure2012": 500}, [], "outside the range"),
    ({"Exposure2012": 5}, ["--render", "exact", "--lut-size", "17"], "--lut-size"),
    ({"Exposure2012": 5}, ["--lut-size", "99"], "--lut-size must be a whole number"),
])
def test_cli_develop_errors_are_one_line_exit_2(tmp_path, capsys, content, extra, message):
    photo_path = tmp_path / "p.png"
    Image.fromarray(small("coffee.png", 32)).save(photo_path)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(content))
    assert main(["develop", "--params", str(params), str(photo_path), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("vera-mobile: error:")
    assert not (tmp_path / "o" / "p.png").exists()


def test_cli_develop_never_overwrites_its_input(tmp_path, capsys):
    photo_path = tmp_path / "shot.png"
    Image.fromarray(small("coffee.png", 32)).save(photo_path)
    before = photo_path.read_bytes()
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"Saturation": 20}))
    assert main(["develop", "--params", str(params), str(photo_path), "--out", str(tmp_path)]) == 2
    assert "is an input file" in capsys.readouterr().err
    assert photo_path.read_bytes() == before
    assert main(["develop", "--params", str(tmp_path / "none.json"), str(photo_path), "--out", str(tmp_path / "o")]) == 2
