"""Can the colour cast of a synthesized auto record be told from the photo at all?

Two measurements on the auto records of a training set and a held-out set:

1. **Shift against spread.** For each cast label, the mean colour shift the degradation applied
   (input minus original, in R−B "temperature" and G−(R+B)/2 "tint", on a 0..1 scale), next to
   how much the originals' own colour varies from photo to photo. A cast smaller than that
   spread cannot be read off a photo's colour alone.
2. **Linear probes.** A multinomial logistic regression trained on the training records and
   scored on the held-out ones, predicting the cast label (none, warm, cool, green, magenta)
   from (a) plain colour statistics of the planner view (channel means relative to their mean;
   5 / 50 / 95 % percentiles per channel), (b) the chromaticity statistics the training's
   auxiliary colour loss teaches (`vera_mobile.training.data.colour_statistics`) and (c) the
   model's pooled vision-tower features, next to always answering the most common label. If the
   tower's features do no better than the statistics, the tower is not what is missing; if
   nothing beats the majority answer, the records do not carry the cast in a form a small model
   can learn.

    python benchmarks/cast_probe.py --model nano --train data/train1 --heldout data/heldout
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from vera_mobile.builtin import resolve_model
from vera_mobile.models.checkpoint import load_planner
from vera_mobile.photo_io import load_photo, to_8bit
from vera_mobile.training.data import colour_statistics
from vera_mobile.training.synthesis import CASTS
from vera_mobile.views import planner_view

LABELS = ("none", *CASTS)


def auto_records(data: Path, limit: int) -> list[dict]:
    records = [json.loads(line) for line in (data / "records.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in records if r["mode"] == "auto"][:limit]


def colour_axes(pixels: np.ndarray) -> np.ndarray:
    """Mean (R−B, G−(R+B)/2) of 8-bit RGB pixels on a 0..1 scale."""
    r, g, b = (pixels[..., c].astype(np.float64).mean() / 255 for c in range(3))
    return np.array([r - b, g - (r + b) / 2])


def features(planner, data: Path, records: list[dict]) -> dict[str, np.ndarray]:
    tower, stats, chroma, labels, shifts, originals = [], [], [], [], [], []
    size = planner.config.vision.image_size
    for record in records:
        photo = load_photo(data / record["input"])
        view = planner_view(photo, size)
        with torch.no_grad():
            tower.append(planner.vision_tower(torch.from_numpy(view)[None])[0].mean(0).numpy())
            chroma.append(colour_statistics(torch.from_numpy(view)[None])[0].numpy())
        flat = view.reshape(3, -1)
        means = flat.mean(1)
        stats.append(np.concatenate([means / max(means.mean(), 1e-6), np.percentile(flat, [5, 50, 95], axis=1).ravel()]))
        labels.append(LABELS.index(record["directions"]["cast"] or "none"))
        original = to_8bit(load_photo(data / record["target"]).pixels)
        shifts.append(colour_axes(to_8bit(photo.pixels)) - colour_axes(original))
        originals.append(colour_axes(original))
    return {"tower": np.array(tower), "stats": np.array(stats), "chroma": np.array(chroma), "labels": np.array(labels),
            "shifts": np.array(shifts), "originals": np.array(originals)}


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> tuple[float, float]:
    """Train / held-out accuracy of an L2-regularised multinomial logistic regression (LBFGS)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x, xt = (torch.tensor((a - mean) / std, dtype=torch.float64) for a in (train_x, test_x))
    y = torch.tensor(train_y)
    weights = torch.zeros(x.shape[1], len(LABELS), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(LABELS), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights, bias], max_iter=500)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(x @ weights + bias, y) + 1e-2 * (weights**2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    with torch.no_grad():
        accuracy = lambda a, labels: float(((a @ weights + bias).argmax(1).numpy() == labels).mean())  # noqa: E731
        return accuracy(x, train_y), accuracy(xt, test_y)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nano")
    parser.add_argument("--train", required=True, type=Path, help="a synthesized training set")
    parser.add_argument("--heldout", required=True, type=Path, help="a synthesized held-out set")
    parser.add_argument("--limit", type=int, default=600, help="auto records per set, at most")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    planner, _ = load_planner(resolve_model(args.model))
    planner.eval()
    train = features(planner, args.train, auto_records(args.train, args.limit))
    held = features(planner, args.heldout, auto_records(args.heldout, args.limit))

    print("## Can the colour cast be told from the photo?\n")
    print(f"`python benchmarks/cast_probe.py {' '.join(sys.argv[1:])}` — {platform.machine()}, "
          f"{len(train['labels'])} training and {len(held['labels'])} held-out auto records\n")
    print("| cast | records | applied shift R−B | applied shift G−(R+B)/2 |")
    print("| --- | ---: | ---: | ---: |")
    both = {k: np.concatenate([train[k], held[k]]) for k in ("labels", "shifts", "originals")}
    for i, label in enumerate(LABELS):
        shift = both["shifts"][both["labels"] == i]
        print(f"| {label} | {len(shift)} | {shift[:, 0].mean():+.3f} ± {shift[:, 0].std():.3f} | "
              f"{shift[:, 1].mean():+.3f} ± {shift[:, 1].std():.3f} |")
    spread = both["originals"].std(0)
    print(f"| *originals, photo to photo* | {len(both['originals'])} | ± {spread[0]:.3f} | ± {spread[1]:.3f} |\n")
    majority = np.bincount(train["labels"], minlength=len(LABELS)).argmax()
    print("| cast predicted from | train accuracy | held-out accuracy |")
    print("| --- | ---: | ---: |")
    print(f"| always \"{LABELS[majority]}\" (most common) | {np.mean(train['labels'] == majority):.0%} | "
          f"{np.mean(held['labels'] == majority):.0%} |")
    for name, what in (("stats", "colour statistics of the view"),
                       ("chroma", "the training's colour statistics (`colour_statistics`)"),
                       ("tower", "pooled tower features")):
        fit, score = probe(train[name], train["labels"], held[name], held["labels"])
        print(f"| {what} ({train[name].shape[1]} numbers) | {fit:.0%} | {score:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
