"""The contract between the Python exporter and the demo apps' Kotlin and Swift cores.

The apps read only the manifest, and their cores are tested (android_demo/core/jvm_test.sh) on
fixtures recorded from a real bundle by scripts/make_app_fixtures.py. These tests check that a
freshly exported bundle still has every field the cores read and still produces those fixtures,
and that benchmark results written on the host follow the shared schema.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import pytest

# A real bundle's export (2 min); CI runs this module in its slow list (.ci/run).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "android_demo/core/src/test/resources/fixtures"
FLOAT_TOLERANCE = 1e-4  # XNNPACK kernels may round differently on another CPU

# Every manifest path the Kotlin core (Manifest.kt, Prompts.kt, SelfCheck.kt) and the Swift core read.
APP_FIELDS = (
    "schema_version", "model.hidden_size", "model.image_size", "tokenizer.file", "tokenizer.sha256",
    "tokenizer.eos_ids", "tokenizer.retouch_token_ids", "prompts.chat_template", "prompts.modes.auto",
    "prompts.modes.style", "prompts.modes.param", "prompts.image_token", "prompts.image_token_index",
    "prompts.retouch_tokens", "prompts.section_tokens", "prompts.slider_groups", "prompts.param_rules.limit",
    "prompts.param_rules.mask_epsilon", "prompts.masks.auto", "prompts.masks.style", "prompts.masks.reference",
    "preprocessing.planner.short_side", "preprocessing.planner.max_long_side", "renderer.tile", "renderer.lut_size", "renderer.bias_size",
    "renderer.latent_dim", "quantization.planner",
)
PLANNER_GOLDEN_FIELDS = (
    "tolerance", "tokens_must_match", "vision_encoder.first_row", "vision_encoder.last_row", "vision_encoder.mean",
    "token_embedding.input_ids", "token_embedding.rows", "retouch_head.mask", "retouch_head.latent",
    "generation.prompt_ids", "generation.max_new_tokens", "generation.token_ids", "generation.retouch_hidden",
)
RENDERER_GOLDEN_FIELDS = ("tolerance", "condition.latent", "condition.mask", "condition.biases",
                          "render_points.points", "render_points.colors")


def _script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fixtures_script = _script("make_app_fixtures", ROOT / "scripts/make_app_fixtures.py")
device_table = _script("device_table", ROOT / "benchmarks/device_table.py")
host_result = _script("host_device_result", ROOT / "benchmarks/host_device_result.py")


def _get(document: dict, dotted: str):
    value = document
    for key in dotted.split("."):
        assert isinstance(value, dict) and key in value, f"manifest lacks {dotted}"
        value = value[key]
    return value


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint, tmp_path_factory) -> Path:
    from vera_mobile.export.bundle import export_bundle

    return export_bundle(tiny_checkpoint, tmp_path_factory.mktemp("app") / "bundle", targets=("executorch",),
                         quant="fp32")


@pytest.fixture(scope="module")
def fresh_fixtures(bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    fixtures_script.write_fixtures(bundle, out)
    return out


def test_manifest_has_every_field_the_apps_read(bundle):
    from vera_mobile import prompts
    from vera_mobile.bundle import SCHEMA_PATH

    manifest = json.loads((bundle / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    for field in APP_FIELDS:
        _get(manifest, field)
    planner = next(g for g in manifest["golden"] if g["component"] == "planner" and g["target"] == "executorch")
    renderer = next(g for g in manifest["golden"] if g["component"] == "renderer")
    for field in PLANNER_GOLDEN_FIELDS:
        _get(planner, field)
    for field in RENDERER_GOLDEN_FIELDS:
        _get(renderer, field)
    # The ExecuTorch planner methods the Android backend calls, with the dtypes it feeds them.
    methods = next(a for a in manifest["artifacts"] if a["component"] == "planner" and a["target"] == "executorch")["methods"]
    assert [t["dtype"] for t in methods["text_decoder_with_hidden"]["inputs"]] == ["float32", "int64"]
    assert [t["dtype"] for t in methods["token_embedding"]["inputs"]] == ["int64"]
    assert {"vision_encoder", "retouch_head"} <= set(methods)
    # The cores take the mask order and the latent order from these lists: they must line up.
    assert len(manifest["prompts"]["slider_groups"]) == len(manifest["prompts"]["retouch_tokens"]) == 3
    assert manifest["tokenizer"]["retouch_token_ids"] == [
        _token_id(bundle, token) for token in manifest["prompts"]["retouch_tokens"]]
    assert list(manifest["prompts"]["slider_groups"]) == list(prompts.SLIDER_GROUPS)


def _token_id(bundle: Path, token: str) -> int:
    from vera_mobile.tokenizer import Tokenizer

    return Tokenizer.from_file(bundle / "tokenizer.json").single_token_id(token)


@pytest.mark.parametrize("name", ["prompts", "plans", "views"])
def test_text_fixtures_match_python_today(fresh_fixtures, name):
    assert json.loads((fresh_fixtures / f"{name}.json").read_text()) == json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["trace_golden", "trace_style", "trace_eos", "trace_param"])
def test_traces_match_a_fresh_export(fresh_fixtures, name):
    fresh = json.loads((fresh_fixtures / f"{name}.json").read_text())
    committed = json.loads((FIXTURES / f"{name}.json").read_text())
    for key in ("request", "eos_ids", "retouch_ids", "prompt_ids", "encodes", "decodes", "image_rows"):
        assert fresh[key] == committed[key], key
    for key in ("token_ids", "forced_tokens", "stop_reason", "prompt_length", "streamed", "raw_text", "plan", "mask"):
        assert fresh["expected"][key] == committed["expected"][key], key
    _assert_close(fresh["expected"]["retouch_hidden"], committed["expected"]["retouch_hidden"])
    assert [c["call"] for c in fresh["calls"]] == [c["call"] for c in committed["calls"]]
    for new, old in zip(fresh["calls"], committed["calls"]):
        if new["call"] == "decode":
            assert new["top_ids"][0] == old["top_ids"][0]  # the greedy choice
            _assert_close(new["hidden"], old["hidden"])
        elif new["call"] == "latent":
            _assert_close(new["latent"], old["latent"])


def test_lut_fixture_matches_a_fresh_export(fresh_fixtures):
    fresh, committed = (json.loads((d / "lut.json").read_text()) for d in (fresh_fixtures, FIXTURES))
    assert fresh["grid"] == committed["grid"]
    _assert_close(fresh["lut"], committed["lut"])


def test_rerender_fixture_matches_a_fresh_export(fresh_fixtures):
    fresh, committed = (json.loads((d / "rerender.json").read_text()) for d in (fresh_fixtures, FIXTURES))
    assert [(c["groups"], c["strength"], c["mask"]) for c in fresh["cases"]] == \
        [(c["groups"], c["strength"], c["mask"]) for c in committed["cases"]]
    for new, old in zip(fresh["cases"], committed["cases"]):
        _assert_close(new["biases"], old["biases"])
        _assert_close(new["lut"], old["lut"])


def test_plain_text_rule_of_the_app_cores_is_plain_text_tokenization(bundle):
    """The cores cut control strings in user text instead of loading a second tokenizer; on both
    byte-level tokenizers we ship (Qwen2's split regex, the nano model's GPT-2 regex) the cut pieces
    give exactly the ids of the same tokenizer with no added tokens."""
    import random

    from vera_mobile.builtin import resolve_model
    from vera_mobile.tokenizer import Tokenizer

    alphabet = [*"ab Z_|<>&!?.'1é日", "\n", "\t"]
    for path in (bundle / "tokenizer.json", resolve_model("nano") / "tokenizer.json"):
        tokenizer = Tokenizer.from_file(path)
        plain = fixtures_script.without_added_tokens(tokenizer)
        controls = fixtures_script.control_strings(tokenizer)
        rng = random.Random(0)
        for _ in range(300):
            text = "".join(rng.choice(controls) if rng.random() < 0.4 else
                           "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 6)))
            assert fixtures_script.plain_text_ids(tokenizer, text) == plain.encode(text, add_special_tokens=False).ids, text


def test_fixture_bundle_is_the_real_manifest_with_stand_in_files(bundle):
    from vera_mobile.bundle import load_bundle

    committed = load_bundle(FIXTURES / "bundle").manifest  # the stand-in files match their hashes
    fresh = json.loads((bundle / "manifest.json").read_text())
    for section in ("model", "prompts", "preprocessing", "renderer"):
        assert committed[section] == fresh[section], section
    assert {k: v for k, v in committed["tokenizer"].items() if k != "sha256"} == \
        {k: v for k, v in fresh["tokenizer"].items() if k != "sha256"}
    ours = {(a["component"], a["target"], a["path"]): a["methods"] for a in committed["artifacts"]}
    for artifact in fresh["artifacts"]:  # the fixture has every target; this export only ExecuTorch
        assert ours[(artifact["component"], artifact["target"], artifact["path"])] == artifact["methods"]
    golden = next(g for g in committed["golden"] if g["component"] == "planner" and g["target"] == "executorch")
    fresh_golden = next(g for g in fresh["golden"] if g["component"] == "planner" and g["target"] == "executorch")
    assert golden["generation"]["token_ids"] == fresh_golden["generation"]["token_ids"]
    assert golden["generation"]["prompt_ids"] == fresh_golden["generation"]["prompt_ids"]


def _assert_close(a, b) -> None:
    import numpy as np

    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=FLOAT_TOLERANCE, rtol=0)


def test_host_result_follows_the_shared_schema_and_tabulates(bundle, tmp_path, capsys):
    result = host_result.run(bundle)
    host = tmp_path / "host.json"
    host.write_text(json.dumps(result))
    phone = tmp_path / "phone.json"
    phone.write_text(json.dumps({**result, "device": {"name": "Pixel 8", "os": "Android 15"}, "backend": "executorch-xnnpack",
                                 "metrics": {**result["metrics"], "peak_memory_mb": None}}))
    assert device_table.main([str(host), str(phone)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and table[0].startswith("| device | os | backend | recipe | vision ms")
    assert "| Pixel 8 | Android 15 | executorch-xnnpack | fp32 |" in table[3] and table[3].count("—") == 1
    assert result["details"]["decode_tokens"] > 0 and result["metrics"]["decode_tokens_per_s"] > 0


@pytest.mark.parametrize("damage, message", [
    (lambda r: r["metrics"].pop("lut_bake_ms"), "'lut_bake_ms' is a required property"),
    (lambda r: r["metrics"].update(vision_ms=-1), "metrics/vision_ms"),
    (lambda r: r.update(date="yesterday"), "date"),
])
def test_device_table_names_a_bad_file(tmp_path, capsys, damage, message):
    result = {"schema_version": 1, "tool": {"name": "t", "version": "1"}, "date": "2026-11-27T12:00:00Z",
              "device": {"name": "d", "os": "o"}, "backend": "b", "recipe": "r",
              "metrics": dict.fromkeys(("vision_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "lut_bake_ms",
                                        "lut_apply_12mp_ms", "peak_memory_mb"), 1.0)}
    damage(result)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(result))
    assert device_table.main([str(bad)]) == 2
    error = capsys.readouterr().err
    assert str(bad) in error and message in error
