"""`vera-mobile` command line: retouch, develop, prompt, export, check, inspect, synthetic-checkpoint, demo.

Errors the user can fix print one clear line to stderr and exit with status 2. Every option and
input file is checked before a model loads. Outputs never replace an input, a folder, or (without
--overwrite) an existing file; a photo's files (.png, .cube, .txt, .json) appear together or not
at all, and one photo's failure does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .builtin import DEFAULT_MODEL, resolve_model
from .errors import InputError, VeraError
from .files import OutputSet, check_target, write_text_atomic
from .jsonfile import read_json_object
from .prompts import MODES, PLANNER_MODES, Request, params_mask, validate_params
from .runtime.result import DEFAULT_RENDER_METHOD as DEFAULT_RENDER, RENDER_METHODS as RENDER_MODES
from .runtime.retoucher import BACKENDS
from .targets import (CHECKPOINT_DTYPES, COREML_RECIPES, DEFAULT_PRECISION, EXPORT_TARGETS, INT8_FIDELITY_CLAIM,
                      PLANNER_RECIPES, PRECISIONS, UPSTREAM_APP_TARGET)

SAMPLE_PHOTO = Path(__file__).parent / "assets" / "sample_coffee.jpg"


def _read_params(path: str | None) -> dict | None:
    if path is None:
        return None
    data = read_json_object(path, InputError, "params file")
    validate_params(data)
    return data


def output_stem(photo: str) -> str:
    """Upstream's rule, the basename up to its first dot; a hidden file keeps its leading dots."""
    name = Path(photo).name
    rest = name.lstrip(".")
    return name[: len(name) - len(rest)] + rest.split(".")[0] if rest.split(".")[0] else name


def _output_paths(photos: Sequence[str], out_dir: Path) -> list[Path]:
    """`DIR/<stem>.png` per photo; refuses two photos that would write the same name."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"--out {out_dir}: {folder} is a file, not a folder")
            break
    stems: dict[str, str] = {}
    paths = []
    for photo in photos:
        stem = output_stem(photo)
        if stem in stems:
            raise InputError(f"{photo} and {stems[stem]} would both write {stem}.png; retouch them in separate runs")
        stems[stem] = photo
        paths.append(out_dir / f"{stem}.png")
    return paths


def _outputs_of(target: Path, suffixes: Sequence[str]) -> list[Path]:
    """Every file one photo writes: the photo itself, then its companions."""
    return [target, *(target.with_suffix(suffix) for suffix in suffixes)]


def _check_outputs(targets: Sequence[Path], suffixes: Sequence[str], inputs: Sequence[str], overwrite: bool) -> None:
    """Apply the output policy (files.check_target) to every file of every photo, before any work."""
    for target in targets:
        for path in _outputs_of(target, suffixes):
            check_target(path, inputs, overwrite)


def _check_photos(photos: Sequence[str]) -> list[str]:
    """The photos whose header cannot be read, each reported on one line; the rest go ahead."""
    from .photo_io import check_photo_file

    if len(photos) == 1:
        check_photo_file(photos[0])  # its error is the run's error
        return []
    bad = []
    for photo in photos:
        try:
            check_photo_file(photo)
        except VeraError as err:
            print(f"vera-mobile: error: {one_line(err)}", file=sys.stderr)
            bad.append(photo)
    if len(bad) == len(photos):
        raise InputError(f"none of the {len(photos)} photos could be read")
    return bad


def _check_lut_size(render: str, lut_size: int | None) -> None:
    from .lut import MAX_LUT_SIZE, MIN_LUT_SIZE

    if lut_size is None:
        return
    if render != "lut":
        raise InputError("--lut-size applies to --render lut only")
    if not MIN_LUT_SIZE <= lut_size <= MAX_LUT_SIZE:
        raise InputError(f"--lut-size: the LUT size must be {MIN_LUT_SIZE}..{MAX_LUT_SIZE}, got {lut_size}")


def _check_new_folder(out: str, overwrite: bool) -> None:
    """A command that writes a folder of files writes a new or empty one (or, with --overwrite, replaces files in it)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"--out {path} is not empty; choose a new folder or pass --overwrite")


def one_line(err: BaseException) -> str:
    """An error message on one line (some libraries' messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__


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
            self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=unit == "px", leave=False)
        self.bars[stage].update(done - self.bars[stage].n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def cmd_prompt(args: argparse.Namespace) -> int:
    request = Request(mode=args.mode, prompt=args.prompt, params=_read_params(args.params))
    sys.stdout.write(request.full_prompt() + "\n")
    if args.model:
        from .prompts import IMAGE_TOKEN_INDEX
        from .tokenizer import Tokenizer

        ids = Tokenizer.from_dir(resolve_model(args.model)).encode_prompt(request.full_prompt())
        print(f"token ids ({len(ids)}; {IMAGE_TOKEN_INDEX} marks where the image embeddings go):")
        print(json.dumps(ids))
    return 0


def _retouch_suffixes(mode: str, render: str) -> tuple[str, ...]:
    """Companions of DIR/<stem>.png: the LUT in lut mode, the reasoning (not in reference mode), the summary."""
    return (*((".cube",) if render == "lut" else ()), *((".txt",) if mode != "reference" else ()), ".json")


def _save_outputs(result: "RetouchResult", target: Path, photo: str | Path, inputs: Sequence[str],  # noqa: F821
                  overwrite: bool) -> None:
    """`target` (.png), its `.cube` in lut mode, `.txt` (reasoning) and `.json` (plan, latent, timings), all or none."""
    suffixes = _retouch_suffixes(result.mode, "lut" if result.lut is not None else "exact")
    with OutputSet(_outputs_of(target, suffixes), inputs, overwrite) as outputs:
        result.save(outputs.staged(target), protect=inputs)
        if result.lut is not None:
            result.save_cube(outputs.staged(target.with_suffix(".cube")))
        if result.mode != "reference":
            write_text_atomic(outputs.staged(target.with_suffix(".txt")), result.text + "\n")
        summary = {"photo": str(photo), **result.summary()}
        write_text_atomic(outputs.staged(target.with_suffix(".json")),
                          json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def _run_batch(photos: Sequence[str], targets: Sequence[Path], skip: Sequence[str], one: Callable[[str, Path], str],
               progress: bool = False) -> int:
    """Run `one(photo, target)` per photo; a failure (memory included) is reported and the others go on."""
    from tqdm import tqdm

    failed = list(skip)
    work = [(p, t) for p, t in zip(photos, targets) if p not in skip]
    for photo, target in tqdm(work, desc="photos", unit="photo", disable=not progress):
        try:
            report = one(photo, target)
        except (VeraError, OSError) as err:  # nothing is written for this photo
            failed.append(photo)
            tqdm.write(f"vera-mobile: error: {photo}: {one_line(err)}", file=sys.stderr)
            continue
        except MemoryError:
            failed.append(photo)
            tqdm.write(f"vera-mobile: error: {photo}: ran out of memory", file=sys.stderr)
            continue
        tqdm.write(report)
    if failed and len(photos) > 1:
        print(f"vera-mobile: {len(failed)} of {len(photos)} photo(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 2 if failed else 0


def _groups(text: str) -> tuple[bool, bool, bool]:
    """--groups: three 0/1 flags for lighting, global colour and specific colour, e.g. "1,0,1"."""
    flags = [f.strip() for f in text.split(",")]
    if len(flags) != 3 or any(f not in ("0", "1") for f in flags):
        raise InputError(f"--groups {text!r}: give three 0/1 flags (lighting, global colour, specific colour), e.g. 1,0,1")
    return tuple(f == "1" for f in flags)  # type: ignore[return-value]


def cmd_retouch(args: argparse.Namespace) -> int:
    from .lut import DEFAULT_LUT_SIZE
    from .runtime.generation import SamplingOptions, check_sampling
    from .runtime.result import RenderOptions
    from .runtime.retoucher import Retoucher

    # Everything the user gave is checked here, once, before a model is loaded.
    params = _read_params(args.params)
    request = Request(mode=args.mode, prompt=args.prompt, params=params)
    check_sampling(args.max_new_tokens, args.temperature, args.top_p, args.seed)
    sampling = SamplingOptions(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                               seed=args.seed)
    _check_lut_size(args.render, args.lut_size)
    render = RenderOptions(args.render, args.lut_size or DEFAULT_LUT_SIZE, groups=_groups(args.groups),
                           strength=args.strength)
    reference = None
    if args.mode == "reference":
        if not (args.ref_before and args.ref_after):
            raise InputError("reference mode needs --ref-before and --ref-after (an example edit to imitate)")
        from .photo_io import check_photo_file

        reference = (args.ref_before, args.ref_after)
        for example in reference:
            check_photo_file(example)
    elif args.mode == "param" and not any(params_mask(params)):
        warnings.warn("every slider is 0: the planner's renderer still applies its learned base look, so the "
                      "photo may change slightly; 'vera-mobile develop' applies an empty edit exactly", stacklevel=1)
    inputs = [*args.photos, *(p for p in (args.params, args.ref_before, args.ref_after) if p)]
    targets = _output_paths(args.photos, Path(args.out))
    _check_outputs(targets, _retouch_suffixes(args.mode, args.render), inputs, args.overwrite)
    model = resolve_model(args.model)
    if not model.exists():
        raise InputError(f"--model {args.model}: no such built-in model, checkpoint folder or file")
    unreadable = _check_photos(args.photos)

    retoucher = Retoucher.load(model, backend=args.backend, dtype=args.dtype)
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
        _save_outputs(result, target, photo, inputs, args.overwrite)
        forced = f", forced {' '.join(result.forced_retouch_tokens)}" if result.forced_retouch_tokens else ""
        return f"{photo} -> {target} ({result.num_tokens} tokens, {result.timings['total']:.2f} s{forced})"

    return _run_batch(args.photos, targets, unreadable, one, progress=len(targets) > 1 and not args.stream)


def cmd_develop(args: argparse.Namespace) -> int:
    """Apply a slider set with the develop engine (no model): DIR/<stem>.png, and .cube in lut mode."""
    from .develop import develop_photo

    _check_lut_size(args.render, args.lut_size)
    params = _read_params(args.params)
    inputs = [*args.photos, args.params]
    targets = _output_paths(args.photos, Path(args.out))
    suffixes = (".cube",) if args.render == "lut" else ()
    _check_outputs(targets, suffixes, inputs, args.overwrite)
    unreadable = _check_photos(args.photos)

    def one(photo: str, target: Path) -> str:
        result = develop_photo(photo, params, render=args.render, lut_size=args.lut_size)
        with OutputSet(_outputs_of(target, suffixes), inputs, args.overwrite) as outputs:
            result.save(outputs.staged(target), protect=inputs)
            if result.lut is not None:
                result.save_cube(outputs.staged(target.with_suffix(".cube")))
        return f"{photo} -> {target}"

    return _run_batch(args.photos, targets, unreadable, one)


def cmd_export(args: argparse.Namespace) -> int:
    from .export.bundle import export_bundle

    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    start = time.perf_counter()
    report = lambda message: print(f"export [{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr)  # noqa: E731
    out = export_bundle(args.model, args.out, targets, reference=args.reference, quant=args.quant, progress=report,
                        coreml_recipe=args.coreml_recipe)
    print(f"wrote bundle {out} (targets: {', '.join(targets)})")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .describe import describe

    print(json.dumps(describe(Path(args.path)), indent=2, ensure_ascii=False))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .runtime.selfcheck import check_bundle

    report = check_bundle(args.bundle, backend=args.backend)
    for component, problems in report.items():
        print(f"{component} ({args.backend}): " + ("reproduces its golden vectors" if not problems else "FAILED"))
        for problem in problems:
            print(f"  {problem}")
    return 1 if any(report.values()) else 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    from .testing.synthetic import write_synthetic_checkpoint

    _check_new_folder(args.out, args.overwrite)
    out = write_synthetic_checkpoint(args.out, size=args.size, dtype=args.dtype, seed=args.seed)
    print(f"wrote a random-weight {args.size} checkpoint in the upstream layout to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: retouch the sample photo with the built-in model, export it, retouch again on-device style."""
    import numpy as np

    from .export.bundle import export_bundle

    from .bundle import load_bundle
    from .photo_io import load_photo
    from .runtime.generation import SamplingOptions
    from .runtime.retoucher import Retoucher

    out = Path(args.out)
    on_device_target = out / "executorch" / f"{SAMPLE_PHOTO.stem}.png"
    _check_outputs([on_device_target], _retouch_suffixes("auto", DEFAULT_RENDER), [str(SAMPLE_PHOTO)], args.overwrite)
    torch_target = out / f"{SAMPLE_PHOTO.stem}.png"
    _check_outputs([torch_target], _retouch_suffixes("auto", DEFAULT_RENDER), [str(SAMPLE_PHOTO)], args.overwrite)
    sampling = SamplingOptions(max_new_tokens=args.max_new_tokens)
    stream = lambda piece: print(piece, end="", flush=True)  # noqa: E731

    print(f"[1/3] {SAMPLE_PHOTO.name}, auto mode, model {args.model} (PyTorch); reasoning:", file=sys.stderr)
    result = Retoucher.load(args.model).retouch(SAMPLE_PHOTO, sampling=sampling, on_token=stream)
    print()
    _save_outputs(result, torch_target, SAMPLE_PHOTO, [str(SAMPLE_PHOTO)], args.overwrite)
    torch_text = result.text

    bundle_dir = out / "bundle"
    if (bundle_dir / "manifest.json").is_file():
        load_bundle(bundle_dir)  # sha256-checked: a damaged bundle is an error, not silently reused
        print(f"[2/3] reusing the bundle in {bundle_dir} (delete it to export again)", file=sys.stderr)
    else:
        print(f"[2/3] exporting {args.model} to ExecuTorch, ONNX and Core ML ({args.quant}) -> {bundle_dir}",
              file=sys.stderr)
        start = time.perf_counter()
        report = lambda message: print(f"  export [{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr)  # noqa: E731
        export_bundle(args.model, bundle_dir, EXPORT_TARGETS, quant=args.quant, progress=report)

    print("[3/3] the same photo from the bundle on the ExecuTorch runtime; reasoning:", file=sys.stderr)
    result = Retoucher.load(bundle_dir, backend="executorch").retouch(SAMPLE_PHOTO, sampling=sampling, on_token=stream)
    print()
    target = on_device_target
    _save_outputs(result, target, SAMPLE_PHOTO, [str(SAMPLE_PHOTO)], args.overwrite)
    difference = np.abs(load_photo(target).pixels.astype(int) - load_photo(torch_target).pixels).max()
    print(f"PyTorch:    {out / SAMPLE_PHOTO.stem}.png (.cube, .json, .txt)")
    print(f"ExecuTorch: {target} ({result.num_tokens} tokens, {result.timings['total']:.2f} s); "
          f"reasoning {'identical to' if result.text == torch_text else 'differs from'} PyTorch's, "
          f"max pixel difference {difference}/255")
    print(f"bundle:     {bundle_dir} (ExecuTorch, ONNX, Core ML; vera-mobile inspect {bundle_dir})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training.train import TrainOptions, train

    chosen = {name: getattr(args, name) for name in
              ("reference_steps", "planner_steps", "planner_batch", "diagnosis_weight", "threads")
              if getattr(args, name) is not None}
    _check_new_folder(args.out, args.overwrite)
    options = TrainOptions(data=list(args.data), out=args.out, work=args.work, seed=args.seed, **chosen)
    out = train(options)
    if out is None:
        print(f"stopped at the time limit with progress saved in {args.work}; run the same command again to continue")
        return 0
    print(f"wrote {out} (config.json, tokenizer.json, model.safetensors, encoder_renderer.safetensors, training.json)")
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    """Build an inverse-degradation data set (auto / style / param records) from the offline photos."""
    from .data.photos import load_manifest
    from .training.synthesis import DEFAULT_MODE_WEIGHTS, synthesize, write_dataset

    if args.count < 1:
        raise InputError("--count must be at least 1")
    if args.size < 16:
        raise InputError("--size must be at least 16")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in DEFAULT_MODE_WEIGHTS]
    if unknown or not modes:
        raise InputError(f"--modes: choose from {', '.join(DEFAULT_MODE_WEIGHTS)}, got {args.modes!r}")
    photos = load_manifest(args.photos, split=None if args.split == "all" else args.split)
    records = synthesize(photos, args.count, seed=args.seed, size=args.size,
                         modes={m: DEFAULT_MODE_WEIGHTS[m] for m in modes}, fit_steps=args.fit_steps)
    info = {"photos": str(Path(args.photos).resolve()), "split": args.split, "photo_count": len(photos),
            "seed": args.seed, "count": args.count, "size": args.size, "mode_weights": modes,
            "fit_steps": args.fit_steps}
    out = write_dataset(records, args.out, total=args.count, info=info)
    print(f"wrote {args.count} records from {len(photos)} {args.split} photos to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vera-mobile", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("retouch", help="retouch photos (auto, style, param or reference mode)")
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
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default, deterministic)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None, help="sampling seed (with --temperature > 0)")
    p.add_argument("--dtype", choices=CHECKPOINT_DTYPES, default="float32")
    p.add_argument("--stream", action="store_true", help="print the reasoning as it is generated")
    p.add_argument("--render", choices=RENDER_MODES, default=DEFAULT_RENDER,
                   help=f"lut: bake a 3D LUT and apply it, also writing DIR/<stem>.cube; exact: every pixel (default {DEFAULT_RENDER})")
    p.add_argument("--lut-size", type=int, default=None, help="LUT grid size S (S³ points, 2..65; default from measurements)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="runtime of the whole pipeline: torch for a checkpoint or built-in model; executorch or onnx "
                        "for a bundle (default: torch for checkpoints, the first the bundle has for bundles)")
    p.add_argument("--groups", default="1,1,1",
                   help="which edit groups to apply: lighting, global colour, specific colour as 0/1 flags (default 1,1,1)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="how much of the edit to apply, 0 (none) to 1 (all; default), blended with the photo's own colours")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (inputs are never replaced)")
    p.set_defaults(func=cmd_retouch)

    p = sub.add_parser("develop", help="apply a slider set (the 38 param-mode sliders) exactly, without a model")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--params", required=True, help="JSON file of slider values on a ±100 scale")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>.png, and .cube in lut mode)")
    p.add_argument("--render", choices=("lut", "exact"), default="lut",
                   help="lut: bake a 3D LUT and apply it, also writing DIR/<stem>.cube (default); exact: every pixel")
    p.add_argument("--lut-size", type=int, default=None, help="LUT grid size S (S³ points, 2..65; default 33)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (inputs are never replaced)")
    p.set_defaults(func=cmd_develop)

    p = sub.add_parser("prompt", help="print the exact chat-formatted prompt the planner sees")
    p.add_argument("--mode", choices=PLANNER_MODES, default="auto")
    p.add_argument("--prompt", help="style mode: the text instruction")
    p.add_argument("--params", help="param mode: JSON file of slider values")
    p.add_argument("--model", help="also print the token ids this model's tokenizer gives the prompt "
                                   "(built-in name such as nano, or a checkpoint directory)")
    p.set_defaults(func=cmd_prompt)

    p = sub.add_parser("export", help="export a checkpoint to a bundle of on-device artifacts with a manifest")
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
                        + "; ".join(f"{name} = {what}" for name, what in COREML_RECIPES.items()))
    p.add_argument("--out", required=True, help="new bundle folder (must not exist or be empty)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("check", help="replay a bundle's golden vectors on a runtime (on-device self-check, here)")
    p.add_argument("bundle")
    p.add_argument("--backend", choices=("executorch", "onnx"), default="executorch")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("inspect", help="describe a bundle, a checkpoint directory or an encoder_renderer.pth")
    p.add_argument("path")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("synthetic-checkpoint", help="write a random-weight checkpoint in the upstream layout")
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--dtype", choices=CHECKPOINT_DTYPES, default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="new (or empty) checkpoint folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (inputs are never replaced)")
    p.set_defaults(func=cmd_synthetic)

    p = sub.add_parser("demo", help="the main job: retouch the sample photo, export the model, retouch it from the bundle")
    p.add_argument("--out", default="vera-demo", help="output directory (default: ./vera-demo)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in model name or checkpoint directory (default: nano)")
    p.add_argument("--quant", choices=PRECISIONS, default=DEFAULT_PRECISION, help="bundle planner precision")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (inputs are never replaced)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synthesize", help="build an inverse-degradation data set from the offline photos")
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
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("train", help="train VeraRetouch-Nano on synthesized data (CPU; resumable)")
    p.add_argument("--data", required=True, nargs="+", help="synthesized data set folder(s) (vera-mobile synthesize)")
    p.add_argument("--out", required=True, help="where the trained checkpoint directory is written")
    p.add_argument("--work", required=True, help="checkpoints and loss log; rerun with the same --work to resume")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference-steps", type=int, help="stage 1, reference encoder + renderer (default 4000)")
    p.add_argument("--planner-steps", type=int, help="stage 2, planner end to end (default 12000)")
    p.add_argument("--planner-batch", type=int, help="examples per planner step (default 12)")
    p.add_argument("--diagnosis-weight", type=float,
                   help="cross-entropy weight of the problem sections' tokens (default 4; 1 = plain cross-entropy)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (inputs are never replaced)")
    p.set_defaults(func=cmd_train)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"vera-mobile: warning: {one_line(message)}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return args.func(args)
    except VeraError as err:
        print(f"vera-mobile: error: {one_line(err)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("vera-mobile: error: ran out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vera-mobile: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line unless VERA_DEBUG asks for the traceback
        if os.environ.get("VERA_DEBUG"):
            raise
        print(f"vera-mobile: internal error: {type(err).__name__}: {one_line(err)} "
              "(set VERA_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
