"""`vera-mobile synthesize`: build an inverse-degradation data set (auto / style / param records) from the offline photos."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..training.recipe import CLEAN_SHARE, WB_JITTER


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("synthesize", help="build an inverse-degradation data set from the offline photos")
    p.add_argument("--photos", required=True,
                   help="photo manifest.json (python scripts/fetch_photos.py --out DIR), its folder, or a folder of photos")
    p.add_argument("--count", type=int, required=True, help="number of records")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (records.jsonl, images/, originals/, dataset.json)")
    p.add_argument("--split", choices=("train", "held_out", "all"), default="train",
                   help="which photos of the manifest to use (default train; held_out for evaluation)")
    p.add_argument("--size", type=int, default=512, help="working size: long side in pixels (default 512)")
    p.add_argument("--modes", default="auto,style,param", help="comma-separated record modes (weights 0.6/0.2/0.2)")
    p.add_argument("--fit-steps", type=int, default=60, help="Adam steps fitting each auto record's inverse (0: analytic)")
    p.add_argument("--clean-share", type=float, default=CLEAN_SHARE,
                   help=f"share of auto records left clean, whose right answer is 'no problem' (default {CLEAN_SHARE})")
    p.add_argument("--wb-jitter", type=float, default=WB_JITTER,
                   help="give each record's original a random white balance first, IncrementalTemperature and "
                        f"IncrementalTint within +-this (below the weakest cast; default {WB_JITTER:g}: none)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..data.photos import load_manifest
    from ..training.synthesis import CAST_RANGE, DEFAULT_MODE_WEIGHTS, synthesize, write_dataset

    if args.count < 1:
        raise InputError("--count must be at least 1")
    if args.size < 16:
        raise InputError("--size must be at least 16")
    if not 0 <= args.clean_share <= 1:
        raise InputError("--clean-share must be between 0 and 1")
    if not 0 <= args.wb_jitter < CAST_RANGE[0]:
        raise InputError(f"--wb-jitter must be at least 0 and below the weakest cast, {CAST_RANGE[0]}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in DEFAULT_MODE_WEIGHTS]
    if unknown or not modes:
        raise InputError(f"--modes: choose from {', '.join(DEFAULT_MODE_WEIGHTS)}, got {args.modes!r}")
    photos = load_manifest(args.photos, split=None if args.split == "all" else args.split)
    records = synthesize(photos, args.count, seed=args.seed, size=args.size,
                         modes={m: DEFAULT_MODE_WEIGHTS[m] for m in modes}, fit_steps=args.fit_steps,
                         clean_share=args.clean_share, wb_jitter=args.wb_jitter)
    info = {"photos": str(Path(args.photos).resolve()), "split": args.split, "photo_count": len(photos),
            "seed": args.seed, "count": args.count, "size": args.size, "mode_weights": modes,
            "fit_steps": args.fit_steps, "clean_share": args.clean_share, "wb_jitter": args.wb_jitter}
    out = write_dataset(records, args.out, total=args.count, info=info)
    print(f"wrote {args.count} records from {len(photos)} {args.split} photos to {out}")
    return 0
