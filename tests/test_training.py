"""The nano training recipe: tokenizer, examples, the train-time tower and its fold, safe resumable runs."""

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from safetensors import safe_open

from vera_mobile.errors import InputError
from vera_mobile.models.checkpoint import TIED_KEY, to_upstream_key
from vera_mobile.models.config import PlannerConfig
from vera_mobile.models.fastvit import UPSTREAM_PREFIX, FastViTHD
from vera_mobile.models.planner import VeraPlanner
from vera_mobile.photo_io import load_photo
from vera_mobile.prompts import IMAGE_TOKEN_INDEX, RETOUCH_TOKENS, VERA_ADDED_TOKENS
from vera_mobile.runtime.generation import SamplingOptions
from vera_mobile.runtime.retoucher import Retoucher
from vera_mobile.tokenizer import Tokenizer
from vera_mobile.training import nano
from vera_mobile.training.data import answer_weights, corpus, load_examples, planner_batch, read_datasets
from vera_mobile.training.synthesis import develop_uint8, synthesize, write_dataset
from vera_mobile.training.train import TrainOptions, train
from vera_mobile.training.train_tower import TrainFastViT, fold, folded_tower
from vera_mobile.training.vision_init import init_vision_tower
from vera_mobile.views import planner_view

from conftest import skimage_photo


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    photos = [skimage_photo(name) for name in ("astronaut.png", "chelsea.png", "coffee.png")]
    out = tmp_path_factory.mktemp("synth")
    write_dataset(synthesize(photos, count=9, seed=3, size=64, fit_steps=4), out, progress=False)
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for row in rows:  # paths given directly have no manifest split: call them all training photos
        row["split"] = "train"
    (out / "records.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


@pytest.fixture(scope="module")
def tokenizer(dataset):
    return Tokenizer(nano.train_tokenizer(corpus(read_datasets([dataset]))))


def test_tokenizer_starts_with_the_chat_and_veraretouch_tokens_and_round_trips(tokenizer, dataset):
    for i, token in enumerate(nano.special_tokens()):
        assert tokenizer.single_token_id(token) == i
    assert len(nano.special_tokens()) == 3 + len(VERA_ADDED_TOKENS)
    text = read_datasets([dataset])[0]["text"]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(tokenizer.encode("naïve ünseen wörds 🙂")) == "naïve ünseen wörds 🙂"  # byte level


def test_problem_sections_get_the_diagnosis_weight():
    assert answer_weights([5, 1, 2, 9, 3, 4, 7, 8], [(1, 9), (4, 7)], 4.0) == [1, 4, 4, 4, 1, 4, 4, 1]


def test_planner_batch_aligns_labels_images_and_retouch_states(tokenizer, dataset):
    records = read_datasets([dataset])
    examples = load_examples(records, tokenizer, image_size=256, reference_size=64, progress=False)
    batch = planner_batch(examples[:3], tokenizer.retouch_ids, 16, 32, np.random.default_rng(0))
    for row, ex in enumerate(examples[:3]):
        images = 16 if IMAGE_TOKEN_INDEX in ex.prompt_ids else 0
        assert int(batch.image_slots[row].sum()) == images
        start = len(ex.prompt_ids) - (1 if images else 0) + images
        answer = batch.labels[row, start - 1 : start - 1 + len(ex.answer_ids)].tolist()
        assert answer == ex.answer_ids  # position t is trained to predict token t + 1
        for position, token in zip(batch.retouch_positions[row].tolist(), tokenizer.retouch_ids):
            assert batch.ids[row, position + 1] == token  # the state whose logits produce the token
    assert batch.before.shape == (3, 32, 3) and batch.before.min() >= -1 and batch.after.max() <= 1
    assert len(RETOUCH_TOKENS) == batch.retouch_positions.shape[1]


def test_vision_init_lets_the_photo_reach_the_decoder():
    """PyTorch's default init makes the folded FastViT's output the same for every photo (1e-9)."""
    raw = nano.nano_config(vocab_size=64, eos_id=2, pad_id=0)
    torch.manual_seed(0)
    tower = VeraPlanner(PlannerConfig.from_dict(raw)).vision_tower
    views = torch.stack([torch.full((3, 256, 256), v) for v in (0.2, 0.5, 0.8)])
    views[:, 0] *= torch.tensor([1.2, 1.0, 0.8])[:, None, None]  # different colours too

    def spread() -> float:
        with torch.no_grad():
            out = tower(views)
        return float(out.std(0).mean() / out.abs().mean())

    assert spread() < 1e-3
    init_vision_tower(tower, views)
    assert spread() > 0.1


def test_training_runs_resumes_and_writes_a_loadable_model(dataset, tmp_path, sample_photo):
    options = TrainOptions(data=[str(dataset)], out=str(tmp_path / "model"), work=str(tmp_path / "work"),
                           reference_steps=2, reference_batch=2, reference_full_size_steps=1, planner_steps=2,
                           planner_batch=2, pixels=64, warmup=1, checkpoint_every=1, threads=2)
    train(options, progress=False)
    options.planner_steps = 3  # a second run continues from the saved step
    out = train(options, progress=False)
    log = [json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in log] == [("reference", 1), ("reference", 2), ("planner", 1),
                                                      ("planner", 2), ("planner", 3)]
    summary = json.loads((out / "training.json").read_text())
    assert summary["stages"]["planner"]["steps"] == 3 and summary["records"] == 9
    retoucher = Retoucher.load(out)
    assert retoucher.modes == ("auto", "style", "param", "reference")
    result = retoucher.retouch(sample_photo, sampling=SamplingOptions(max_new_tokens=4))
    assert result.image.shape[2] == 3 and len(result.latent) == 3 * nano.HIDDEN


FOLD_TOLERANCE = 1e-5  # max |folded - train-time| relative to the output's max |x| (float32 rounding only)


@pytest.fixture(scope="module")
def real_views():
    """Planner views of real photos and of warm / green copies of one of them, [N, 3, 256, 256] in [0, 1]."""
    views = []
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        photo = load_photo(skimage_photo(name))
        views.append(planner_view(photo, nano.IMAGE_SIZE))
    coffee = load_photo(skimage_photo("coffee.png"))
    for sliders in ({"IncrementalTemperature": 60}, {"IncrementalTint": -60}):
        copy = dataclasses.replace(coffee, pixels=develop_uint8(coffee.pixels, sliders))
        views.append(planner_view(copy, nano.IMAGE_SIZE))
    return torch.from_numpy(np.stack(views)).float()


def test_folded_tower_equals_the_train_time_tower_on_real_views(real_views):
    config = PlannerConfig.from_dict(nano.nano_config(vocab_size=64, eos_id=2, pad_id=0)).vision
    torch.manual_seed(0)
    tower = TrainFastViT(config)
    optimizer = torch.optim.AdamW(tower.parameters(), lr=1e-2)
    tower.train()
    for _ in range(3):  # move every weight, BatchNorm statistics and layer scale away from its init
        loss = (tower(real_views) - 0.1).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tower.eval()
    folded = folded_tower(tower)
    assert set(fold(tower)) == set(FastViTHD(config).state_dict())  # upstream's names, nothing more or less
    with torch.no_grad():
        want, got = tower(real_views), folded(real_views)
    assert got.shape == (len(real_views), config.num_patches, config.out_dim)
    assert (got - want).abs().max() <= FOLD_TOLERANCE * want.abs().max()


def test_the_train_time_tower_passes_colour_to_the_decoder(real_views):
    """The photo's colour must change the image embeddings: the coffee photo vs its warm and green copies."""
    config = PlannerConfig.from_dict(nano.nano_config(vocab_size=64, eos_id=2, pad_id=0)).vision
    torch.manual_seed(0)
    tower = TrainFastViT(config).train()
    with torch.no_grad():
        out = tower(real_views)
    coffee, warm, green = out[2], out[3], out[4]
    scale = out.std()
    assert (warm - coffee).abs().mean() > 0.05 * scale and (green - coffee).abs().mean() > 0.05 * scale
    assert (warm - green).abs().mean() > 0.05 * scale


class _Canary:
    """Unpickling this creates a file: a checkpoint that runs code when loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_training_never_unpickles_a_checkpoint_from_the_work_folder(dataset, tmp_path):
    work, canary = tmp_path / "work", tmp_path / "pwned"
    work.mkdir()
    (work / "reference.pt").write_bytes(pickle.dumps({"model": _Canary(canary)}))
    options = TrainOptions(data=[str(dataset)], out=str(tmp_path / "model"), work=str(work), reference_steps=1,
                           reference_batch=2, reference_full_size_steps=0, planner_steps=1, planner_batch=2, pixels=16,
                           warmup=1, threads=1)
    with pytest.raises(InputError, match="pickled checkpoint"):
        train(options, progress=False)
    (work / "reference.pt").unlink()
    (work / "reference.safetensors").write_bytes(pickle.dumps(_Canary(canary)))  # a pickle under the new name
    with pytest.raises(InputError, match="not a readable training checkpoint"):
        train(options, progress=False)
    assert not canary.exists() and not (tmp_path / "model").exists()


def test_a_time_limit_stops_after_a_checkpoint_and_the_next_run_continues(dataset, tmp_path):
    options = TrainOptions(data=[str(dataset)], out=str(tmp_path / "model"), work=str(tmp_path / "work"),
                           reference_steps=2, reference_batch=2, reference_full_size_steps=0, planner_steps=1,
                           planner_batch=2, pixels=16, warmup=1, checkpoint_every=100, threads=1,
                           time_limit_minutes=0)
    assert train(options, progress=False) is None  # stopped after its first step, with a checkpoint
    log = [json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in log] == [("reference", 1)]
    assert (tmp_path / "work" / "reference.safetensors").is_file() and not (tmp_path / "model").exists()
    options.time_limit_minutes = 60
    out = train(options, progress=False)
    log = [json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in log][1:] == [("reference", 2), ("planner", 1)]
    config = PlannerConfig.from_dict(json.loads((out / "config.json").read_text()))
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        names = set(handle.keys())
    # exactly the inference layout's tensors under upstream's names: the tower was folded
    assert names == {to_upstream_key(k) for k in VeraPlanner(config).state_dict() if k != TIED_KEY}
    assert {UPSTREAM_PREFIX + k for k in FastViTHD(config.vision).state_dict()} <= names
    assert Retoucher.from_pretrained(out).modes == ("auto", "style", "param", "reference")


def test_fine_tuning_starts_from_a_written_model_and_keeps_its_tokenizer_and_reference_model(dataset, tmp_path):
    from vera_mobile.builtin import resolve_model

    nano_dir = resolve_model("nano")
    options = TrainOptions(data=[str(dataset)], out=str(tmp_path / "model"), work=str(tmp_path / "work"),
                           init=str(nano_dir), planner_steps=2, planner_batch=2, pixels=64, warmup=1, threads=2)
    out = train(options, progress=False)
    log = [json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in log] == [("planner", 1), ("planner", 2)]  # no reference stage
    assert all("colour" in r for r in log)
    assert (out / "tokenizer.json").read_text() == (nano_dir / "tokenizer.json").read_text()
    assert (out / "encoder_renderer.safetensors").read_bytes() == (nano_dir / "encoder_renderer.safetensors").read_bytes()
    with safe_open(str(out / "model.safetensors"), framework="pt") as new, \
            safe_open(str(nano_dir / "model.safetensors"), framework="pt") as old:
        assert set(new.keys()) == set(old.keys())  # same layout, no training-only read-out written
        moved = [k for k in old.keys() if not torch.equal(new.get_tensor(k), old.get_tensor(k))]
    assert moved  # and the planner did train
    trained = json.loads((out / "training.json").read_text())["options"]
    assert trained["init"] == str(nano_dir) and trained["tower"] == "folded"


def test_fine_tuning_refuses_a_folder_that_is_not_a_model(dataset, tmp_path):
    options = TrainOptions(data=[str(dataset)], out=str(tmp_path / "model"), work=str(tmp_path / "work"),
                           init=str(tmp_path))
    with pytest.raises(InputError, match="not a trained nano model folder"):
        train(options, progress=False)
    assert not (tmp_path / "model").exists()


def test_colour_statistics_read_white_balance_not_exposure_or_padding(real_views):
    from vera_mobile.training.data import COLOUR_STATISTICS, colour_statistics

    coffee, warm, green = real_views[2:5]
    stats = colour_statistics(torch.stack([coffee, warm, green]))
    assert stats.shape == (3, COLOUR_STATISTICS)
    assert stats[1, 0] > stats[0, 0] + 0.02 and stats[1, 1] < stats[0, 1] - 0.01  # warmer: more red, less blue
    assert stats[2, 0] < stats[0, 0] and stats[2, 1] < stats[0, 1]  # greener: less red and blue against green
    darker = torch.from_numpy(develop_uint8(
        (coffee.permute(1, 2, 0) * 255).round().byte().numpy(), {"Exposure2012": -20})).permute(2, 0, 1).float() / 255
    assert torch.allclose(colour_statistics(darker[None])[0, :2], stats[0, :2], atol=0.02)  # exposure: same chroma
    padded = torch.zeros(3, 256, 320)
    padded[..., 32:288] = coffee
    assert torch.allclose(colour_statistics(padded[None])[0], stats[0], atol=1e-3)  # black padding carries nothing


def test_augmented_views_are_crops_and_mirror_images_with_the_photos_colour(real_views):
    from vera_mobile.training.data import augment_views, colour_statistics

    coffee = real_views[2]
    views = coffee[None].repeat(8, 1, 1, 1)
    out = augment_views(views, np.random.default_rng(0), min_area=0.5)
    assert out.shape == views.shape and 0 <= out.min() and out.max() <= 1
    assert len({o.sum().item() for o in out}) == 8  # every step sees a different view of the photo
    # a crop keeps the photo's white balance, give or take its content (the record's cast holds for any crop)
    assert torch.allclose(colour_statistics(out)[:, :2], colour_statistics(coffee[None])[:, :2], atol=0.03)
    # mirror images, about half the time: a view white on its left, black on its right
    halves = torch.zeros(8, 3, 64, 64)
    halves[..., :32] = 1
    out = augment_views(halves, np.random.default_rng(1), min_area=0.5)
    left, right = out[..., :8].mean((1, 2, 3)), out[..., -8:].mean((1, 2, 3))
    assert ((left - right).abs() > 0.99).all() and 0 < (right > left).sum() < 8


def test_view_augmentation_is_applied_to_every_planner_step_when_asked(dataset, tmp_path, monkeypatch):
    from vera_mobile.builtin import resolve_model
    from vera_mobile.training import train as train_module

    calls, with_views = [], []
    real_augment, real_batch = train_module.augment_views, train_module.planner_batch
    monkeypatch.setattr(train_module, "augment_views", lambda views, *a: calls.append(len(views)) or real_augment(views, *a))

    def batch_spy(*args, **kwargs):
        batch = real_batch(*args, **kwargs)
        if batch.views.numel():
            with_views.append(len(batch.views))
        return batch

    monkeypatch.setattr(train_module, "planner_batch", batch_spy)
    options = TrainOptions(data=[str(dataset)], out=str(tmp_path / "model"), work=str(tmp_path / "work"),
                           init=str(resolve_model("nano")), planner_steps=3, planner_batch=2, pixels=64, warmup=1,
                           threads=2, augment_views=True)
    out = train(options, progress=False)
    assert calls and calls == with_views  # every batch with views, each view once
    assert json.loads((out / "training.json").read_text())["options"]["augment_views"] is True
