"""Renderer and Encoder-Renderer: upstream layout, numerics and checkpoint loading.

Fixtures come from tests/data/make_encoder_renderer_golden.py (run against upstream's code).
"""

import importlib.util
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vera_mobile.errors import CheckpointError, InputError
from vera_mobile.models.reference_checkpoint import load_encoder_renderer
from vera_mobile.models.reference_encoder import (
    ENCODER_PARAMS,
    ENCODER_RENDERER_PARAMS,
    STATE_DICT_ENTRIES,
    EncoderRenderer,
)
from vera_mobile.models.renderer import RENDERER_PARAMS, ConditionalMLPDecoder

DATA = Path(__file__).parent / "data"


def _golden_module():
    # The weight formula lives in the generator script so fixture and test cannot drift apart.
    path = DATA / "make_encoder_renderer_golden.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _golden_module()


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """A full-size state dict with deterministic, non-default values (BatchNorm stats included)."""
    with torch.device("meta"):
        model = EncoderRenderer()
    return golden.golden_state_dict({k: torch.empty(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()})


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


# --- Layout ------------------------------------------------------------------------------------


def test_state_dict_matches_upstream_layout():
    expected = json.loads((DATA / "upstream_encoder_renderer_keys.json").read_text())["entries"]
    with torch.device("meta"):
        model = EncoderRenderer()
    got = [
        {"key": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in model.state_dict().items()
    ]
    assert got == expected  # same names, shapes, dtypes and order
    assert len(got) == STATE_DICT_ENTRIES
    assert sum(k.startswith("encoder.") for k in model.state_dict()) == 162


def test_parameter_counts():
    with torch.device("meta"):
        model = EncoderRenderer()
    assert _num_params(model.decoder) == RENDERER_PARAMS == 2_577_795
    assert _num_params(model.encoder) == ENCODER_PARAMS == 12_614_020
    assert _num_params(model) == ENCODER_RENDERER_PARAMS == 15_191_815


def test_renderer_keys_load_from_a_prefixed_checkpoint(state):
    decoder = ConditionalMLPDecoder()
    prefix = "decoder."
    decoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)


# --- Numerics ----------------------------------------------------------------------------------


def test_golden_matches_upstream(state):
    fixture = load_file(DATA / "encoder_renderer_golden.safetensors")
    model = EncoderRenderer().eval()
    model.load_state_dict(state, strict=True)
    inputs = (fixture["image"], fixture["ref_before"], fixture["ref_after"], fixture["mask"])
    with torch.no_grad():
        latent = model.encode(*inputs[1:])
        output = model(*inputs)
        chunked = model(*inputs, chunk=golden.CHUNK)
    assert output.shape == fixture["output"].shape == (1, 3, 24, 32)
    assert (latent - fixture["latent"]).abs().max().item() <= 1e-4 * fixture["latent"].abs().max().item()
    assert latent[:, 896:1792].abs().max() == 0  # mask [1, 0, 1] switches the middle group off
    assert (output - fixture["output"]).abs().max().item() <= 1e-4
    assert (chunked - fixture["output"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 390, 391, 1000])
def test_render_image_is_independent_of_chunk_size(chunk):
    torch.manual_seed(0)
    decoder = ConditionalMLPDecoder().eval()
    image = torch.rand(2, 3, 17, 23) * 2 - 1  # 391 pixels: most chunk sizes leave a remainder
    latent = torch.randn(2, 2688)
    with torch.no_grad():
        whole = decoder.render_image(image, latent)
        pieces = decoder.render_image(image, latent, chunk=chunk)
    assert (pieces - whole).abs().max().item() <= 1e-6  # float rounding only, as upstream


def test_forward_on_pixel_lists_matches_render_image():
    torch.manual_seed(1)
    decoder = ConditionalMLPDecoder(latent_dim=8, hidden_dims=(4, 6)).eval()
    image = torch.rand(2, 3, 5, 7) * 2 - 1
    latent = torch.randn(2, 24)
    with torch.no_grad():
        points = decoder(image.flatten(2).transpose(1, 2), latent)  # [B, N, 3]
        rendered = decoder.render_image(image, latent)
    assert points.shape == (2, 35, 3)
    assert torch.equal(points.transpose(1, 2).reshape(2, 3, 5, 7), rendered)
    assert 0 <= points.min() and points.max() <= 1


def test_render_image_rejects_a_non_positive_chunk():
    decoder = ConditionalMLPDecoder(latent_dim=8, hidden_dims=(4,))
    with pytest.raises(InputError, match="chunk"):
        decoder.render_image(torch.zeros(1, 3, 2, 2), torch.zeros(1, 24), chunk=0)


# --- Checkpoint loading ------------------------------------------------------------------------


def _assert_loaded(model: EncoderRenderer, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_load_upstream_format_with_training_state(state, tmp_path):
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([param])
    param.sum().backward()
    optimizer.step()  # optimizer state of tensors, ints and floats: still weights-only loadable
    content = {"model_state_dict": state, "epoch": 3, "optimizer_state_dict": optimizer.state_dict()}
    path = _save(content, tmp_path / "er.pth")
    _assert_loaded(load_encoder_renderer(path), state)


def test_load_bare_state_dict(state, tmp_path):
    _assert_loaded(load_encoder_renderer(_save(state, tmp_path / "bare.pth")), state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_load_half_precision_file_as_fp32(state, tmp_path, dtype):
    half = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model = load_encoder_renderer(_save({"model_state_dict": half}, tmp_path / "half.pth"))
    _assert_loaded(model, {k: v.float() if v.is_floating_point() else v for k, v in half.items()})


def test_missing_tensor_is_named(state, tmp_path):
    broken = {k: v for k, v in state.items() if k != "decoder.out_layer.bias"}
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) missing: decoder\.out_layer\.bias"):
        load_encoder_renderer(_save(broken, tmp_path / "m.pth"))


def test_many_missing_tensors_are_summarised(state, tmp_path):
    broken = {k: v for k, v in state.items() if not k.startswith("decoder.")}
    expected = r"20 tensor\(s\) missing: decoder\.layer_norms\.0\.bias, .*\(and 10 more\)"
    with pytest.raises(CheckpointError, match=expected):
        load_encoder_renderer(_save(broken, tmp_path / "m.pth"))


def test_unexpected_tensor_is_named(state, tmp_path):
    broken = {**state, "encoder.attn_extra.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\): encoder\.attn_extra\.weight"):
        load_encoder_renderer(_save({"model_state_dict": broken}, tmp_path / "u.pth"))


def test_wrong_shape_names_key_and_both_shapes(state, tmp_path):
    broken = {**state, "encoder.fc.weight": torch.zeros(10, 512)}
    with pytest.raises(CheckpointError, match=r"encoder\.fc\.weight has shape \[10, 512\], expected \[2688, 512\]"):
        load_encoder_renderer(_save(broken, tmp_path / "s.pth"))


def test_unsupported_float_dtype_is_refused(state, tmp_path):
    broken = {**state, "decoder.out_layer.weight": state["decoder.out_layer.weight"].double()}
    with pytest.raises(CheckpointError, match=r"decoder\.out_layer\.weight is stored as torch\.float64"):
        load_encoder_renderer(_save(broken, tmp_path / "d.pth"))


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="nope.pth: no such checkpoint file"):
        load_encoder_renderer(path)


@pytest.mark.parametrize("content", [b"", b"definitely not a torch file" * 20])
def test_garbage_file_names_path(tmp_path, content):
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable PyTorch checkpoint"):
        load_encoder_renderer(path)


def test_non_state_dict_content_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="expected a state dict"):
        load_encoder_renderer(_save([1, 2, 3], tmp_path / "list.pth"))


def _touch(path: str) -> None:
    Path(path).touch()


class _Payload:
    """Unpickling this object would create a file: the loader must refuse before that happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


@pytest.mark.parametrize(
    "writer, message",
    [
        ("torch.save", "refused.*Unsupported global.*arbitrary code"),
        ("pickle protocol 2", "refused.*Unsupported global.*arbitrary code"),
        # torch's weights-only unpickler cannot parse protocol 4 framing at all: refused as unreadable.
        ("pickle protocol 4", "not a readable PyTorch checkpoint"),
    ],
)
def test_pickled_python_objects_are_refused(state, tmp_path, writer, message):
    marker = tmp_path / "code_ran"
    content = {"model_state_dict": {"decoder.out_layer.bias": state["decoder.out_layer.bias"]}, "x": _Payload(marker)}
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save(content, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(content, f, protocol=int(writer[-1]))
    with pytest.raises(CheckpointError, match=message):
        load_encoder_renderer(path)
    assert not os.path.exists(marker)
