"""Renderer export (export/renderer.py) and the backends that run it (runtime/renderer_backends.py).

Most tests use a small renderer (latent 64, hidden 16/32/64); the photo parity test uses the
upstream size (latent 896, hidden 128/256/512). Weights are seeded random, with the LayerNorm
affine randomised too, since its default (γ=1, β=0) would hide a folding mistake.
Core ML packages are converted and inspected only: Core ML cannot run on Linux.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("executorch")
pytest.importorskip("onnxruntime")

from vera_mobile.export.renderer import (  # noqa: E402
    export_renderer_coreml,
    export_renderer_executorch,
    export_renderer_onnx,
    inspect_coreml_package,
)
from vera_mobile.errors import CheckpointError, InputError  # noqa: E402
from vera_mobile.models.folded_renderer import FoldedRenderer  # noqa: E402
from vera_mobile.models.renderer import ConditionalMLPDecoder  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.render import render_flat, render_pixels  # noqa: E402
from vera_mobile.runtime.renderer_backends import ExecuTorchRenderer, OnnxRenderer  # noqa: E402
from vera_mobile.runtime.torch_backend import TorchRenderer  # noqa: E402

from conftest import random_renderer  # noqa: E402

TILE = 4096
SMALL = {"latent_dim": 64, "hidden_dims": (16, 32, 64)}
UPSTREAM = {"latent_dim": 896, "hidden_dims": (128, 256, 512)}
BACKENDS = ("executorch", "onnx")


def make_decoder(seed: int, latent_dim: int, hidden_dims: tuple[int, ...]) -> ConditionalMLPDecoder:
    return random_renderer(latent_dim, hidden_dims, seed, spread=0.5)


def control(latent_dim: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A latent with both signs (ReLU matters) and a mask that switches one group off."""
    latent = np.random.default_rng(seed).normal(size=3 * latent_dim).astype(np.float32)
    return latent, np.array([1.0, 0.0, 1.0], np.float32)


@pytest.fixture(scope="module")
def small_folded() -> FoldedRenderer:
    return FoldedRenderer(make_decoder(0, **SMALL)).eval()


@pytest.fixture(scope="module")
def small_pte(small_folded, tmp_path_factory):
    return export_renderer_executorch(small_folded, TILE, tmp_path_factory.mktemp("pte") / "renderer.pte")


@pytest.fixture(scope="module")
def small_onnx(small_folded, tmp_path_factory) -> dict:
    return export_renderer_onnx(small_folded, TILE, tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module", params=BACKENDS)
def small_backend(request, small_pte, small_onnx):
    if request.param == "executorch":
        return ExecuTorchRenderer(small_pte)
    return OnnxRenderer(small_onnx["condition"], small_onnx["render_points"])


# --- Parity with the folded renderer ----------------------------------------------------------


def test_backend_matches_folded_renderer(small_backend, small_folded):
    latent, mask = control(SMALL["latent_dim"])
    points = np.random.default_rng(2).uniform(-1, 1, size=(TILE, 3)).astype(np.float32)
    points[:8] = [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]  # the RGB cube's corners
    with torch.no_grad():
        biases = small_folded.condition(torch.from_numpy(latent)[None], torch.from_numpy(mask)[None])[0]
        colors = small_folded.render_points(torch.from_numpy(points), biases)

    assert small_backend.tile == TILE
    got_biases = small_backend.condition(latent, mask)
    assert got_biases.shape == (small_folded.bias_size,)
    np.testing.assert_allclose(got_biases, biases.numpy(), rtol=0, atol=1e-5)
    got_colors = small_backend.render_points(points, biases.numpy())
    assert got_colors.shape == (TILE, 3)
    np.testing.assert_allclose(got_colors, colors.numpy(), rtol=0, atol=1e-5)


def test_last_partial_tile_is_rendered(small_backend, small_folded):
    count = 2 * TILE + 123
    points = np.random.default_rng(3).uniform(-1, 1, size=(count, 3)).astype(np.float32)
    biases = small_backend.condition(*control(SMALL["latent_dim"]))
    with torch.no_grad():
        expected = small_folded.render_points(torch.from_numpy(points), torch.from_numpy(biases)).numpy()
    np.testing.assert_allclose(render_flat(small_backend, points, biases), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", BACKENDS)
def test_photo_parity_at_upstream_size(kind, sample_photo, tmp_path):
    """The renderer of a renderer-only bundle gives the torch reference's pixels, within 1 level of 255."""
    from vera_mobile.export.bundle import export_renderer_bundle
    from vera_mobile.runtime.retoucher import renderer_from_bundle

    decoder = make_decoder(7, **UPSTREAM)
    backend = renderer_from_bundle(export_renderer_bundle(decoder, kind, tmp_path), "renderer", kind)
    pixels = load_photo(sample_photo).pixels
    assert (pixels.shape[0] * pixels.shape[1]) % backend.tile != 0  # the last tile is partial
    latent, mask = control(UPSTREAM["latent_dim"])

    expected = render_pixels(TorchRenderer(decoder), pixels, latent, mask)
    got = render_pixels(backend, pixels, latent, mask)

    difference = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    print(f"{kind}: max |Δ| = {difference.max()} / 255, {np.mean(difference > 0):.2e} of channel values differ")
    assert difference.max() <= 1
    assert np.std(expected) > 10  # the reference is a real picture, not a flat image


# --- Artifact structure -----------------------------------------------------------------------


def test_executorch_program_is_fully_delegated_to_xnnpack(small_pte):
    # Private API (no public .pte reader yet): the operators a plan runs outside its delegates.
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(small_pte.read_bytes()).program
    plans = {plan.name: plan for plan in program.execution_plan}
    assert set(plans) == {"condition", "render_points"}
    for plan in plans.values():
        assert [op.name for op in plan.operators] == []  # no portable kernels between delegates
        assert [delegate.id for delegate in plan.delegates] == ["XnnpackBackend"]


def test_onnx_files_have_fixed_named_inputs(small_onnx, small_folded):
    import onnx

    expected = {
        "condition": ({"latent": [1, 192], "mask": [1, 3]}, {"biases": [1, small_folded.bias_size]}),
        "render_points": ({"points": [TILE, 3], "biases": [small_folded.bias_size]}, {"colors": [TILE, 3]}),
    }
    for name, (inputs, outputs) in expected.items():
        model = onnx.load(small_onnx[name])
        assert small_onnx[name].name == f"renderer_{name}.onnx"
        assert max(opset.version for opset in model.opset_import if opset.domain == "") >= 17
        shapes = {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim] for value in model.graph.input}
        assert shapes == inputs
        shapes = {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim] for value in model.graph.output}
        assert shapes == outputs


@pytest.mark.parametrize("precision", ["float16", "float32"])
def test_coreml_package_structure(precision, small_folded, tmp_path):
    pytest.importorskip("coremltools")
    paths = export_renderer_coreml(small_folded, TILE, tmp_path, precision)
    assert paths["condition"] == paths["render_points"] == tmp_path / f"renderer_{precision}.mlpackage"

    facts = inspect_coreml_package(paths["condition"])
    assert facts["deployment_target"] == "iOS18"
    assert facts["default_function"] == "render_points"
    assert facts["weight_dtype"] == precision
    functions = facts["functions"]
    io = {name: (functions[name]["inputs"], functions[name]["outputs"]) for name in ("condition", "render_points")}
    bias_size = small_folded.bias_size
    assert io["condition"] == (
        [{"name": "latent", "shape": [1, 192], "dtype": "float32"}, {"name": "mask", "shape": [1, 3], "dtype": "float32"}],
        [{"name": "biases", "shape": [1, bias_size], "dtype": "float32"}],
    )
    assert io["render_points"] == (
        [{"name": "points", "shape": [TILE, 3], "dtype": "float32"}, {"name": "biases", "shape": [bias_size], "dtype": "float32"}],
        [{"name": "colors", "shape": [TILE, 3], "dtype": "float32"}],
    )
    ops = functions["render_points"]["ops"]
    assert ops["layer_norm"] == 3 and ops["linear"] == 4 and ops["sigmoid"] == 1
    assert functions["condition"]["ops"]["linear"] == 1
    # fp16 programs cast the float32 inputs in and the output back; fp32 programs need no cast.
    assert ("cast" in ops) == (precision == "float16")


# --- Errors -----------------------------------------------------------------------------------


def test_wrong_latent_length_is_refused(small_backend):
    with pytest.raises(CheckpointError, match="renderer artifact expects a 192-long latent, got 2688"):
        small_backend.condition(np.zeros(2688, np.float32), np.ones(3, np.float32))
    with pytest.raises(InputError, match="mask must have 3 entries"):
        small_backend.condition(np.zeros(192, np.float32), np.ones(2, np.float32))


def test_wrong_biases_or_point_count_is_refused(small_backend, small_folded):
    points = np.zeros((TILE, 3), np.float32)
    with pytest.raises(CheckpointError, match=f"expects {small_folded.bias_size} biases"):
        small_backend.render_points(points, np.zeros(771, np.float32))
    with pytest.raises(InputError, match=f"exactly {TILE} points"):
        small_backend.render_points(points[:100], np.zeros(small_folded.bias_size, np.float32))


def test_missing_or_broken_files_are_refused(small_onnx, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ExecuTorchRenderer(tmp_path / "missing.pte")
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxRenderer(tmp_path / "missing.onnx", small_onnx["render_points"])
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a program" * 100)
    with pytest.raises(CheckpointError, match="ExecuTorch could not load"):
        ExecuTorchRenderer(garbage)
    with pytest.raises(CheckpointError, match="ONNX Runtime could not load"):
        OnnxRenderer(garbage, small_onnx["render_points"])
    with pytest.raises(CheckpointError, match="is not the renderer's condition program"):
        OnnxRenderer(small_onnx["render_points"], small_onnx["condition"])
    with pytest.raises(CheckpointError, match="Core ML package .* does not exist"):
        inspect_coreml_package(tmp_path / "missing.mlpackage")


def test_pte_without_render_points_is_refused(small_folded, tmp_path):
    from executorch.exir import to_edge_transform_and_lower

    from vera_mobile.export.renderer import ConditionProgram

    latent = torch.zeros(1, 3 * SMALL["latent_dim"])
    with torch.no_grad():
        exported = torch.export.export(ConditionProgram(small_folded), (latent, torch.ones(1, 3)))
    path = tmp_path / "condition_only.pte"
    path.write_bytes(to_edge_transform_and_lower({"condition": exported}).to_executorch().buffer)
    with pytest.raises(CheckpointError, match="has no method render_points"):
        ExecuTorchRenderer(path)


def test_export_arguments_are_checked(small_folded, tmp_path):
    with pytest.raises(InputError, match="tile must be a positive number"):
        export_renderer_executorch(small_folded, 0, tmp_path / "renderer.pte")
    with pytest.raises(InputError, match="Core ML precision must be one of float16, float32, got 'int8'"):
        export_renderer_coreml(small_folded, TILE, tmp_path, "int8")  # type: ignore[arg-type]
