"""`vera-mobile retouch`: retouch photos (auto, style, param or reference mode) with a built-in
model, a checkpoint directory or a bundle, writing DIR/<stem>.png and its companions per photo."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..builtin import DEFAULT_MODEL, resolve_model
from ..errors import InputError
from ..files import OutputSet, write_text_atomic
from ..prompts import MODES, Request, params_mask
from ..lut import DEFAULT_LUT_SIZE, MAX_LUT_SIZE, MIN_LUT_SIZE, RENDER_METHODS
from ..runtime.generation import SamplingOptions
from ..runtime.result import DEFAULT_RENDER_METHOD, RenderOptions, RetouchResult
from ..runtime.retoucher import BACKENDS
from ..targets import CHECKPOINT_DTYPES
from .inputs import check_lut_size, check_photos, read_params
from .outputs import add_overwrite_option, check_outputs, output_paths, outputs_of, run_batch


_SAMPLING = SamplingOptions()  # the defaults the runtime uses, shown and applied by the CLI


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("retouch", help="retouch photos (auto, style, param or reference mode)")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="built-in model name (nano, the default), a planner checkpoint directory, "
                        "or an encoder_renderer.pth for reference mode")
    p.add_argument("--mode", choices=MODES, default="auto")
    p.add_argument("--prompt", help="style mode: the text instruction")
    p.add_argument("--params", help="param mode: JSON file of slider values on a ±100 scale")
    p.add_argument("--ref-before", help="reference mode: the example photo before its edit")
    p.add_argument("--ref-after", help="reference mode: the example photo after its edit")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>.png, .txt, .json)")
    p.add_argument("--max-new-tokens", type=int, default=_SAMPLING.max_new_tokens)
    p.add_argument("--temperature", type=float, default=_SAMPLING.temperature,
                   help="0 = greedy (default, deterministic)")
    p.add_argument("--top-p", type=float, default=_SAMPLING.top_p)
    p.add_argument("--seed", type=int, default=None, help="sampling seed (with --temperature > 0)")
    p.add_argument("--dtype", choices=CHECKPOINT_DTYPES, default="float32")
    p.add_argument("--stream", action="store_true", help="print the reasoning as it is generated")
    p.add_argument("--render", choices=RENDER_METHODS, default=DEFAULT_RENDER_METHOD,
                   help="lut: bake a 3D LUT and apply it, also writing DIR/<stem>.cube; exact: every pixel "
                        f"(default {DEFAULT_RENDER_METHOD})")
    p.add_argument("--lut-size", type=int, default=None,
                   help=f"LUT grid size S (S³ points, {MIN_LUT_SIZE}..{MAX_LUT_SIZE}; default {DEFAULT_LUT_SIZE})")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="runtime of the whole pipeline: torch for a checkpoint or built-in model; executorch or onnx "
                        "for a bundle (default: torch for checkpoints, the first the bundle has for bundles)")
    p.add_argument("--resident", action="store_true",
                   help="a bundle's planner keeps both its parts (vision encoder, language model) loaded: faster "
                        "for many photos, more memory (default: one at a time; a checkpoint on torch always keeps both)")
    p.add_argument("--groups", default="1,1,1",
                   help="which edit groups to apply: lighting, global colour, specific colour as 0/1 flags (default 1,1,1)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="how much of the edit to apply, 0 (none) to 1 (all; default), blended with the photo's own colours")
    add_overwrite_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..runtime.retoucher import Retoucher

    # Everything the user gave is checked here, once, before a model is loaded.
    params = read_params(args.params)
    request = Request(mode=args.mode, prompt=args.prompt, params=params)
    sampling = SamplingOptions(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                               seed=args.seed)
    check_lut_size(args.render, args.lut_size)
    render = RenderOptions(args.render, args.lut_size or DEFAULT_LUT_SIZE, groups=_groups(args.groups),
                           strength=args.strength)
    reference = None
    if args.mode == "reference":
        if not (args.ref_before and args.ref_after):
            raise InputError("reference mode needs --ref-before and --ref-after (an example edit to imitate)")
        from ..photo_io import check_photo_file

        reference = (args.ref_before, args.ref_after)
        for example in reference:
            check_photo_file(example)
    elif args.mode == "param" and not any(params_mask(params)):
        warnings.warn("every slider is 0: the planner's renderer still applies its learned base look, so the "
                      "photo may change slightly; 'vera-mobile develop' applies an empty edit exactly", stacklevel=1)
    inputs = [*args.photos, *(p for p in (args.params, args.ref_before, args.ref_after) if p)]
    targets = output_paths(args.photos, Path(args.out))
    check_outputs(targets, retouch_suffixes(args.mode, args.render), inputs, args.overwrite)
    model = resolve_model(args.model)
    if not model.exists():
        raise InputError(f"--model {args.model}: no such built-in model, checkpoint folder or file")
    unreadable = check_photos(args.photos)

    retoucher = Retoucher.load(model, backend=args.backend, dtype=args.dtype, resident=args.resident)
    stream = (lambda piece: print(piece, end="", flush=True)) if args.stream else None

    def one(photo: str, target: Path) -> str:
        stages = StageProgress(skip=("reasoning",) if stream else ())
        try:
            result = retoucher.retouch(photo, request, reference=reference, sampling=sampling, render=render,
                                       on_token=stream, progress=stages)
        finally:
            stages.close()
            if stream:
                print()
        save_outputs(result, target, photo, inputs, args.overwrite)
        forced = f", forced {' '.join(result.forced_retouch_tokens)}" if result.forced_retouch_tokens else ""
        return f"{photo} -> {target} ({result.num_tokens} tokens, {result.timings['total']:.2f} s{forced})"

    return run_batch(args.photos, targets, unreadable, one, progress=len(targets) > 1 and not args.stream)


def _groups(text: str) -> tuple[bool, bool, bool]:
    """--groups: three 0/1 flags for lighting, global colour and specific colour, e.g. "1,0,1"."""
    flags = [f.strip() for f in text.split(",")]
    if len(flags) != 3 or any(f not in ("0", "1") for f in flags):
        raise InputError(f"--groups {text!r}: give three 0/1 flags (lighting, global colour, specific colour), e.g. 1,0,1")
    return tuple(f == "1" for f in flags)  # type: ignore[return-value]


class StageProgress:
    """Progress bars (stderr) for the stages of one photo: reasoning tokens, rendered pixels."""

    def __init__(self, skip: Sequence[str] = ()) -> None:
        self.skip, self.bars = tuple(skip), {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage in self.skip:
            return
        if stage not in self.bars:
            unit = "tok" if stage == "reasoning" else "px"
            # disable=False: our bars show even where third-party ones are hidden (quiet.py)
            self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=unit == "px", leave=False,
                                    disable=False)
        self.bars[stage].update(done - self.bars[stage].n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def retouch_suffixes(mode: str, render: str) -> tuple[str, ...]:
    """Companions of DIR/<stem>.png: the LUT in lut mode, the reasoning (not in reference mode), the summary."""
    return (*((".cube",) if render == "lut" else ()), *((".txt",) if mode != "reference" else ()), ".json")


def save_outputs(result: RetouchResult, target: Path, photo: str | Path, inputs: Sequence[str],
                 overwrite: bool) -> None:
    """`target` (.png), its `.cube` in lut mode, `.txt` (reasoning) and `.json` (plan, latent, timings), all or none."""
    suffixes = retouch_suffixes(result.mode, "lut" if result.lut is not None else "exact")
    with OutputSet(outputs_of(target, suffixes), inputs, overwrite) as outputs:
        result.save(outputs.staged(target), protect=inputs)
        if result.lut is not None:
            result.save_cube(outputs.staged(target.with_suffix(".cube")))
        if result.mode != "reference":
            write_text_atomic(outputs.staged(target.with_suffix(".txt")), result.text + "\n")
        summary = {"photo": str(photo), **result.summary()}
        write_text_atomic(outputs.staged(target.with_suffix(".json")),
                          json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
