"""Retoucher API and CLI end to end on a tiny synthetic checkpoint and real photos."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vera_mobile.cli import main
from vera_mobile.errors import CheckpointError, InputError
from vera_mobile.models.reference_encoder import EncoderRenderer
from vera_mobile.photo_io import load_photo
from vera_mobile.render import render_pixels
from vera_mobile.prompts import Request
from vera_mobile.runtime.generation import SamplingOptions
from vera_mobile.runtime.result import RenderOptions
from vera_mobile.runtime.retoucher import Retoucher
from vera_mobile.runtime.torch_backend import TorchRenderer

from conftest import skimage_photo

EXACT = RenderOptions("exact")
FOUR_TOKENS = SamplingOptions(max_new_tokens=4)


@pytest.fixture(scope="module")
def retoucher(tiny_checkpoint):
    return Retoucher.load(tiny_checkpoint)


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ref") / "encoder_renderer.pth"
    torch.save({"model_state_dict": EncoderRenderer().state_dict(), "epoch": 1}, path)
    return path


def test_load_dispatches_on_what_the_path_is(tiny_checkpoint, reference_checkpoint, tmp_path):
    import vera_mobile

    assert vera_mobile.load(tiny_checkpoint).modes == ("auto", "style", "param")
    assert Retoucher.load(reference_checkpoint, backend="torch").modes == ("reference",)
    with pytest.raises(InputError, match="export a bundle"):
        vera_mobile.load(tiny_checkpoint, backend="onnx")  # exported programs come only from bundles
    with pytest.raises(InputError, match="backend must be one of"):
        vera_mobile.load(tiny_checkpoint, backend="tflite")
    for missing in (tmp_path / "nothing", tmp_path):  # absent, and a folder that is none of the kinds
        with pytest.raises(CheckpointError, match="expected a bundle"):
            vera_mobile.load(missing)


def test_auto_mode_end_to_end(retoucher, sample_photo, tmp_path):
    pieces = []
    result = retoucher.retouch(sample_photo, Request("auto"), sampling=SamplingOptions(max_new_tokens=8),
                               on_token=pieces.append, render=EXACT)
    photo = load_photo(sample_photo)
    assert result.image.shape == photo.pixels.shape and result.image.dtype == np.uint8
    assert result.latent.shape == (3 * 64,) and np.isfinite(result.latent).all()
    assert result.num_tokens == 8 + len(result.forced_retouch_tokens)
    assert "".join(pieces).strip() == result.text
    assert set(result.timings) >= {"load", "vision", "generate", "head", "render", "total"}
    assert not np.array_equal(result.image, photo.pixels)  # the renderer changed the photo
    saved = Image.open(result.save(tmp_path / "out.png"))
    assert saved.size == photo.size and saved.info.get("icc_profile")
    summary = json.loads(json.dumps(result.summary()))
    assert summary["mode"] == "auto" and len(summary["latent"]) == 192


def test_lut_render_is_close_to_exact_and_writes_a_cube(retoucher, sample_photo, tmp_path):
    from vera_mobile.lut import read_cube

    exact = retoucher.retouch(sample_photo, sampling=FOUR_TOKENS, render=EXACT)
    lut = retoucher.retouch(sample_photo, sampling=FOUR_TOKENS, render=RenderOptions("lut", lut_size=33))
    assert lut.render.method == "lut" and lut.lut is not None and {"lut_bake", "lut_apply"} <= set(lut.timings)
    assert np.array_equal(lut.latent, exact.latent)
    diff = np.abs(lut.image.astype(int) - exact.image.astype(int))
    assert diff.mean() < 1.0 and diff.max() <= 16, (diff.mean(), diff.max())
    cube = read_cube(lut.save_cube(tmp_path / "edit.cube"))
    np.testing.assert_allclose(cube, lut.lut, atol=1e-6)
    with pytest.raises(InputError, match="rendered exactly"):
        exact.save_cube(tmp_path / "nope.cube")
    with pytest.raises(InputError, match="render method must be one of"):
        RenderOptions("fast")
    with pytest.raises(InputError, match="lut_size must be"):
        RenderOptions(lut_size=1)


def test_param_mode_masks_latent_groups_and_skips_vision(retoucher, sample_photo):
    result = retoucher.retouch(sample_photo, Request("param", params={"Exposure2012": 30}), sampling=FOUR_TOKENS)
    assert result.mask == (1.0, 0.0, 0.0)
    assert np.all(result.latent[64:] == 0) and np.any(result.latent[:64] != 0)
    assert result.timings["vision"] < 0.05  # no vision tower in param mode


def test_same_request_gives_same_result(retoucher, sample_photo):
    request, six = Request("style", prompt="warm film"), SamplingOptions(max_new_tokens=6)
    a = retoucher.retouch(sample_photo, request, sampling=six)
    b = retoucher.retouch(sample_photo, request, sampling=six)
    assert a.text == b.text and np.array_equal(a.latent, b.latent) and np.array_equal(a.image, b.image)


def test_bad_requests_fail_before_any_work(retoucher, sample_photo):
    with pytest.raises(InputError, match="style mode needs a text instruction"):
        Request("style")
    with pytest.raises(InputError, match="unknown slider"):
        Request("param", params={"Exposur": 1})
    with pytest.raises(InputError, match="mode 'reference' needs a model"):
        retoucher.retouch(sample_photo, Request("reference"), reference=(sample_photo, sample_photo))
    with pytest.raises(InputError, match="reference photos are for reference mode"):
        retoucher.retouch(sample_photo, reference=(sample_photo, sample_photo))
    with pytest.raises(InputError, match="max_new_tokens must be a whole number of at least 1"):
        retoucher.retouch(sample_photo, sampling=SamplingOptions(max_new_tokens=0))
    with pytest.raises(InputError, match="top_p"):
        retoucher.retouch(sample_photo, sampling=SamplingOptions(top_p=0))
    with pytest.raises(InputError, match="request must be a vera_mobile.Request"):
        retoucher.retouch(sample_photo, "auto")
    with pytest.raises(InputError, match="sampling must be a vera_mobile.SamplingOptions, got dict"):
        retoucher.retouch(sample_photo, sampling={"max_new_tokens": 4})
    with pytest.raises(InputError, match="render must be a vera_mobile.RenderOptions, got str"):
        retoucher.retouch(sample_photo, sampling=FOUR_TOKENS, render="lut")


def test_renderer_tiles_give_identical_output(tiny_planner):
    pixels = load_photo(skimage_photo("astronaut.png")).pixels[:96, :80]
    renderer = TorchRenderer(tiny_planner.renderer)
    latent = np.random.default_rng(0).normal(size=192).astype(np.float32)
    ones = np.ones(3, np.float32)
    outputs = [render_pixels(renderer, pixels, latent, ones, tile=t) for t in (1_000_000, 7, 1000, 4096)]
    for out in outputs[1:]:
        assert np.array_equal(out, outputs[0])
    # and equal to upstream's whole-image forward, quantised as upstream does
    image = torch.from_numpy((pixels.astype(np.float32) / 255 - 0.5) * 2).permute(2, 0, 1)[None]
    with torch.no_grad():
        upstream = tiny_planner.renderer.render_image(image, torch.from_numpy(latent)[None])
    expected = np.round(upstream[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
    assert np.abs(outputs[0].astype(int) - expected).max() <= 1
    assert (outputs[0] == expected).mean() > 0.999


def test_reference_mode(reference_checkpoint, sample_photo):
    retoucher = Retoucher.load(reference_checkpoint)
    assert retoucher.modes == ("reference",)
    before = skimage_photo("coffee.png")
    after = skimage_photo("chelsea.png")
    result = retoucher.retouch(sample_photo, Request("reference"), reference=(before, after))
    assert result.latent.shape == (2688,) and result.image.shape == load_photo(sample_photo).pixels.shape
    with pytest.raises(InputError, match="reference mode needs reference=\\(before, after\\)"):
        retoucher.retouch(sample_photo, Request("reference"))


def test_cli_retouch_writes_outputs_for_several_photos(tiny_checkpoint, sample_photo, tmp_path, capsys):
    second = tmp_path / "in" / "astronaut.png"
    second.parent.mkdir()
    second.write_bytes(skimage_photo("astronaut.png").read_bytes())
    out = tmp_path / "out"
    code = main(["retouch", str(sample_photo), str(second), "--model", str(tiny_checkpoint),
                 "--out", str(out), "--max-new-tokens", "4"])
    assert code == 0
    for stem in ("sample_coffee", "astronaut"):
        assert Image.open(out / f"{stem}.png").size == load_photo(second if stem == "astronaut" else sample_photo).size
        assert (out / f"{stem}.txt").is_file()
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["mode"] == "auto" and len(record["latent"]) == 192 and record["render"] == "lut"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}.{e}" for s in ("sample_coffee", "astronaut") for e in ("png", "txt", "json", "cube"))  # no temp files


def test_cli_reference_form(reference_checkpoint, sample_photo, tmp_path):
    out = tmp_path / "ref_out"
    code = main(["retouch", "--mode", "reference", "--model", str(reference_checkpoint),
                 "--ref-before", str(skimage_photo("coffee.png")), "--ref-after", str(skimage_photo("rocket.jpg")),
                 str(sample_photo), "--out", str(out)])
    assert code == 0 and Image.open(out / "sample_coffee.png").size == (600, 400)
    assert (out / "sample_coffee.cube").is_file()


def test_cli_refuses_to_overwrite_inputs_and_colliding_stems(tiny_checkpoint, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (200, 10, 10)).save(photo)
    before = photo.read_bytes()
    code = main(["retouch", str(photo), "--model", str(tiny_checkpoint), "--out", str(tmp_path)])
    assert code == 2 and "is an input file" in capsys.readouterr().err
    assert photo.read_bytes() == before
    other = tmp_path / "sub" / "photo.jpg"
    other.parent.mkdir()
    Image.new("RGB", (32, 24)).save(other)
    code = main(["retouch", str(photo), str(other), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "o")])
    assert code == 2 and "would both write photo.png" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_errors_are_one_line_and_exit_2(tiny_checkpoint, tmp_path, capsys):
    cases = [
        ["retouch", str(tmp_path / "missing.jpg"), "--model", str(tiny_checkpoint), "--out", str(tmp_path)],
        ["retouch", str(tmp_path / "x.jpg"), "--model", str(tmp_path / "nope"), "--out", str(tmp_path)],
        ["retouch", "x.jpg", "--mode", "reference", "--model", "m.pth", "--out", str(tmp_path)],
        ["inspect", str(tmp_path / "nothing")],
    ]
    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg")
    for argv in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("vera-mobile: error: ") and err.count("\n") == 1, err


def test_cli_inspect(tiny_checkpoint, capsys):
    assert main(["inspect", str(tiny_checkpoint)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["key_check"] == "ok" and report["tokenizer"]["retouch_token_ids"]["light"] == 151649


def test_cli_one_bad_photo_does_not_stop_the_others(tiny_checkpoint, sample_photo, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = tmp_path / "out"
    code = main(["retouch", str(broken), str(sample_photo), "--model", str(tiny_checkpoint),
                 "--out", str(out), "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "1 of 2 photo(s) failed" in err and "broken.jpg" in err
    assert sorted(p.name for p in out.iterdir()) == [f"sample_coffee.{e}" for e in ("cube", "json", "png", "txt")]


def test_progress_reports_reasoning_tokens_and_rendered_pixels(retoucher, sample_photo):
    seen = {}
    retoucher.retouch(sample_photo, sampling=SamplingOptions(max_new_tokens=3), render=EXACT,
                      progress=lambda s, d, t: seen.setdefault(s, []).append((d, t)))
    assert seen["reasoning"][-1] == (3, 3)
    assert seen["render"][-1] == (600 * 400, 600 * 400)


def test_public_names_import_from_the_package():
    from vera_mobile import Cancelled, PhotoLike, RenderOptions, Request, RetouchResult, Retoucher, load  # noqa: F401

    with pytest.raises(AttributeError):
        import vera_mobile

        vera_mobile.not_a_name  # noqa: B018


def test_a_callback_can_cancel_and_the_next_retouch_is_unaffected(retoucher, sample_photo):
    from vera_mobile.errors import Cancelled

    steps = []

    def stop_after_two(stage, done, total):
        steps.append(done)
        if done == 2:
            raise Cancelled("enough")

    twelve = SamplingOptions(max_new_tokens=12)
    before = retoucher.retouch(sample_photo, sampling=twelve)
    with pytest.raises(Cancelled):
        retoucher.retouch(sample_photo, sampling=twelve, progress=stop_after_two)
    assert steps == [1, 2]  # generation stopped at once
    after = retoucher.retouch(sample_photo, sampling=twelve)
    assert after.raw_text == before.raw_text and np.array_equal(after.image, before.image)


def test_one_retouch_at_a_time_per_retoucher(retoucher, sample_photo):
    import threading

    planner, inside, most = retoucher.planner, [0], [0]
    decode = planner.decode

    def counting_decode(embeds):  # a spy: how many threads are inside the planner at once
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        try:
            return decode(embeds)
        finally:
            inside[0] -= 1

    planner.decode = counting_decode
    try:
        results = [None, None]
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, retoucher.retouch(
            sample_photo, sampling=FOUR_TOKENS))) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        del planner.decode
    assert most[0] == 1
    assert results[0].raw_text == results[1].raw_text and np.array_equal(results[0].image, results[1].image)


class PlannerSpy:
    """Counts every call into a planner backend."""

    def __init__(self, planner):
        self.planner, self.calls = planner, 0

    def __getattr__(self, name):
        method = getattr(self.planner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return method(*args, **kwargs)

        return counted if callable(method) else method


@pytest.mark.parametrize("method", ["lut", "exact"])
def test_rerender_equals_a_fresh_retouch_without_running_the_planner(retoucher, sample_photo, method):
    spy = PlannerSpy(retoucher.planner)
    retoucher.planner = spy
    try:
        full = retoucher.retouch(sample_photo, sampling=FOUR_TOKENS, render=RenderOptions(method))
        planned = spy.calls
        assert planned > 0
        some = full.rerender(groups=(True, False, True), strength=0.6)
        unchanged, none = full.rerender(strength=1.0), full.rerender(strength=0.0)
        assert spy.calls == planned  # no planner call in any rerender
        fresh = retoucher.retouch(sample_photo, sampling=FOUR_TOKENS,
                                  render=RenderOptions(method, groups=(True, False, True), strength=0.6))
    finally:
        retoucher.planner = spy.planner
    assert some.mask == fresh.mask == (1.0, 0.0, 1.0) and some.text == full.text
    assert np.array_equal(some.latent, fresh.latent) and np.array_equal(some.image, fresh.image)
    assert np.all(some.latent[64:128] == 0) and np.array_equal(some.latent[:64], full.latent[:64])
    assert np.array_equal(unchanged.image, full.image)  # strength 1 is the full edit
    assert np.array_equal(none.image, load_photo(sample_photo).pixels)  # strength 0 is the photo itself
    assert not np.array_equal(some.image, full.image)
    assert set(some.timings) == ({"lut_bake", "lut_apply", "total"} if method == "lut" else {"render", "total"})


def test_render_options_are_checked():
    with pytest.raises(InputError, match="groups must be three booleans"):
        RenderOptions(groups=(True, False))
    with pytest.raises(InputError, match="strength must be a number from 0 to 1"):
        RenderOptions(strength=1.5)
    assert RenderOptions(groups=[True, False, True]).groups == (True, False, True)
