"""Export bundles: manifest schema, sha256 checks, and clear errors for bad bundles."""

import json
import shutil

import jsonschema
import numpy as np
import pytest
import torch

from vera_mobile.bundle import SCHEMA_PATH, load_bundle
from vera_mobile.cli import main
from vera_mobile.errors import CheckpointError, InputError
from vera_mobile.prompts import Request
from vera_mobile.runtime.generation import SamplingOptions
from vera_mobile.runtime.result import RenderOptions
from vera_mobile.runtime.selfcheck import FLOAT_TOLERANCE, GOLDEN_TOKENS, HEAD_MASK, check_bundle, golden_hidden3


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tiny-bundle"
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "executorch,onnx,coreml", "--quant", "fp32",
                 "--out", str(out)]) == 0
    return out


def test_manifest_validates_against_the_schema(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    assert {(a["component"], a["target"]) for a in manifest["artifacts"]} >= {
        ("renderer", "executorch"), ("renderer", "onnx"), ("renderer", "coreml"),
        ("planner", "executorch"), ("planner", "onnx"), ("planner", "coreml")}
    assert manifest["quantization"]["planner"] == {"executorch": "fp32", "onnx": "fp32", "coreml": "fp16"}
    assert set(manifest["quantization"]["planner_layers"]) == {"executorch", "onnx", "coreml"}
    # the prompt facts the apps rely on are the SDK's own, byte for byte
    example = manifest["prompts"]["param_rules"]["example"]
    assert example["prompt"] == Request("param", params=example["params"]).full_prompt()
    assert manifest["prompts"]["chat_template"].format(user=manifest["prompts"]["modes"]["auto"]) == Request("auto").full_prompt()
    assert manifest["tokenizer"]["retouch_token_ids"] == [151649, 151650, 151651]


def test_inspect_describes_a_bundle(bundle, capsys):
    assert main(["inspect", str(bundle)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "all files match their sha256" in report["kind"]
    assert {"component": "renderer", "target": "executorch", "path": "renderer.pte",
            "methods": ["condition", "render_points"]} in report["artifacts"]


@pytest.mark.parametrize("backend", ["executorch", "onnx"])
def test_golden_vectors_reproduce_on_each_runtime(bundle, backend, capsys):
    assert check_bundle(bundle, backend) == {"renderer": [], "planner": []}
    assert main(["check", str(bundle), "--backend", backend]) == 0
    assert f"planner ({backend}): reproduces its golden vectors" in capsys.readouterr().out


def test_load_runs_a_bundle_on_the_backend_asked_for(bundle, tmp_path):
    import vera_mobile

    default = vera_mobile.load(bundle)  # the first runtime the bundle has and this machine runs
    assert type(default.renderer).__name__ == "ExecuTorchRenderer" and default.modes == ("auto", "style", "param")
    onnx = vera_mobile.load(bundle, backend="onnx")
    assert type(onnx.planner).__name__ == "OnnxPlanner" and type(onnx.renderer).__name__ == "OnnxRenderer"
    with pytest.raises(InputError, match="runs on executorch or onnx, not torch"):
        vera_mobile.load(bundle, backend="torch")
    with pytest.raises(InputError, match="exported inside it"):
        vera_mobile.load(bundle, reference=tmp_path / "encoder_renderer.pth")


@pytest.mark.parametrize("backend", ["executorch", "onnx"])
def test_resident_reaches_the_bundle_planner_and_changes_no_result(bundle, sample_photo, backend):
    import vera_mobile
    from vera_mobile.runtime.retoucher import Retoucher

    default = vera_mobile.load(bundle, backend)
    resident = vera_mobile.load(bundle, backend, resident=True)
    assert (default.planner.resident, resident.planner.resident) == (False, True)
    assert Retoucher.from_bundle(bundle, backend, resident=True).planner.resident
    options = {"sampling": SamplingOptions(max_new_tokens=8), "render": RenderOptions("exact")}
    for _ in range(2):  # from the second photo on, only the default reloads the vision encoder
        a, b = (r.retouch(sample_photo, **options) for r in (default, resident))
        assert a.raw_text == b.raw_text
        np.testing.assert_array_equal(a.latent, b.latent)
        np.testing.assert_array_equal(a.image, b.image)


def test_retouch_resident_option_reaches_the_bundle_planner(bundle, sample_photo, tmp_path, monkeypatch):
    from vera_mobile.runtime import retoucher

    planners = []
    real_planner = retoucher._bundle_planner
    monkeypatch.setattr(retoucher, "_bundle_planner", lambda *a: planners.append(real_planner(*a)) or planners[-1])
    assert main(["retouch", str(sample_photo), "--model", str(bundle), "--backend", "onnx", "--resident",
                 "--max-new-tokens", "4", "--out", str(tmp_path / "out")]) == 0
    assert [planner.resident for planner in planners] == [True]


def test_a_renderer_only_bundle_loads_but_refuses_to_retouch_in_one_line(bundle, tmp_path):
    import vera_mobile
    from vera_mobile.bundle import Bundle
    from vera_mobile.runtime.retoucher import Retoucher, renderer_from_bundle

    renderer_only = shutil.copytree(bundle, tmp_path / "renderer-only")
    manifest = json.loads((renderer_only / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["component"] == "renderer"]
    (renderer_only / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_bundle(renderer_only)  # the manifest is valid: its renderer opens through it
    assert type(renderer_from_bundle(loaded, "renderer", "onnx")).__name__ == "OnnxRenderer"
    message = r"no planner or reference encoder for onnx, so nothing to retouch with \(bundle has: renderer/coreml, "
    with pytest.raises(CheckpointError, match=message) as refused:
        vera_mobile.load(renderer_only, backend="onnx")
    assert "\n" not in str(refused.value)
    # What export_renderer_bundle returns (artifacts only, no tokenizer section) is refused the same way.
    with pytest.raises(CheckpointError, match=message):
        Retoucher.from_bundle(Bundle(renderer_only, {"artifacts": manifest["artifacts"]}), "onnx")


def test_planner_golden_records_are_recorded_per_target_and_agree(bundle, tiny_planner):
    golden = {g.get("target"): g for g in load_bundle(bundle).manifest["golden"] if g["component"] == "planner"}
    assert set(golden) == {"executorch", "onnx", "coreml"}
    assert "torch reference" in golden["coreml"]["recorded_with"] and not golden["coreml"]["tokens_must_match"]
    et, ort = golden["executorch"], golden["onnx"]
    assert et["tokens_must_match"] and et["tolerance"] == FLOAT_TOLERANCE
    assert 0 < len(et["generation"]["token_ids"]) <= GOLDEN_TOKENS + 3  # + up to 3 forced retouch tokens
    # both fp32 programs computed the same thing, and what the torch reference computes
    assert et["generation"]["token_ids"] == ort["generation"]["token_ids"]
    np.testing.assert_allclose(et["retouch_head"]["latent"], ort["retouch_head"]["latent"], atol=1e-4)
    with torch.no_grad():
        hidden3 = torch.from_numpy(golden_hidden3(tiny_planner.config.hidden_size))[None]
        latent = tiny_planner.latent(hidden3, torch.tensor([HEAD_MASK]))[0].numpy()
    np.testing.assert_allclose(et["retouch_head"]["latent"], latent, atol=1e-5)


def test_coreml_planner_entries_describe_the_packages(bundle):
    from vera_mobile.export.planner_coreml import inspect_planner_coreml

    entries = load_bundle(bundle).artifacts("planner", "coreml")
    # The token embedding and the decoder are functions of one package, which stores their tied matrix once.
    assert {e["path"]: list(e["methods"]) for e in entries} == {
        "planner_vision_encoder.mlpackage": ["vision_encoder"],
        "planner_language_model.mlpackage": ["token_embedding", "text_decoder"],
        "planner_retouch_head.mlpackage": ["retouch_head"]}
    for entry in entries:
        for name, method in entry["methods"].items():
            facts = inspect_planner_coreml(bundle / entry["path"], name if len(entry["methods"]) > 1 else None)
            assert [i["name"] for i in method["inputs"]] == [i["name"] for i in facts["inputs"]]
            assert [o["name"] for o in method["outputs"]] == [o["name"] for o in facts["outputs"]]
            assert sorted(s["name"] for s in method.get("states", [])) == sorted(s["name"] for s in facts["states"])
            for state in facts["states"]:
                assert next(s for s in method["states"] if s["name"] == state["name"])["shape"] == state["shape"]
            if name == "text_decoder":
                assert [i["dtype"] for i in method["inputs"]] == ["float32", "int32"]


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_coreml_recipe_can_be_chosen(tiny_checkpoint, tmp_path):
    from vera_mobile.export.planner_coreml import inspect_planner_coreml
    from vera_mobile.targets import COREML_RECIPES

    out = tmp_path / "palettized"
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "coreml", "--quant", "int4",
                 "--coreml-recipe", "palettize4", "--out", str(out)]) == 0
    quantization = load_bundle(out).manifest["quantization"]
    assert quantization["planner"] == {"coreml": "palettize4"}
    assert quantization["planner_layers"] == {"coreml": COREML_RECIPES["palettize4"]}
    assert quantization["planner_layers"]["coreml"]["lm_head"].startswith("4-bit look-up tables")
    decoder = inspect_planner_coreml(out / "planner_language_model.mlpackage", "text_decoder")
    assert decoder["compression"]["constexpr_lut_to_dense"] > 0


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_int4_bundle_calibrates_once_for_both_searched_planners_and_records_each_layer_type(tiny_checkpoint, tmp_path,
                                                                                           monkeypatch):
    from vera_mobile.export import planner_executorch, planner_methods, planner_onnx
    from vera_mobile.targets import EXECUTORCH_RECIPES, ONNX_RECIPES, PLANNER_RECIPES, SEARCHED_SCALE_RECIPES

    recipes = {target: PLANNER_RECIPES[target]["int4"] for target in ("executorch", "onnx")}
    assert all(recipe in SEARCHED_SCALE_RECIPES[target] for target, recipe in recipes.items())
    calls, powers = [], {}
    real = planner_methods.calibration_embeddings
    monkeypatch.setattr(planner_methods, "calibration_embeddings",
                        lambda *args: calls.append(args) or real(*args))

    def recording_power(target, exporter):
        def export(*args, **kwargs):
            powers[target] = kwargs["power"]
            return exporter(*args, **kwargs)
        return export

    for target, module, name in (("executorch", planner_executorch, "export_planner_executorch"),
                                 ("onnx", planner_onnx, "export_planner_onnx")):
        monkeypatch.setattr(module, name, recording_power(target, getattr(module, name)))
    out = tmp_path / "int4"
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "executorch,onnx", "--quant", "int4",
                 "--out", str(out)]) == 0
    assert len(calls) == 1  # the planner's own prompts on the calibration photo, once per bundle
    assert powers["executorch"] and powers["executorch"] is powers["onnx"]  # both planners weigh their scales by it
    sequences = real(*calls[0])
    assert len(sequences) == len(planner_methods.CALIBRATION_REQUESTS)
    assert all(s.ndim == 2 and s.shape[0] > 64 for s in sequences)  # image tokens and prompt, [T, H]
    quantization = load_bundle(out).manifest["quantization"]
    assert quantization["planner"] == recipes
    assert quantization["planner_layers"] == {
        "executorch": {**EXECUTORCH_RECIPES[recipes["executorch"]].layer_types(), "vision_encoder": "8da8w"},
        "onnx": dict(ONNX_RECIPES[recipes["onnx"]])}
    for target in recipes:
        assert check_bundle(out, target) == {"renderer": [], "planner": []}


def test_int4_onnx_bundle_lists_the_tied_matrix_once_and_replays_its_golden(tiny_checkpoint, tmp_path):
    import onnx

    from vera_mobile.export.planner_onnx import TIED_TABLE_FILE
    from vera_mobile.targets import ONNX_RECIPES

    out = tmp_path / "int4"
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "onnx", "--quant", "int4",
                 "--out", str(out)]) == 0
    bundle = load_bundle(out)
    planner_files = [a["path"] for a in bundle.artifacts("planner", "onnx")]
    assert planner_files.count(TIED_TABLE_FILE) == 1  # verified by sha256 like every graph
    assert bundle.manifest["quantization"]["planner"] == {"onnx": "int4-search"}
    assert bundle.manifest["quantization"]["planner_layers"] == {"onnx": ONNX_RECIPES["int4-search"]}
    vision_ops = {node.op_type for node in onnx.load(out / "vision_encoder.onnx").graph.node}
    assert {"ConvInteger", "MatMulInteger"} <= vision_ops  # int8, as in every quantized recipe
    assert check_bundle(out, "onnx") == {"renderer": [], "planner": []}


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_default_export_is_int8_and_reproduces_its_golden_vectors(tmp_path):
    from vera_mobile.testing.synthetic import write_synthetic_checkpoint

    checkpoint = write_synthetic_checkpoint(tmp_path / "ckpt", size="tiny", tie_word_embeddings=False)
    out = tmp_path / "int8"
    assert main(["export", "--model", str(checkpoint), "--targets", "executorch,onnx", "--out", str(out)]) == 0
    manifest = load_bundle(out).manifest
    assert manifest["quantization"]["planner"] == {"executorch": "8da8w", "onnx": "int8"}
    for backend in ("executorch", "onnx"):
        assert check_bundle(out, backend) == {"renderer": [], "planner": []}
    golden = next(g for g in manifest["golden"] if g.get("target") == "executorch")
    assert not golden["tokens_must_match"] and golden["tolerance"] > FLOAT_TOLERANCE


def test_a_wrong_golden_vector_is_reported(bundle, tmp_path):
    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    manifest = json.loads((altered / "manifest.json").read_text())
    planner = next(g for g in manifest["golden"] if g.get("target") == "onnx")
    planner["retouch_head"]["latent"][0] += 1.0
    planner["generation"]["token_ids"][0] += 1
    (altered / "manifest.json").write_text(json.dumps(manifest))
    problems = check_bundle(altered, "onnx")["planner"]
    assert any(p.startswith("retouch_head.latent: max difference 1") for p in problems)
    assert any(p.startswith("generation: greedy tokens") for p in problems)


def test_export_refuses_a_non_empty_folder_and_unknown_targets(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "onnx", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "keep.txt").read_text() == "mine"
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "tflite", "--out", str(tmp_path / "b")]) == 2
    assert "unknown export target(s) tflite" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]  # nothing half-written


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: (b / "renderer.pte").unlink(), "renderer.pte is named in the manifest but missing"),
        (lambda b: (b / "renderer_condition.onnx").write_bytes(b"tampered"), "does not match its sha256"),
        (lambda b: (b / "tokenizer.json").write_text("{}"), "tokenizer.json does not match its sha256"),
        (lambda b: _edit(b, schema_version=2), "schema_version 2 is not supported"),
        (lambda b: _edit(b, artifacts=None), "missing section(s) artifacts"),
        (lambda b: (b / "manifest.json").write_text("{oops"), "not valid JSON"),
        (lambda b: (b / "manifest.json").unlink(), "not a bundle"),
    ],
)
def test_bad_bundles_give_clear_errors(bundle, tmp_path, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    damage(broken)
    with pytest.raises(CheckpointError, match=None) as err:
        load_bundle(broken)
    assert message in str(err.value)


def _edit(bundle, **changes):
    manifest = json.loads((bundle / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key)
        else:
            manifest[key] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_reference_encoder_artifacts_match_torch(tiny_checkpoint, tmp_path):
    import torch

    from vera_mobile.models.reference_encoder import EncoderRenderer
    from vera_mobile.runtime.reference_backends import ExecuTorchReferenceEncoder, OnnxReferenceEncoder
    from vera_mobile.runtime.torch_backend import TorchReferenceEncoder

    torch.manual_seed(0)
    pth = tmp_path / "encoder_renderer.pth"
    torch.save({"model_state_dict": EncoderRenderer().state_dict()}, pth)
    out = tmp_path / "bundle"
    assert main(["export", "--model", str(tiny_checkpoint), "--reference", str(pth), "--targets", "executorch,onnx",
                 "--quant", "fp32", "--out", str(out)]) == 0
    loaded = load_bundle(out)
    jsonschema.validate(loaded.manifest, json.loads(SCHEMA_PATH.read_text()))
    rng = np.random.default_rng(0)
    before, after = (rng.uniform(-1, 1, (3, 512, 512)).astype(np.float32) for _ in range(2))
    mask = np.array([1.0, 1.0, 0.0], np.float32)
    from vera_mobile.models.reference_checkpoint import load_encoder_renderer

    expected = TorchReferenceEncoder(load_encoder_renderer(pth)).encode(before, after, mask)
    for backend in (ExecuTorchReferenceEncoder(out / loaded.artifact("reference", "executorch")["path"]),
                    OnnxReferenceEncoder(out / loaded.artifact("reference", "onnx")["path"])):
        np.testing.assert_allclose(backend.encode(before, after, mask), expected, atol=1e-4, rtol=1e-4)
    assert loaded.artifact("reference_renderer", "onnx")["path"] == "reference_renderer_condition.onnx"


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
@pytest.mark.parametrize("backend", ["executorch", "onnx"])
def test_renderer_only_bundle_runs_reference_mode_through_retoucher(tiny_checkpoint, tmp_path, backend, sample_photo):
    import torch

    from vera_mobile.models.reference_encoder import EncoderRenderer
    from vera_mobile.runtime.retoucher import Retoucher

    torch.manual_seed(0)
    pth = tmp_path / "encoder_renderer.pth"
    torch.save({"model_state_dict": EncoderRenderer().state_dict()}, pth)
    out = tmp_path / "bundle"
    assert main(["export", "--model", str(tiny_checkpoint), "--reference", str(pth), "--targets", backend, "--quant", "fp32",
                 "--out", str(out)]) == 0
    from_bundle = Retoucher.load(out, backend=backend)
    assert "reference" in from_bundle.modes
    reference, exact = (sample_photo, sample_photo), RenderOptions("exact")
    a = from_bundle.retouch(sample_photo, Request("reference"), reference=reference, render=exact)
    b = Retoucher.load(pth).retouch(sample_photo, Request("reference"), reference=reference, render=exact)
    np.testing.assert_allclose(a.latent, b.latent, atol=1e-4, rtol=1e-4)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1


@pytest.mark.parametrize("backend", [pytest.param("executorch", marks=pytest.mark.slow), "onnx"])  # ExecuTorch: 2 min
def test_bundle_retouches_like_the_torch_reference(tmp_path, sample_photo, backend):
    from vera_mobile.runtime.retoucher import Retoucher
    from vera_mobile.testing.synthetic import write_synthetic_checkpoint

    checkpoint = write_synthetic_checkpoint(tmp_path / "ckpt", size="tiny", tie_word_embeddings=False)
    out = tmp_path / "bundle"
    assert main(["export", "--model", str(checkpoint), "--targets", backend, "--quant", "fp32",
                 "--out", str(out)]) == 0
    manifest = load_bundle(out).manifest
    assert manifest["quantization"]["planner"] == {backend: "fp32"}
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    exported = Retoucher.load(out, backend=backend)
    assert exported.modes == ("auto", "style", "param")
    reference = Retoucher.load(checkpoint)
    options = {"sampling": SamplingOptions(max_new_tokens=12), "render": RenderOptions("exact")}
    for request in (Request("auto"), Request("param", params={"Exposure2012": 20})):
        a = exported.retouch(sample_photo, request, **options)
        b = reference.retouch(sample_photo, request, **options)
        assert a.raw_text == b.raw_text  # greedy text from fp32 artifacts identical to torch
        np.testing.assert_allclose(a.latent, b.latent, atol=1e-4)
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1

    # The CLI runs the same bundle: `retouch --model BUNDLE --backend ...` against the checkpoint on torch,
    # and --groups/--strength give what rerender gives in Python.
    cli_options = ["--render", "exact", "--max-new-tokens", "12", "--groups", "1,0,1", "--strength", "0.5"]
    assert main(["retouch", str(sample_photo), "--model", str(out), "--backend", backend,
                 "--out", str(tmp_path / "cli-bundle"), *cli_options]) == 0
    assert main(["retouch", str(sample_photo), "--model", str(checkpoint), "--out", str(tmp_path / "cli-torch"),
                 *cli_options]) == 0
    from vera_mobile.photo_io import load_photo

    stem = sample_photo.stem
    on_bundle = load_photo(tmp_path / "cli-bundle" / f"{stem}.png").pixels.astype(int)
    on_torch = load_photo(tmp_path / "cli-torch" / f"{stem}.png").pixels.astype(int)
    assert np.abs(on_bundle - on_torch).max() <= 1
    assert (tmp_path / "cli-bundle" / f"{stem}.txt").read_text() == (tmp_path / "cli-torch" / f"{stem}.txt").read_text()
    redrawn = reference.retouch(sample_photo, **options).rerender(groups=(True, False, True), strength=0.5)
    assert np.abs(redrawn.image.astype(int) - on_torch).max() == 0
