"""`vera-mobile inspect`: describe a bundle, a checkpoint directory or an encoder_renderer.pth (from headers)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("inspect", help="describe a bundle, a checkpoint directory or an encoder_renderer.pth")
    p.add_argument("path")
    return p


def run(args: argparse.Namespace) -> int:
    from ..describe import describe

    print(json.dumps(describe(Path(args.path)), indent=2, ensure_ascii=False))
    return 0
