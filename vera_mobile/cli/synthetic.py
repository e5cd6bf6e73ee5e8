"""`vera-mobile synthetic-checkpoint`: write a random-weight checkpoint in the upstream layout, for trying the SDK."""

from __future__ import annotations

import argparse

from ..targets import CHECKPOINT_DTYPES
from .outputs import add_overwrite_option, check_new_folder


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("synthetic-checkpoint", help="write a random-weight checkpoint in the upstream layout")
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--dtype", choices=CHECKPOINT_DTYPES, default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="new (or empty) checkpoint folder")
    add_overwrite_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..testing.synthetic import write_synthetic_checkpoint

    check_new_folder(args.out, args.overwrite)
    out = write_synthetic_checkpoint(args.out, size=args.size, dtype=args.dtype, seed=args.seed)
    print(f"wrote a random-weight {args.size} checkpoint in the upstream layout to {out}")
    return 0
