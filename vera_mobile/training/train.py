"""Train VeraRetouch-Nano on this machine's CPU, with the paper's two ingredients at small scale.

Stage 1, `reference` (Encoder-Renderer pre-training): the reference encoder sees a record's
before/after views and produces a control latent; the renderer, conditioned on it, must turn the
record's before pixels into its after pixels (L1). This teaches the renderer a latent edit space
and gives reference mode its model.

Stage 2, `planner` (end to end): the planner reads the record's prompt (and photo), is taught its
reasoning text by token cross-entropy, and the hidden states before its three retouch tokens go
through the retouch head into the renderer (initialised from stage 1), whose output is compared
with the target pixels (L1, weight `pixel_weight`). Both losses flow through every component.

The planner's vision tower is trained in FastViT's train-time form (BatchNorm and re-
parameterizable branches, `train_tower.py`) and folded into the inference layout, with upstream's
tensor names, when the model is written (`tower="folded"` trains the inference layout directly,
from a data-dependent initialisation, as the first nano model was: kept for the ablation).
An auxiliary loss (weight `colour_weight`) asks a linear read-out of the mean image embedding for
the view's own colour statistics (`data.colour_statistics`), so the white balance reaches the
language model in a form it can use on photos it has never seen; the read-out is not written.

`init` fine-tunes a written nano model instead: stage 1 is skipped (the model's reference encoder
and tokenizer are kept) and stage 2 starts from its planner, whose tower is then trained in the
folded layout it was written in.

Each stage saves `WORK/<stage>.safetensors` every `checkpoint_every` steps (model, optimiser,
schedule, random state; data only, `checkpoints.py`) and continues from it when run again; losses
go to `WORK/log.jsonl`. One invocation stops, after a checkpoint, once `time_limit_minutes` have
passed; running the same command again continues. The finished model is written to OUT in the
upstream checkpoint layout (config.json, tokenizer.json, model.safetensors) plus
`encoder_renderer.safetensors` and `training.json`.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..files import write_text_atomic
from ..models.checkpoint import TIED_KEY, load_planner, to_upstream_key
from ..models.config import PlannerConfig
from ..models.planner import VeraPlanner
from ..models.reference_checkpoint import load_encoder_renderer
from ..models.reference_encoder import EncoderRenderer
from ..views import REFERENCE_SIZE
from ..prompts import SECTION_TOKENS
from ..tokenizer import Tokenizer
from . import nano
from .checkpoints import StageState, checkpoint_path, load_stage, refuse_pickles, save_stage
from .data import (COLOUR_STATISTICS, Example, augment_views, colour_statistics, corpus, load_examples, planner_batch,
                   read_datasets, reference_batch)
from .recipe import (AUGMENT_VIEWS, COLOUR_WEIGHT, DIAGNOSIS_WEIGHT, LEARNING_RATE, PLANNER_BATCH, PLANNER_STEPS,
                     REFERENCE_STEPS, VIEW_CROP_MIN_AREA)
from .train_tower import TrainFastViT, folded_tower
from .vision_init import init_vision_tower

TRAIN_REFERENCE_SIZE = 256  # reference views are made at this size; the last steps at REFERENCE_SIZE
TOWER_FORMS = ("train-time", "folded")
INIT_FILES = ("config.json", "tokenizer.json", "model.safetensors", "encoder_renderer.safetensors")


@dataclass
class TrainOptions:
    """Defaults are the VeraRetouch-Nano 2 recipe: up to three invocations of ≤ 95 min on a 2-core CPU."""

    data: list[str]
    out: str
    work: str
    seed: int = 0
    reference_steps: int = REFERENCE_STEPS
    reference_batch: int = 8
    reference_full_size_steps: int = 150  # final reference steps at the runtime's 512-px views
    planner_steps: int = PLANNER_STEPS
    planner_batch: int = PLANNER_BATCH
    pixels: int = 1024  # pixels per example in the pixel loss
    lr: float = LEARNING_RATE
    renderer_lr: float = 3e-4  # the pre-trained renderer moves more slowly in stage 2
    pixel_weight: float = 10.0
    diagnosis_weight: float = DIAGNOSIS_WEIGHT  # applied in data.planner_batch
    colour_weight: float = COLOUR_WEIGHT  # auxiliary loss: the image embeddings must carry colour_statistics
    augment_views: bool = AUGMENT_VIEWS  # planner views as random crops / mirror images (data.augment_views)
    init: str | None = None  # a trained nano model to fine-tune (stage 1 skipped, tower trained folded)
    warmup: int = 100
    checkpoint_every: int = 200
    tower: str = "train-time"  # TOWER_FORMS: FastViT with BatchNorm + branches (folded at the end), or folded
    time_limit_minutes: float = 95.0  # one invocation stops (after a checkpoint) once this much time has passed
    threads: int = field(default_factory=lambda: torch.get_num_threads())


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _batches(examples: Sequence[Example], size: int, rng: np.random.Generator) -> Iterator[list[Example]]:
    """Endless batches of one mode each (similar lengths, little padding), modes interleaved."""
    by_mode: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_mode.setdefault(ex.mode, []).append(i)
    while True:
        epoch = []
        for indices in by_mode.values():
            order = rng.permutation(indices)
            epoch += [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
        for j in rng.permutation(len(epoch)):
            yield [examples[i] for i in epoch[j]]


class Stage:
    """One resumable optimisation loop: `loss_fn(batch_examples, step) -> (loss, {name: value})`.

    `rng` (saved with the checkpoint) is for the loss's own sampling, e.g. which pixels to compare.
    """

    def __init__(self, name: str, model: torch.nn.Module, groups: list[dict], steps: int, options: TrainOptions,
                 deadline: float = math.inf):
        self.name, self.model, self.steps, self.options = name, model, steps, options
        self.deadline = deadline  # time.monotonic() after which run() checkpoints and returns
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        self.base_lrs = [g["lr"] for g in groups]
        refuse_pickles(Path(options.work), name)
        self.path = checkpoint_path(Path(options.work), name)
        self.step = 0
        self.seconds = 0.0
        self.rng = np.random.default_rng([options.seed, len(name)])
        if self.path.is_file():
            state = load_stage(self.path)
            model.load_state_dict(state.model)
            self.optimizer.load_state_dict(state.optimizer)
            self.step, self.seconds = state.step, state.seconds
            self.rng.bit_generator.state = state.numpy_rng
            torch.set_rng_state(state.torch_rng)

    @property
    def done(self) -> bool:
        return self.step >= self.steps

    def save(self) -> None:
        save_stage(self.path, StageState(
            model=self.model.state_dict(), optimizer=self.optimizer.state_dict(), step=self.step,
            seconds=self.seconds, numpy_rng=self.rng.bit_generator.state, torch_rng=torch.get_rng_state()))

    def run(self, examples: Sequence[Example], batch_size: int, loss_fn: Callable, log: Callable[[dict], None]) -> None:
        from tqdm import tqdm

        # The batch order has its own seeded generator; skipping the batches already consumed makes
        # a resumed run see the same order as an uninterrupted one.
        batches = _batches(examples, batch_size, np.random.default_rng([self.options.seed, len(self.name), 1]))
        for _ in range(self.step):
            next(batches)
        # disable=False: shown even where third-party bars are hidden (quiet.tool_progress_bars_hidden)
        bar = tqdm(total=self.steps, initial=self.step, desc=self.name, unit="step", disable=False)
        self.model.train()
        while not self.done:
            start = time.perf_counter()
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * _lr_factor(self.step, self.steps, self.options.warmup)
            loss, parts = loss_fn(next(batches), self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.step += 1
            self.seconds += time.perf_counter() - start
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in parts.items()})
            log({"stage": self.name, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                 "seconds": round(self.seconds, 2), **{k: round(v, 5) for k, v in parts.items()}})
            out_of_time = time.monotonic() >= self.deadline
            if self.step % self.options.checkpoint_every == 0 or self.done or out_of_time:
                self.save()
            if out_of_time:
                break
        bar.close()


def _freeze_batchnorm(model: torch.nn.Module) -> None:
    """In the folded layout, the ConvFFN BatchNorms act as fixed affine maps (running statistics never move)."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def build_tokenizer(records: list[dict], work: Path) -> Tokenizer:
    path = work / "tokenizer.json"
    if not path.is_file():
        nano.train_tokenizer(corpus(records)).save(str(path))
    return Tokenizer.from_file(path)


def train(options: TrainOptions, progress: bool = True) -> Path | None:
    """Run both stages (resuming where a previous run stopped) and write the model to `options.out`.

    Returns None, with both stages' progress checkpointed, when the time limit stopped it first.
    """
    if options.tower not in TOWER_FORMS:
        raise InputError(f"tower must be one of {', '.join(TOWER_FORMS)}, got {options.tower!r}")
    deadline = time.monotonic() + 60 * options.time_limit_minutes
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    random.seed(options.seed)
    work, out = Path(options.work), Path(options.out)
    work.mkdir(parents=True, exist_ok=True)
    log_file = (work / "log.jsonl").open("a", encoding="utf-8")

    def log(row: dict) -> None:
        log_file.write(json.dumps(row) + "\n")
        log_file.flush()

    records = read_datasets(options.data, "train")
    init = _init_model(options.init)
    if init is not None:
        options = replace(options, tower="folded")  # a written model holds only the folded layout
        if not (work / "tokenizer.json").is_file():
            shutil.copyfile(init / "tokenizer.json", work / "tokenizer.json")  # fine-tuning keeps the model's tokenizer
    tokenizer = build_tokenizer(records, work)
    if init is not None:
        raw = json.loads((init / "config.json").read_text(encoding="utf-8"))
    else:
        raw = nano.nano_config(tokenizer.vocab_size, eos_id=tokenizer.single_token_id("<|im_end|>"),
                               pad_id=tokenizer.single_token_id("<|endoftext|>"))
    config = PlannerConfig.from_dict(raw)
    examples = load_examples(records, tokenizer, config.vision.image_size, TRAIN_REFERENCE_SIZE, progress)

    # Stage 1: reference encoder + renderer (a fine-tune keeps the model's own).
    stages: list[Stage] = []
    if init is not None:
        reference = load_encoder_renderer(init / "encoder_renderer.safetensors")
    else:
        reference = EncoderRenderer(config.latent_dim, nano.REFERENCE_WIDTHS, config.renderer_hidden_dims)
        stage1 = _reference_stage(reference, examples, options, deadline, log)
        if not stage1.done:
            log_file.close()
            return None
        stages.append(stage1)
    reference.eval()

    # Stage 2: the planner, end to end, with the stage-1 renderer as its starting point.
    torch.manual_seed(options.seed)
    if init is not None:
        planner, _ = load_planner(init)
    else:
        planner = VeraPlanner(config)
        planner.renderer.load_state_dict(reference.decoder.state_dict())
        if options.tower == "train-time":
            planner.vision_tower = TrainFastViT(config.vision)
        else:
            calibration = [ex.view for ex in examples if ex.view is not None][:16]
            init_vision_tower(planner.vision_tower, torch.from_numpy(np.stack(calibration)).float() / 255)
    planner.language_model.set_attn_implementation("sdpa")  # training speed; same maths as eager
    # Reads colour_statistics off the mean image embedding; trained with the planner, never written.
    colour_head = torch.nn.Linear(config.hidden_size, COLOUR_STATISTICS)
    trainee = torch.nn.ModuleDict({"planner": planner, "colour_head": colour_head})
    renderer_params = set(map(id, planner.renderer.parameters()))
    groups = [
        {"params": [p for p in trainee.parameters() if id(p) not in renderer_params], "lr": options.lr},
        {"params": list(planner.renderer.parameters()), "lr": options.renderer_lr},
    ]
    stage2 = Stage("planner", trainee, groups, options.planner_steps, options, deadline)
    retouch_ids = tokenizer.retouch_ids
    num_patches = config.vision.num_patches
    problem_sections = [tuple(tokenizer.single_token_id(t) for t in SECTION_TOKENS[name])
                        for name in SECTION_TOKENS if name.startswith("problem")]

    def planner_loss(batch_examples: list[Example], step: int):
        if options.tower == "folded":
            _freeze_batchnorm(planner.vision_tower)
        batch = planner_batch(batch_examples, retouch_ids, num_patches, options.pixels, stage2.rng,
                              problem_sections, options.diagnosis_weight)
        embeds = planner.embed_tokens(batch.ids)
        colour = torch.zeros(())
        if batch.views.numel():
            views = augment_views(batch.views, stage2.rng, VIEW_CROP_MIN_AREA) if options.augment_views else batch.views
            features = planner.encode_image(views)
            embeds = embeds.masked_scatter(batch.image_slots[..., None], features.to(embeds.dtype))
            if options.colour_weight:
                colour = F.mse_loss(colour_head(features.mean(1)), colour_statistics(views))
        hidden = planner.language_model.model(inputs_embeds=embeds, use_cache=False).last_hidden_state
        logits = planner.language_model.lm_head(hidden)
        token_ce = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=-100, reduction="none")
        weights = batch.label_weights.flatten()
        ce = (token_ce * weights).sum() / weights.sum()
        rows = torch.arange(hidden.shape[0])[:, None]
        latent = planner.latent(hidden[rows, batch.retouch_positions], batch.mask)
        pixel = F.l1_loss(planner.renderer(batch.before, latent), batch.after)
        loss = ce + options.pixel_weight * pixel + options.colour_weight * colour
        return loss, {"ce": ce.item(), "pixel": pixel.item(), "colour": colour.item()}

    if not stage2.done:
        stage2.run(examples, options.planner_batch, planner_loss, log)
    log_file.close()
    if not stage2.done:
        return None
    if options.tower == "train-time":
        planner.vision_tower = folded_tower(planner.vision_tower)
    planner.language_model.set_attn_implementation("eager")
    return write_model(out, raw, tokenizer, planner.eval(), reference, options, records, *stages, stage2)


def _init_model(path: str | None) -> Path | None:
    """The model folder a fine-tune starts from, checked for the files it needs."""
    if path is None:
        return None
    folder = Path(path)
    missing = [name for name in INIT_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(f"--init {path}: not a trained nano model folder (missing {', '.join(missing)})")
    return folder


def _reference_stage(reference: EncoderRenderer, examples: Sequence[Example], options: TrainOptions,
                     deadline: float, log: Callable[[dict], None]) -> Stage:
    """Stage 1, run (or resumed) until done or out of time."""
    stage = Stage("reference", reference, [{"params": reference.parameters(), "lr": options.lr}],
                  options.reference_steps, options, deadline)
    full_size_from = options.reference_steps - options.reference_full_size_steps

    def reference_loss(batch_examples: list[Example], step: int):
        batch = reference_batch(batch_examples, options.pixels, stage.rng)
        before, after = batch.ref_before, batch.ref_after
        if step >= full_size_from:  # the runtime's 512² views (bilinear, as reference_view squashes)
            size = (REFERENCE_SIZE, REFERENCE_SIZE)
            before = F.interpolate(before, size=size, mode="bilinear", align_corners=False)
            after = F.interpolate(after, size=size, mode="bilinear", align_corners=False)
        latent = reference.encode(before, after, batch.mask)
        pixel = F.l1_loss(reference.decoder(batch.before, latent), batch.after)
        return pixel, {"pixel": pixel.item()}

    if not stage.done:
        stage.run(examples, options.reference_batch, reference_loss, log)
    return stage


def write_model(
    out: Path, raw: dict, tokenizer: Tokenizer, planner: VeraPlanner, reference: EncoderRenderer,
    options: TrainOptions, records: list[dict], *stages: Stage,
) -> Path:
    """The trained model in the upstream layout (fp32 safetensors) plus the reference model."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.json", json.dumps(raw, indent=2) + "\n")
    tokenizer.save(out / "tokenizer.json")
    state = {to_upstream_key(k): v.detach().contiguous() for k, v in planner.state_dict().items() if k != TIED_KEY}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    reference_state = {k: v.detach().contiguous() for k, v in reference.state_dict().items()}
    save_file(reference_state, str(out / "encoder_renderer.safetensors"), metadata={"format": "pt"})
    modes: dict[str, int] = {}
    for r in records:
        modes[r["mode"]] = modes.get(r["mode"], 0) + 1
    summary = {
        "model": raw["vera_model_name"],
        "options": {k: v for k, v in asdict(options).items() if k not in ("out", "work")},
        "records": len(records), "modes": modes, "photos": len({r["photo"] for r in records}),
        "stages": {s.name: {"steps": s.step, "seconds": round(s.seconds, 1)} for s in stages},
        "planner_parameters": sum(p.numel() for p in planner.parameters()),
        "reference_parameters": sum(p.numel() for p in reference.parameters()),
    }
    write_text_atomic(out / "training.json", json.dumps(summary, indent=1) + "\n")
    return out
