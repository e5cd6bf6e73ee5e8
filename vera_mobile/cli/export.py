"""`vera-mobile export`: export a checkpoint to a bundle of on-device artifacts with a manifest.

The export toolchain is imported inside `run`: loading the command line never loads it.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..builtin import DEFAULT_MODEL
from ..targets import (COREML_RECIPES, DEFAULT_PRECISION, EXPORT_TARGETS, INT8_FIDELITY_CLAIM, PLANNER_RECIPES,
                       PRECISIONS, UPSTREAM_APP_TARGET)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="export a checkpoint to a bundle of on-device artifacts with a manifest")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="built-in model name (nano, the default) or a planner checkpoint directory")
    p.add_argument("--targets", default=",".join(EXPORT_TARGETS),
                   help="comma-separated: " + ", ".join(EXPORT_TARGETS) + f" (the default), or also {UPSTREAM_APP_TARGET}: "
                        "the Core ML packages upstream's own iOS/macOS app loads (fastvithd, retouch_head, "
                        "retouch_decoder; recipe from --quant or --coreml-recipe)")
    p.add_argument("--reference", help="encoder_renderer.pth for reference mode (default: the one in --model, if any)")
    recipes = "; ".join(f"{q} = " + " / ".join(f"{target} {PLANNER_RECIPES[target][q]}" for target in PLANNER_RECIPES)
                        for q in PRECISIONS)
    p.add_argument("--quant", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help=f"planner weights (default {DEFAULT_PRECISION}; {INT8_FIDELITY_CLAIM}): {recipes}".replace("%", "%%"))
    p.add_argument("--coreml-recipe", choices=tuple(COREML_RECIPES),
                   help="Core ML planner recipe instead of the one --quant implies: "
                        + "; ".join(f"{name} = linears {layers['decoder_linears']}"
                                    + (f", lm_head {layers['lm_head']}" if layers["lm_head"] != layers["decoder_linears"] else "")
                                    for name, layers in COREML_RECIPES.items()))
    p.add_argument("--out", required=True, help="new bundle folder (must not exist or be empty)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..export.bundle import export_bundle

    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    start = time.perf_counter()
    report = lambda message: print(f"export [{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr)  # noqa: E731
    out = export_bundle(args.model, args.out, targets, reference=args.reference, quant=args.quant, progress=report,
                        coreml_recipe=args.coreml_recipe)
    print(f"wrote bundle {out} (targets: {', '.join(targets)})")
    return 0
