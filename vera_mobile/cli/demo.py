"""`vera-mobile demo`, the main job: retouch the sample photo with the built-in model (PyTorch),
export the model to a bundle, and retouch the photo again from the bundle on the ExecuTorch runtime.

It uses the Python API (Retoucher, export_bundle) as an app developer would; the export toolchain
is imported inside `run`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..builtin import ASSETS, DEFAULT_MODEL
from ..runtime.result import DEFAULT_RENDER_METHOD
from ..targets import DEFAULT_PRECISION, EXPORT_TARGETS, PRECISIONS
from .outputs import add_overwrite_option, check_outputs
from .retouch import retouch_suffixes, save_outputs

SAMPLE_PHOTO = ASSETS / "sample_trier_dark.jpg"  # see assets/README.md


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="the main job: retouch the sample photo, export the model, retouch it from the bundle")
    p.add_argument("--out", default="vera-demo", help="output directory (default: ./vera-demo)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in model name or checkpoint directory (default: nano)")
    p.add_argument("--quant", choices=PRECISIONS, default=DEFAULT_PRECISION, help="bundle planner precision")
    p.add_argument("--max-new-tokens", type=int, default=512)
    add_overwrite_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..export.bundle import export_bundle

    from ..bundle import load_bundle
    from ..photo_io import load_photo
    from ..runtime.generation import SamplingOptions
    from ..runtime.retoucher import Retoucher

    out = Path(args.out)
    on_device_target = out / "executorch" / f"{SAMPLE_PHOTO.stem}.png"
    torch_target = out / f"{SAMPLE_PHOTO.stem}.png"
    check_outputs([on_device_target, torch_target], retouch_suffixes("auto", DEFAULT_RENDER_METHOD), [str(SAMPLE_PHOTO)],
                  args.overwrite)
    sampling = SamplingOptions(max_new_tokens=args.max_new_tokens)
    stream = lambda piece: print(piece, end="", flush=True)  # noqa: E731

    print(f"[1/3] {SAMPLE_PHOTO.name}, auto mode, model {args.model} (PyTorch); reasoning:", file=sys.stderr)
    result = Retoucher.load(args.model).retouch(SAMPLE_PHOTO, sampling=sampling, on_token=stream)
    print()
    save_outputs(result, torch_target, SAMPLE_PHOTO, [str(SAMPLE_PHOTO)], args.overwrite)
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
    save_outputs(result, target, SAMPLE_PHOTO, [str(SAMPLE_PHOTO)], args.overwrite)
    difference = np.abs(load_photo(target).pixels.astype(int) - load_photo(torch_target).pixels).max()
    print(f"PyTorch:    {out / SAMPLE_PHOTO.stem}.png (.cube, .json, .txt)")
    print(f"ExecuTorch: {target} ({result.num_tokens} tokens, {result.timings['total']:.2f} s); "
          f"reasoning {'identical to' if result.text == torch_text else 'differs from'} PyTorch's, "
          f"max pixel difference {difference}/255")
    print(f"bundle:     {bundle_dir} (ExecuTorch, ONNX, Core ML; vera-mobile inspect {bundle_dir})")
    return 0
