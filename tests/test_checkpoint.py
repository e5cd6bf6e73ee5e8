"""Loading upstream-layout planner checkpoints: every tensor accounted for, clear errors otherwise."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vera_mobile.describe import describe
from vera_mobile.errors import CheckpointError
from vera_mobile.models.checkpoint import expected_shapes, load_planner, to_our_key, to_upstream_key
from vera_mobile.models.config import PlannerConfig
from vera_mobile.testing.synthetic import synthetic_config, write_synthetic_checkpoint

DATA = Path(__file__).parent / "data"
VISION_PREFIX = "model.vision_tower.vision_tower.model."


def copy_with_tensors(src: Path, dst: Path, tensors: dict, config_update: dict | None = None) -> Path:
    """A copy of a checkpoint directory with replaced tensors (and optionally config fields)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    save_file(tensors, str(dst / "model.safetensors"))
    if config_update:
        config = json.loads((dst / "config.json").read_text())
        (dst / "config.json").write_text(json.dumps({**config, **config_update}))
    return dst


def test_full_size_layout_matches_upstream_key_list_and_counts():
    """The full FastVLM-0.5B-shaped planner expects exactly upstream's tensors (docs/upstream-compatibility.md#checkpoint-layout)."""
    expected = {to_upstream_key(k): v for k, v in expected_shapes(PlannerConfig.from_dict(synthetic_config("full"))).items()}
    vision = {k.removeprefix(VISION_PREFIX): list(v) for k, v in expected.items() if k.startswith(VISION_PREFIX)}
    upstream_vision = {name: shape for name, shape, _ in json.loads((DATA / "upstream_fastvithd_keys.json").read_text())}
    assert vision == upstream_vision  # recorded from upstream's own FastViTHD code
    groups = {"model.layers.": 288, "model.mm_projector.": 4, "retouch_head.": 10, "retouch_decoder.": 20}
    for prefix, count in groups.items():
        assert sum(k.startswith(prefix) for k in expected) == count, prefix
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= set(expected)
    assert len(expected) == 629 + 288 + 2 + 4 + 10 + 20 + 1  # + lm_head (absent from tied files)

    with torch.device("meta"):
        from vera_mobile.models.planner import VeraPlanner

        model = VeraPlanner(PlannerConfig.from_dict(synthetic_config("full")))
    assert sum(p.numel() for p in model.parameters()) == 634_283_619  # tied total
    assert sum(p.numel() for p in model.renderer.parameters()) == 2_577_795
    assert sum(p.numel() for p in model.retouch_head.parameters()) == 9_042_432


def test_tiny_round_trip_and_describe(tiny_checkpoint, tiny_planner):
    report = describe(tiny_checkpoint)
    assert report["key_check"] == "ok" and report["tied_lm_head"] is True
    assert set(report["components"]) == {"language_model", "vision_tower", "projector", "retouch_head", "renderer"}
    stored = load_file(str(tiny_checkpoint / "model.safetensors"))
    ours = tiny_planner.state_dict()
    for name, tensor in stored.items():
        assert torch.equal(ours[to_our_key(name)], tensor), name
    # tied: the output projection is the embedding matrix itself
    lm = tiny_planner.language_model
    assert lm.lm_head.weight.data_ptr() == lm.model.embed_tokens.weight.data_ptr()


def test_unexpected_tensor_is_named(tiny_checkpoint, tmp_path):
    tensors = load_file(str(tiny_checkpoint / "model.safetensors"))
    tensors["model.image_newline"] = torch.zeros(64)
    bad = copy_with_tensors(tiny_checkpoint, tmp_path / "ckpt", tensors)
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\).*model\.image_newline"):
        load_planner(bad)


def test_missing_tensor_is_named(tiny_checkpoint, tmp_path):
    tensors = load_file(str(tiny_checkpoint / "model.safetensors"))
    del tensors["retouch_head.4.bias"]
    bad = copy_with_tensors(tiny_checkpoint, tmp_path / "ckpt", tensors)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: retouch_head\.4\.bias"):
        load_planner(bad)


def test_wrong_shape_is_named(tiny_checkpoint, tmp_path):
    tensors = load_file(str(tiny_checkpoint / "model.safetensors"))
    tensors["model.mm_projector.0.weight"] = torch.zeros(64, 255)
    bad = copy_with_tensors(tiny_checkpoint, tmp_path / "ckpt", tensors)
    with pytest.raises(CheckpointError, match=r"model\.mm_projector\.0\.weight: stored \[64, 255\] vs expected \[64, 256\]"):
        load_planner(bad)


def test_untied_lm_head_is_loaded(tiny_checkpoint, tmp_path):
    tensors = load_file(str(tiny_checkpoint / "model.safetensors"))
    tensors["lm_head.weight"] = torch.randn_like(tensors["model.embed_tokens.weight"])
    ckpt = copy_with_tensors(tiny_checkpoint, tmp_path / "ckpt", tensors, {"tie_word_embeddings": False})
    model, report = load_planner(ckpt)
    assert report.tied_lm_head is False
    assert torch.equal(model.language_model.lm_head.weight, tensors["lm_head.weight"])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_files_load_as_fp32(tmp_path, dtype, tiny_planner):
    ckpt = write_synthetic_checkpoint(tmp_path / "ckpt", size="tiny", dtype=dtype)
    model, report = load_planner(ckpt)
    assert {"BF16": "bfloat16", "F16": "float16"}[next(k for k in report.stored_dtypes if k != "I64")] == dtype
    assert all(p.dtype == torch.float32 for p in model.parameters())
    rounding = {"bfloat16": 1e-2, "float16": 1e-3}[dtype]
    reference = dict(tiny_planner.named_parameters())  # same seed, stored in fp32
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, reference[name], rtol=rounding, atol=rounding)


def test_sharded_checkpoint(tiny_checkpoint, tmp_path):
    tensors = load_file(str(tiny_checkpoint / "model.safetensors"))
    names = sorted(tensors)
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(dst / shard))
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (dst / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    model, report = load_planner(dst)
    assert report.num_tensors == len(tensors)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: (d / "config.json").unlink(), "config.json: not found"),
        (lambda d: (d / "config.json").write_text("{oops"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text('{"model_type": "llama"}'), "model_type is 'llama'"),
        (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes(b"garbage" * 10), "not a readable safetensors file"),
    ],
)
def test_broken_directories_give_clear_errors(tiny_checkpoint, tmp_path, mutate, message):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst)
    mutate(dst)
    with pytest.raises(CheckpointError, match=message):
        load_planner(dst)


def test_tokenizer_without_vera_tokens_is_a_clear_error(tiny_checkpoint, tmp_path):
    from vera_mobile.tokenizer import Tokenizer

    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst)
    for name in ("added_tokens.json", "tokenizer_config.json", "special_tokens_map.json"):
        (dst / name).unlink()
    with pytest.raises(CheckpointError, match="does not know '<retouch_light>' as a single token"):
        Tokenizer.from_dir(dst)
