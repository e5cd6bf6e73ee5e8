"""The Core ML packages upstream's own iOS/macOS app loads (ml-veraretouch): names, shapes and dtypes
read from the saved specs (Core ML cannot run on Linux), and the torch programs that are converted,
against the reference modules."""

import json

import jsonschema
import pytest
import torch

pytest.importorskip("coremltools")

from vera_mobile.bundle import SCHEMA_PATH, load_bundle, sha256_of  # noqa: E402
from vera_mobile.cli import main  # noqa: E402
from vera_mobile.errors import InputError  # noqa: E402
from vera_mobile.export.planner_coreml import inspect_planner_coreml  # noqa: E402
from vera_mobile.export.upstream_app_coreml import (  # noqa: E402
    export_upstream_app_coreml,
    upstream_app_io,
    upstream_app_programs,
)
from vera_mobile.models.config import PlannerConfig  # noqa: E402
from vera_mobile.models.planner import VeraPlanner  # noqa: E402
from vera_mobile.testing.synthetic import synthetic_config  # noqa: E402

RECIPES = ("fp16", "int4-block32")
# What upstream's Swift code asks of each package, written out (not imported) so that the test
# holds the export to the app's contract: file stem -> (input names, output names).
APP_NAMES = {
    "fastvithd": (["images"], ["image_features"]),
    "retouch_head": (["input"], ["output"]),
    "retouch_decoder": (["input_img", "retouch_latent"], ["output"]),
}
TILE = 512  # the app's decoder tile


@pytest.fixture(scope="module")
def packages(tiny_planner, tmp_path_factory):
    """{recipe: {package: path}}, each recipe exported once for the module."""
    return {recipe: export_upstream_app_coreml(tiny_planner, tmp_path_factory.mktemp(recipe), recipe) for recipe in RECIPES}


def app_shapes(config) -> dict[str, tuple[list, list]]:
    """Per package, the input shapes and output shapes the app hands over and reads back."""
    latent = 3 * config.latent_dim
    return {
        "fastvithd": ([[1, 3, config.vision.image_size, config.vision.image_size]],
                      [[1, config.vision.num_patches, config.mm_hidden_size]]),
        "retouch_head": ([[1, 3 * config.hidden_size]], [[1, latent]]),
        "retouch_decoder": ([[1, 3, TILE, TILE], [1, latent]], [[1, 3, TILE, TILE]]),
    }


def test_the_full_size_architecture_has_the_shapes_the_app_asserts():
    """The app checks `image_features` is [1, 256, 3072] and counts (1024 / 64)² image tokens."""
    io = upstream_app_io(PlannerConfig.from_dict(synthetic_config("full")))
    assert io["fastvithd"]["inputs"][0]["shape"] == [1, 3, 1024, 1024]
    assert io["fastvithd"]["outputs"][0]["shape"] == [1, 256, 3072]
    assert io["retouch_head"]["inputs"][0]["shape"] == [1, 3 * 896]
    assert io["retouch_head"]["outputs"][0]["shape"] == io["retouch_decoder"]["inputs"][1]["shape"] == [1, 3 * 896]


@pytest.mark.parametrize("recipe", RECIPES)
def test_packages_carry_the_apps_file_names_feature_names_and_shapes(recipe, packages, tiny_planner):
    paths = packages[recipe]
    assert {name: path.name for name, path in paths.items()} == {name: f"{name}.mlpackage" for name in APP_NAMES}
    assert sorted(p.name for p in paths["fastvithd"].parent.iterdir()) == sorted(p.name for p in paths.values())
    for name, (input_shapes, output_shapes) in app_shapes(tiny_planner.config).items():
        facts = inspect_planner_coreml(paths[name])
        input_names, output_names = APP_NAMES[name]
        # Fixed shapes (no range), and float32 at both ends: the app binds its buffers as Float32.
        assert facts["inputs"] == [{"name": n, "shape": s, "dtype": "float32"} for n, s in zip(input_names, input_shapes)]
        assert facts["outputs"] == [{"name": n, "shape": s, "dtype": "float32"} for n, s in zip(output_names, output_shapes)]
        assert facts["deployment_target"] == "iOS18" and facts["states"] == []


def test_a_recipe_compresses_the_tower_and_the_head_and_leaves_the_decoder_fp16(packages):
    for name in APP_NAMES:
        plain, int4 = (inspect_planner_coreml(packages[recipe][name]) for recipe in RECIPES)
        assert sum(plain["compression"].values()) == 0 and set(plain["weights"]) == {"float16"}
        if name == "retouch_decoder":
            assert int4["compression"] == plain["compression"] and int4["weight_bytes"] == plain["weight_bytes"]
        else:
            assert int4["compression"]["constexpr_blockwise_shift_scale"] > 0
            assert int4["weight_bytes"] < plain["weight_bytes"] / 2


def test_the_decoder_program_is_the_renderer_on_one_nchw_tile(tiny_planner):
    module, examples = upstream_app_programs(tiny_planner)["retouch_decoder"]
    assert [tuple(e.shape) for e in examples] == [(1, 3, TILE, TILE), (1, 3 * tiny_planner.config.latent_dim)]
    generator = torch.Generator().manual_seed(0)
    tile = torch.rand(1, 3, TILE, TILE, generator=generator) * 2 - 1  # the app's r * 2 - 1
    latent = torch.randn(1, 3 * tiny_planner.config.latent_dim, generator=generator)
    with torch.no_grad():
        expected = tiny_planner.renderer.render_image(tile, latent)
        converted = torch.export.export(module, examples, strict=False).run_decompositions({}).module()
        for program in (module, converted):
            out = program(tile, latent)
            assert out.shape == (1, 3, TILE, TILE) and 0 <= out.min() and out.max() <= 1  # the app scales by 255
            torch.testing.assert_close(out, expected, atol=2e-5, rtol=0)


def test_the_head_with_the_apps_masking_gives_our_latent(tiny_planner):
    module, _ = upstream_app_programs(tiny_planner)["retouch_head"]
    config = tiny_planner.config
    hidden3 = torch.randn(1, 3, config.hidden_size, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    with torch.no_grad():
        latent = module(hidden3.reshape(1, -1))  # the app concatenates light, colour & temp, colour mixer
        third = latent.shape[1] // 3
        for group in range(3):  # the app multiplies each contiguous third by its flag
            latent[:, group * third:(group + 1) * third] *= mask[0, group]
        torch.testing.assert_close(latent, tiny_planner.latent(hidden3, mask), atol=1e-6, rtol=0)


def test_fastvithd_is_the_tower_before_the_projector(tiny_planner):
    module, (example,) = upstream_app_programs(tiny_planner)["fastvithd"]
    images = torch.rand(example.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features = module(images)
        assert features.shape[-1] == tiny_planner.config.mm_hidden_size
        torch.testing.assert_close(tiny_planner.projector(features), tiny_planner.encode_image(images), atol=1e-5, rtol=0)


def test_export_lists_the_packages_in_the_manifest(tiny_checkpoint, tmp_path):
    out = tmp_path / "bundle"
    assert main(["export", "--model", str(tiny_checkpoint), "--targets", "coreml-upstream-app", "--quant", "int8",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    load_bundle(out)  # every file present with its sha256
    entries = {a["path"]: a for a in manifest["artifacts"]}
    assert set(entries) == {f"{name}.mlpackage" for name in APP_NAMES}
    assert {a["target"] for a in entries.values()} == {"coreml-upstream-app"}
    assert manifest["quantization"]["planner"] == {"coreml-upstream-app": "int8-channel"}
    for name in APP_NAMES:
        entry, facts = entries[f"{name}.mlpackage"], inspect_planner_coreml(out / f"{name}.mlpackage")
        assert entry["sha256"] == sha256_of(out / entry["path"])
        assert entry["methods"] == {name: {"inputs": facts["inputs"], "outputs": facts["outputs"]}}
        compressed = facts["compression"]["constexpr_blockwise_shift_scale"] > 0
        assert (entry["component"], entry.get("recipe"), compressed) == (
            ("renderer", None, False) if name == "retouch_decoder" else ("planner", "int8-channel", True))


def test_an_unknown_recipe_is_refused_before_anything_is_written(tiny_planner, tmp_path):
    with pytest.raises(InputError, match="unknown Core ML recipe 'int3'"):
        export_upstream_app_coreml(tiny_planner, tmp_path / "out", "int3")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_full_size_packages_have_the_shapes_the_app_asserts(tmp_path):
    torch.manual_seed(0)
    model = VeraPlanner(PlannerConfig.from_dict(synthetic_config("full"))).eval()  # random weights: structure only
    paths = export_upstream_app_coreml(model, tmp_path, "int8-channel")
    facts = {name: inspect_planner_coreml(path) for name, path in paths.items()}
    assert facts["fastvithd"]["inputs"] == [{"name": "images", "shape": [1, 3, 1024, 1024], "dtype": "float32"}]
    assert facts["fastvithd"]["outputs"] == [{"name": "image_features", "shape": [1, 256, 3072], "dtype": "float32"}]
    assert facts["retouch_head"]["outputs"] == [{"name": "output", "shape": [1, 2688], "dtype": "float32"}]
    assert facts["fastvithd"]["compression"]["constexpr_blockwise_shift_scale"] > 0
