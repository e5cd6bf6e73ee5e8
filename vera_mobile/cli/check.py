"""`vera-mobile check`: replay a bundle's golden vectors on a runtime (what an app's on-device self-check does)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("check",
                              help="replay a bundle's golden vectors on a runtime (on-device self-check, here)")
    p.add_argument("bundle")
    p.add_argument("--backend", choices=("executorch", "onnx"), default="executorch")
    return p


def run(args: argparse.Namespace) -> int:
    """Exit 1 when a component does not reproduce its golden vectors."""
    from ..runtime.selfcheck import check_bundle

    report = check_bundle(args.bundle, backend=args.backend)
    for component, problems in report.items():
        print(f"{component} ({args.backend}): " + ("reproduces its golden vectors" if not problems else "FAILED"))
        for problem in problems:
            print(f"  {problem}")
    return 1 if any(report.values()) else 0
