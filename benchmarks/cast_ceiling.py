"""How far can a photo's own colour statistics name its colour cast? A learned classic baseline.

The reasoning target asks the planner to name the applied cast (warm / cool / green / magenta) in
80 % of the held-out records that have one, and to say "no problem" on 70 % of clean photos. A
record's cast is relative to the photo it was applied to, whose own white balance the model never
sees, so part of the answer is not in the pixels. This script measures how much is: classifiers
that see only global colour statistics of the record's input photo, trained on the training
records and scored on the held-out records, side by side with the same counts on the training
records (a gap there is memorisation of the training photos).

Features: `statistics` is `training.data.colour_statistics` (the 8 numbers the nano tower's
auxiliary loss asks for); `histogram` adds OKLab a/b percentiles and a 6 x 6 a/b histogram.
Classifiers: multinomial logistic regression and gradient-boosted trees (scikit-learn). The last
table trades "cast right" against "no problem on clean photos" by demanding a margin for "none".

    pip install -e ".[analysis]"
    python benchmarks/cast_ceiling.py --train data/train1 data/train2 --data data/heldout
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vera_mobile.develop.colour import linear_to_oklab, srgb_decode  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.training.data import colour_statistics  # noqa: E402
from vera_mobile.training.synthesis import read_records  # noqa: E402

NONE = "none"


def features(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(statistics [8], histogram features [8 + 10 + 36]) of one photo."""
    photo = load_photo(path)
    pixels = torch.from_numpy(photo.pixels.astype(np.float32) / (2**photo.bit_depth - 1))  # [H, W, 3] in [0, 1]
    statistics = colour_statistics(pixels.permute(2, 0, 1)[None])[0].numpy()
    lab = linear_to_oklab(srgb_decode(pixels.reshape(-1, 3).clamp(0, 1))).numpy()
    a, b = lab[:, 1], lab[:, 2]
    percentiles = np.concatenate([np.percentile(channel, [5, 25, 50, 75, 95]) for channel in (a, b)])
    histogram, _, _ = np.histogram2d(a, b, bins=6, range=[[-0.15, 0.15], [-0.15, 0.15]])
    return statistics, np.concatenate([statistics, percentiles, histogram.ravel() / len(a)])


def load(directories: list[Path]) -> dict[str, np.ndarray]:
    """Auto records' features, cast labels and whether the record is clean (nothing applied)."""
    rows = [row for directory in directories for row in read_records(directory) if row["mode"] == "auto"]
    pairs = [features(row["input"]) for row in rows]
    return {"statistics": np.stack([p[0] for p in pairs]), "histogram": np.stack([p[1] for p in pairs]),
            "cast": np.array([row["directions"]["cast"] or NONE for row in rows]),
            "clean": np.array([not row["kinds"] for row in rows])}


def scores(predicted: np.ndarray, data: dict[str, np.ndarray]) -> str:
    cast = data["cast"] != NONE
    right = np.mean(predicted[cast] == data["cast"][cast])
    none_uncast = np.mean(predicted[~cast] == NONE)
    none_clean = np.mean(predicted[data["clean"]] == NONE)
    return f"{right:6.0%} | {none_uncast:6.0%} | {none_clean:6.0%}"


def with_margin(probabilities: np.ndarray, classes: np.ndarray, margin: float) -> np.ndarray:
    """Say a cast only where its probability beats "none"'s by `margin` (in log-odds)."""
    none = list(classes).index(NONE)
    logp = np.log(probabilities + 1e-9)
    best_cast = np.where(np.arange(len(classes)) == none, -np.inf, logp).argmax(1)
    says_cast = logp[np.arange(len(logp)), best_cast] - logp[:, none] > margin
    return np.where(says_cast, classes[best_cast], NONE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", type=Path, required=True, help="training data sets (vera-mobile synthesize)")
    parser.add_argument("--data", type=Path, required=True, help="held-out data set")
    args = parser.parse_args()
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise SystemExit("cast_ceiling.py needs scikit-learn: pip install -e \".[analysis]\"") from None

    train, held_out = load(args.train), load([args.data])
    print(f"{len(train['cast'])} training and {len(held_out['cast'])} held-out auto records "
          f"({np.sum(held_out['cast'] != NONE)} with a cast, {held_out['clean'].sum()} clean)\n")
    print("| features | classifier | records | cast right | 'none' when uncast | 'none' when clean |")
    print("|---|---|---|---|---|---|")
    kept = None
    for feature in ("statistics", "histogram"):
        for name, classifier in (
            ("logistic regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))),
            ("gradient-boosted trees", HistGradientBoostingClassifier(max_iter=300, random_state=0)),
        ):
            classifier.fit(train[feature], train["cast"])
            for split, data in (("training", train), ("held-out", held_out)):
                print(f"| {feature} | {name} | {split} | {scores(classifier.predict(data[feature]), data)} |")
            kept = classifier
    probabilities = kept.predict_proba(held_out["histogram"])
    print("\nGradient-boosted trees on histogram features, held-out, a cast named only past a margin over 'none':\n")
    print("| margin (log-odds) | cast right | 'none' when uncast | 'none' when clean |")
    print("|---|---|---|---|")
    for margin in (0, 1, 2, 3, 4, 6):
        print(f"| {margin} | {scores(with_margin(probabilities, kept.classes_, margin), held_out)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
