"""The planner's vision tower for training: cost and colour sensitivity per form, view size and width.

For each candidate (tower form x view size x stage widths) on real photos and their colour-cast
copies: parameters, image embeddings, milliseconds of one forward + backward pass over a batch
of `--batch` views (the planner stage's batch; median of `--repeats`), and how much the image
embeddings move when only the photo's colour changes (mean |embedding(cast copy) - embedding
(photo)| / std of all embeddings, over warm / cool / green / magenta copies; 0 means the decoder
cannot see the cast). Forms: `train-time` (BatchNorm + branches, folded afterwards), `folded`
(PyTorch's default init) and `folded+lsuv` (the first nano model's data-dependent init).

    python benchmarks/tower.py --record
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import command, publish  # noqa: E402

from vera_mobile.models.fastvit import FastViTConfig, FastViTHD  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.training import nano  # noqa: E402
from vera_mobile.training.synthesis import CAST_PROBES, develop_uint8  # noqa: E402
from vera_mobile.training.train_tower import TrainFastViT  # noqa: E402
from vera_mobile.training.vision_init import init_vision_tower  # noqa: E402
from vera_mobile.views import planner_view  # noqa: E402

WIDTHS = {"nano": tuple(nano.VISION_CONFIG["embed_dims"]), "wide": (24, 48, 96, 192, 384)}


def views_of(paths: list[Path], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of the photos [P, 3, S, S] and of their four cast copies [P, 4, 3, S, S]."""
    plain, casts = [], []
    for path in paths:
        photo = load_photo(path)
        plain.append(planner_view(photo, size))
        casts.append([planner_view(dataclasses.replace(photo, pixels=develop_uint8(photo.pixels, s)), size)
                      for s in CAST_PROBES.values()])
    return torch.from_numpy(np.stack(plain)).float(), torch.from_numpy(np.stack(casts)).float()


def build(form: str, config: FastViTConfig, calibration: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    if form == "train-time":
        return TrainFastViT(config).train()
    tower = FastViTHD(config)
    if form == "folded+lsuv":
        init_vision_tower(tower, calibration)
    return tower


def measure(form: str, size: int, widths: str, plain: torch.Tensor, casts: torch.Tensor, batch: int,
            repeats: int) -> dict:
    config = FastViTConfig.from_dict({**nano.VISION_CONFIG, "image_size": size, "embed_dims": list(WIDTHS[widths])})
    tower = build(form, config, plain)
    with torch.no_grad():
        base = tower(plain)
        moved = torch.stack([tower(casts[:, k]) for k in range(casts.shape[1])])
    sensitivity = float((moved - base).abs().mean() / torch.cat([base, moved.flatten(0, 1)]).std())
    inputs = plain[torch.arange(batch) % len(plain)]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        tower(inputs).square().mean().backward()
        seconds.append(time.perf_counter() - start)
        tower.zero_grad(set_to_none=True)
    return {"form": form, "size": size, "widths": widths, "embeddings": config.num_patches,
            "parameters": sum(p.numel() for p in FastViTHD(config).parameters()),
            "ms": 1000 * statistics.median(seconds) if seconds else None, "sensitivity": sensitivity}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", help="photos to measure on (default: scikit-image's coffee, chelsea, astronaut)")
    parser.add_argument("--sizes", default="192,256,320")
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (0: skip timing, e.g. on a busy machine)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.photos:
        paths = [Path(p) for p in args.photos]
    else:
        from vera_mobile.data.photos import skimage_data_dir

        paths = [skimage_data_dir() / n for n in ("coffee.png", "chelsea.png", "astronaut.png")]
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        plain, casts = views_of(paths, size)
        for widths in WIDTHS:
            for form in ("train-time", "folded", "folded+lsuv"):
                if widths != "nano" and form != "train-time":
                    continue  # the other forms are compared at the nano widths only
                rows.append(measure(form, size, widths, plain, casts, args.batch, args.repeats))
                print(rows[-1], file=sys.stderr)
    lines = ["| form | view px | widths | image embeddings | parameters (folded) | fwd+bwd ms / batch | colour sensitivity |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ms = "—" if r["ms"] is None else f"{r['ms']:.0f}"
        lines.append(f"| {r['form']} | {r['size']} | {r['widths']} {WIDTHS[r['widths']]} | {r['embeddings']} | "
                     f"{r['parameters']:,} | {ms} | {r['sensitivity']:.3f} |")
    markdown = "\n".join([
        "## Vision tower for training: cost and colour sensitivity",
        "",
        f"`{command(__file__)}` — {platform.machine()}, "
        f"{os.cpu_count()} cores ({args.threads} threads), {datetime.date.today().isoformat()}; batch {args.batch}, "
        f"median of {args.repeats}; {len(paths)} photos x 4 casts (`CAST_PROBES`: temperature / tint "
        f"±{CAST_PROBES['warm']['IncrementalTemperature']}).",
        "",
        *lines,
        "",
    ])
    publish(markdown, args.record)


if __name__ == "__main__":
    main()
