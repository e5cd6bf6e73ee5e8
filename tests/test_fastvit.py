"""FastViTHD vision tower: upstream parameter layout and numerics (fixtures from make_fastvit_golden.py)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from vera_mobile.errors import CheckpointError
from vera_mobile.models.fastvit import UPSTREAM_PREFIX, FastViTConfig, FastViTHD, upstream_tower_weights

DATA = Path(__file__).parent / "data"
NANO = {"layers": [1, 1, 1, 1, 1], "embed_dims": [8, 16, 32, 32, 64], "projection_dim": 16}


def test_small_golden_matches_upstream():
    path = DATA / "fastvit_small_golden.safetensors"
    with safe_open(path, "pt") as f:
        config = FastViTConfig.from_dict(json.loads(f.metadata()["config"]))
    tensors = load_file(path)
    pixels = tensors.pop("golden.pixels_u8").float() / 255
    expected = tensors.pop("golden.embeddings")

    model = FastViTHD(config)
    model.load_state_dict(tensors, strict=True)  # every file tensor consumed, none missing
    with torch.no_grad():
        got = model(pixels)

    assert got.shape == expected.shape == (2, 6, config.out_dim)  # 128x192 input -> 2x3 grid
    err = (got - expected).abs().max().item()
    assert err <= 1e-4 * expected.abs().max().item(), err


def test_full_size_state_dict_matches_upstream_checkpoint_layout():
    expected = json.loads((DATA / "upstream_fastvithd_keys.json").read_text())
    assert len(expected) == 629
    with torch.device("meta"):
        model = FastViTHD(FastViTConfig.from_upstream("mobileclip_l_1024"))
    got = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert got == expected


def test_full_size_output_shape():
    config = FastViTConfig.from_upstream("mobileclip_l_1024")
    assert (config.out_dim, config.num_patches, config.image_size) == (3072, 256, 1024)
    with torch.device("meta"):  # shapes only: no compute, no memory
        out = FastViTHD(config)(torch.empty(1, 3, 1024, 1024))
    assert out.shape == (1, 256, 3072)


def test_nano_override_builds_and_runs():
    config = FastViTConfig.from_upstream("mobileclip_l_256", NANO)
    assert config.layers == (1, 1, 1, 1, 1) and config.image_size == 256
    assert (config.out_dim, config.num_patches) == (128, 16)
    torch.manual_seed(0)
    model = FastViTHD(config)
    pixels = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        out = model(pixels)
        alone = model(pixels[1:])
    assert out.shape == (2, 16, 128)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1:], alone)  # samples do not mix across the batch


def test_nano_exports():
    torch.manual_seed(0)
    model = FastViTHD(FastViTConfig.from_dict({**NANO, "image_size": 128}))
    pixels = torch.rand(1, 3, 128, 128)
    program = torch.export.export(model, (pixels,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(pixels), model(pixels))


def test_config_from_upstream_names():
    assert FastViTConfig.from_upstream("mobileclip_l_384").num_patches == 36
    for bad in ("mobileclip_s_1024", "clip_l_1024", "mobileclip_l", "siglip_so400m"):
        with pytest.raises(CheckpointError):
            FastViTConfig.from_upstream(bad)
    with pytest.raises(ValueError, match="unknown FastViTConfig field"):
        FastViTConfig.from_upstream("mobileclip_l_1024", {"depths": [1, 1, 1, 1, 1]})
    with pytest.raises(ValueError, match="head_dim"):
        FastViTConfig.from_dict({"embed_dims": [8, 16, 32, 48, 64]})
    with pytest.raises(ValueError, match="multiple of the total stride"):
        FastViTConfig.from_dict({"image_size": 1000})


def test_upstream_tower_weights_strips_prefix():
    w = torch.zeros(1)
    checkpoint = {UPSTREAM_PREFIX + "head.proj": w, "model.mm_projector.0.weight": w, "lm_head.weight": w}
    assert upstream_tower_weights(checkpoint) == {"head.proj": w}
