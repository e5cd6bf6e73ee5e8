"""Training examples from synthesized records (vera_mobile.training.synthesis), held in memory.

Each record becomes exactly what the runtime will feed the model: the planner view
(`views.planner_view`), the chat prompt of its mode (`prompts.Request`), the reasoning text
followed by `<|im_end|>`, the retouch mask, the reference views (`views.reference_view`) and
the photo's pixels before and after the edit (for the pixel loss through the renderer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .synthesis import read_records
from ..develop.colour import srgb_decode
from ..errors import InputError
from ..photo_io import load_photo
from ..prompts import IMAGE_TOKEN_INDEX, Request
from ..tokenizer import Tokenizer
from ..views import planner_view, reference_view

EOS_TOKEN = "<|im_end|>"


@dataclass
class Example:
    mode: str
    prompt_ids: list[int]  # with IMAGE_TOKEN_INDEX where the image embeddings go
    answer_ids: list[int]  # reasoning, retouch tokens, <|im_end|>
    mask: tuple[float, float, float]
    view: np.ndarray | None  # planner view, uint8 [3, S, S]; None in param mode
    before: np.ndarray  # uint8 [N, 3] pixels the renderer gets
    after: np.ndarray  # uint8 [N, 3] pixels it should produce
    reference: tuple[np.ndarray, np.ndarray]  # reference views (BGR) of before/after, uint8 [3, R, R]


def request_of(record: dict) -> Request:
    """The request a user would have made for this record."""
    mode = record["mode"]
    return Request(mode, prompt=record.get("prompt"), params=record["sliders"] if mode == "param" else None)


def corpus(records: Sequence[dict]) -> list[str]:
    """Texts the tokenizer is trained on: every prompt and every reasoning text."""
    return [text for r in records for text in (request_of(r).full_prompt(), r["text"])]


def _uint8(unit: np.ndarray) -> np.ndarray:
    return np.round(unit * 255).astype(np.uint8)


def load_examples(
    records: Sequence[dict], tokenizer: Tokenizer, image_size: int, reference_size: int, progress: bool = True
) -> list[Example]:
    """Build every example once (photos decoded and views computed up front)."""
    from tqdm import tqdm

    eos = tokenizer.single_token_id(EOS_TOKEN)
    examples = []
    for record in tqdm(records, desc="loading examples", unit="rec", disable=not progress):
        request = request_of(record)
        before, after = load_photo(record["input"]), load_photo(record["target"])
        if before.pixels.shape != after.pixels.shape:
            raise InputError(f"record {record['id']}: input and target sizes differ")
        examples.append(Example(
            mode=request.mode,
            prompt_ids=tokenizer.encode_prompt(request.full_prompt()),
            answer_ids=[*tokenizer.encode(record["text"]), eos],
            mask=request.mask(),
            view=_uint8(planner_view(before, image_size)) if request.uses_image_tokens else None,
            before=before.pixels.reshape(-1, 3),
            after=after.pixels.reshape(-1, 3),
            reference=(_uint8(reference_view(before, reference_size) * 0.5 + 0.5),
                       _uint8(reference_view(after, reference_size) * 0.5 + 0.5)),
        ))
    return examples


def read_datasets(directories: Sequence[str | Path], split: str = "train") -> list[dict]:
    """Records of one split from one or more synthesized data sets."""
    records = [r for d in directories for r in read_records(d) if r["split"] == split]
    if not records:
        raise InputError(f"no {split!r} records in {', '.join(map(str, directories))}")
    return records


@dataclass
class PlannerBatch:
    ids: torch.Tensor  # [B, T] token ids; IMAGE_TOKEN_INDEX slots and padding hold 0
    image_slots: torch.Tensor  # [B, T] bool: where image embeddings replace token embeddings
    views: torch.Tensor  # [V, 3, S, S] float in [0, 1], one per example with an image
    labels: torch.Tensor  # [B, T] next-token targets, -100 where no loss applies
    label_weights: torch.Tensor  # [B, T] cross-entropy weight of each target (0 where no loss applies)
    retouch_positions: torch.Tensor  # [B, 3] positions whose hidden states feed the retouch head
    mask: torch.Tensor  # [B, 3]
    before: torch.Tensor  # [B, P, 3] in [-1, 1]
    after: torch.Tensor  # [B, P, 3] in [0, 1]


def pixel_sample(example: Example, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    index = rng.integers(0, len(example.before), size=count)
    return example.before[index], example.after[index]


def answer_weights(answer_ids: Sequence[int], problem_sections: Sequence[tuple[int, int]], weight: float) -> list[float]:
    """1 per answer token, `weight` for tokens inside a problem section (start marker to end marker)."""
    starts = {start for start, _ in problem_sections}
    ends = {end for _, end in problem_sections}
    weights, inside = [], False
    for token in answer_ids:
        inside = inside or token in starts
        weights.append(weight if inside else 1.0)
        inside = inside and token not in ends
    return weights


def planner_batch(
    examples: Sequence[Example], retouch_ids: Sequence[int], num_patches: int, pixels: int, rng: np.random.Generator,
    problem_sections: Sequence[tuple[int, int]] = (), diagnosis_weight: float = 1.0,
) -> PlannerBatch:
    """Right-padded batch (causal attention never looks right, so padding needs no attention mask).

    Tokens of the problem sections (the diagnosis, the part of the text that depends on the photo)
    weigh `diagnosis_weight` in the cross-entropy; all other answer tokens weigh 1.
    """
    sequences, image_rows, label_rows, weight_rows, positions = [], [], [], [], []
    for ex in examples:
        ids: list[int] = []
        slots: list[bool] = []
        for token in ex.prompt_ids:
            if token == IMAGE_TOKEN_INDEX:
                ids += [0] * num_patches
                slots += [True] * num_patches
            else:
                ids.append(token)
                slots.append(False)
        start = len(ids)
        ids += ex.answer_ids
        slots += [False] * len(ex.answer_ids)
        labels = [-100] * len(ids)
        labels[start - 1 : len(ids) - 1] = ex.answer_ids  # position t predicts token t + 1
        weights = [0.0] * len(ids)
        weights[start - 1 : len(ids) - 1] = answer_weights(ex.answer_ids, problem_sections, diagnosis_weight)
        # The state *before* each retouch token is the one whose logits produce it (generation.py).
        found = [ids.index(token, start) - 1 for token in retouch_ids]
        sequences.append(ids), image_rows.append(slots), label_rows.append(labels), positions.append(found)
        weight_rows.append(weights)
    length = max(map(len, sequences))
    pad = lambda rows, value: torch.tensor([row + [value] * (length - len(row)) for row in rows])  # noqa: E731
    samples = [pixel_sample(ex, pixels, rng) for ex in examples]
    views = [ex.view for ex in examples if ex.view is not None]
    return PlannerBatch(
        ids=pad(sequences, 0),
        image_slots=pad(image_rows, False),
        views=torch.from_numpy(np.stack(views)).float() / 255 if views else torch.zeros(0),
        labels=pad(label_rows, -100),
        label_weights=pad(weight_rows, 0.0),
        retouch_positions=torch.tensor(positions),
        mask=torch.tensor([ex.mask for ex in examples], dtype=torch.float32),
        before=torch.from_numpy(np.stack([b for b, _ in samples])).float() / 127.5 - 1,
        after=torch.from_numpy(np.stack([a for _, a in samples])).float() / 255,
    )


def augment_views(views: torch.Tensor, rng: np.random.Generator, min_area: float) -> torch.Tensor:
    """[V, 3, S, S] views -> each a random crop (area share in [min_area, 1], aspect 3:4 to 4:3),
    resized back to S x S, mirrored left-right half the time.

    The problems a record names are global (a cast, an exposure), so they hold for any crop.
    """
    size = views.shape[-1]
    out = []
    for view in views:
        area = rng.uniform(min_area, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        width = min(size, round(size * np.sqrt(area * aspect)))
        height = min(size, round(size * np.sqrt(area / aspect)))
        left, top = rng.integers(0, size - width + 1), rng.integers(0, size - height + 1)
        crop = view[None, :, top : top + height, left : left + width]
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                                               antialias=True)[0].clamp(0, 1)
        out.append(crop.flip(-1) if rng.random() < 0.5 else crop)
    return torch.stack(out)


@dataclass
class ReferenceBatch:
    ref_before: torch.Tensor  # [B, 3, R, R] in [-1, 1], BGR
    ref_after: torch.Tensor
    mask: torch.Tensor
    before: torch.Tensor  # [B, P, 3] in [-1, 1]
    after: torch.Tensor  # [B, P, 3] in [0, 1]


def reference_batch(examples: Sequence[Example], pixels: int, rng: np.random.Generator) -> ReferenceBatch:
    """The edit shown by each example's before/after views, to be reproduced on its own pixels."""
    samples = [pixel_sample(ex, pixels, rng) for ex in examples]
    view = lambda i: torch.from_numpy(np.stack([ex.reference[i] for ex in examples])).float() / 127.5 - 1  # noqa: E731
    return ReferenceBatch(
        ref_before=view(0), ref_after=view(1),
        mask=torch.tensor([ex.mask for ex in examples], dtype=torch.float32),
        before=torch.from_numpy(np.stack([b for b, _ in samples])).float() / 127.5 - 1,
        after=torch.from_numpy(np.stack([a for _, a in samples])).float() / 255,
    )


COLOUR_STATISTICS = 8  # numbers per view from colour_statistics
_DARK = 0.01  # linear luminance below which a pixel (e.g. the view's black padding) carries no colour


def colour_statistics(views: torch.Tensor) -> torch.Tensor:
    """What a photo's white balance reads from: [B, 3, S, S] sRGB views in [0, 1] -> [B, 8].

    Chromaticity in linear light ((R - G) / (R + G + B), (B - G) / (R + G + B): bounded, and
    independent of exposure) averaged four ways over the lit pixels: plain mean, spread, weighted
    towards the brightest pixels (white patch) and towards the least colourful ones (grey
    surfaces). The target of the training's auxiliary colour loss: computed from the view itself,
    so the tower cannot learn it by recognising the photo.
    """
    linear = srgb_decode(views.clamp(0, 1)).flatten(2)  # [B, 3, N]
    luminance = linear.mean(1)  # [B, N]
    total = linear.sum(1) + 1e-6
    chroma = torch.stack([linear[:, 0] - linear[:, 1], linear[:, 2] - linear[:, 1]], 1) / total[:, None]  # [B, 2, N]
    lit = (luminance > _DARK).float() + 1e-6

    def weighted_mean(weights: torch.Tensor) -> torch.Tensor:
        weights = weights * lit
        return (chroma * weights[:, None]).sum(-1) / weights.sum(-1, keepdim=True)

    mean = weighted_mean(torch.ones_like(luminance))
    spread = ((chroma - mean[..., None]) ** 2 * lit[:, None]).sum(-1).div(lit.sum(-1, keepdim=True)).sqrt()
    bright = weighted_mean(luminance**4)
    grey = weighted_mean(torch.exp(-chroma.abs().sum(1) / 0.05))
    return torch.cat([mean, spread, bright, grey], 1)
