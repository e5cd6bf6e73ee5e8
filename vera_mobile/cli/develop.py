"""`vera-mobile develop`: apply a slider set (the 38 param-mode sliders) exactly, without a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import OutputSet
from ..lut import DEFAULT_LUT_SIZE, MAX_LUT_SIZE, MIN_LUT_SIZE, RENDER_METHODS
from .inputs import check_lut_size, check_photos, read_params
from .outputs import add_overwrite_option, check_outputs, output_paths, outputs_of, run_batch


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("develop", help="apply a slider set (the 38 param-mode sliders) exactly, without a model")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--params", required=True, help="JSON file of slider values on a ±100 scale")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>.png, and .cube in lut mode)")
    p.add_argument("--render", choices=RENDER_METHODS, default="lut",
                   help="lut: bake a 3D LUT and apply it, also writing DIR/<stem>.cube (default); exact: every pixel")
    p.add_argument("--lut-size", type=int, default=None,
                   help=f"LUT grid size S (S³ points, {MIN_LUT_SIZE}..{MAX_LUT_SIZE}; default {DEFAULT_LUT_SIZE})")
    add_overwrite_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Apply a slider set with the develop engine (no model): DIR/<stem>.png, and .cube in lut mode."""
    from ..develop import develop_photo

    check_lut_size(args.render, args.lut_size)
    params = read_params(args.params)
    inputs = [*args.photos, args.params]
    targets = output_paths(args.photos, Path(args.out))
    suffixes = (".cube",) if args.render == "lut" else ()
    check_outputs(targets, suffixes, inputs, args.overwrite)
    unreadable = check_photos(args.photos)

    def one(photo: str, target: Path) -> str:
        result = develop_photo(photo, params, render=args.render, lut_size=args.lut_size)
        with OutputSet(outputs_of(target, suffixes), inputs, args.overwrite) as outputs:
            result.save(outputs.staged(target), protect=inputs)
            if result.lut is not None:
                result.save_cube(outputs.staged(target.with_suffix(".cube")))
        return f"{photo} -> {target}"

    return run_batch(args.photos, targets, unreadable, one)
