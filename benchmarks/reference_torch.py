"""Full-size reference (torch backend) timings: checkpoint load and one auto-mode retouch.

Writes a random-weight checkpoint with the real FastVLM-0.5B / VeraRetouch shapes in the upstream
layout (cached under --work), loads it, and retouches a photo upscaled to --megapixels in auto
mode. Random weights never stop on their own, so generation runs exactly --tokens new tokens;
stage times and decode speed are what this measures, not answer length.

    python benchmarks/reference_torch.py --megapixels 12 --tokens 128 --record
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import command, record  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.runtime.generation import SamplingOptions  # noqa: E402
from vera_mobile.runtime.result import RenderOptions  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402
from vera_mobile.testing.synthetic import write_synthetic_checkpoint  # noqa: E402

SAMPLE = ROOT / "vera_mobile" / "assets" / "sample_coffee.jpg"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/vera-bench", help="cache for the synthetic checkpoint and photo")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16", help="stored dtype of the synthetic checkpoint")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()

    work = Path(args.work)
    checkpoint = work / f"full-{args.dtype}"
    if not (checkpoint / "model.safetensors").is_file():
        start = time.perf_counter()
        write_synthetic_checkpoint(checkpoint, size="full", dtype=args.dtype)
        print(f"wrote full-size synthetic checkpoint in {time.perf_counter() - start:.1f} s")

    photo_path = work / f"photo_{args.megapixels:g}mp.jpg"
    if not photo_path.is_file():
        sample = Image.open(SAMPLE)
        scale = (args.megapixels * 1e6 / (sample.width * sample.height)) ** 0.5
        sample.resize((round(sample.width * scale), round(sample.height * scale)), Image.BICUBIC).save(
            photo_path, quality=92
        )

    start = time.perf_counter()
    retoucher = Retoucher.load(checkpoint)
    load_s = time.perf_counter() - start
    model = retoucher.planner.model
    n_params = sum(p.numel() for p in model.parameters())
    photo = load_photo(photo_path)
    exact = RenderOptions("exact")
    result = retoucher.retouch(photo, sampling=SamplingOptions(max_new_tokens=args.tokens), render=exact)
    t = result.timings
    rows = {
        "Retoucher.load (bf16 file → fp32)": f"{load_s:.2f} s ({n_params:,} parameters)",
        "photo": f"{photo.size[0]}x{photo.size[1]} ({photo.size[0] * photo.size[1] / 1e6:.1f} MP)",
        "vision tower + projector (1024²)": f"{t['vision']:.2f} s",
        f"prefill + decode of {result.num_tokens} tokens": f"{t['generate']:.2f} s ({result.num_tokens / t['generate']:.1f} tok/s)",
        "retouch head": f"{t['head'] * 1000:.1f} ms",
        f"renderer (exact, torch, {exact.tile:,}-px tiles)": f"{t['render']:.2f} s",
        "retouch total (excluding checkpoint load)": f"{t['total']:.2f} s",
        "peak RSS": f"{peak_rss_gib():.2f} GiB",
    }
    for key, value in rows.items():
        print(f"{key:45s} {value}")

    if args.record:
        lines = [
            f"\n## Reference torch backend, full-size synthetic checkpoint ({time.strftime('%Y-%m-%d')})\n",
            f"Command: `{command(__file__)}`  ",
            f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, 2 cores, torch fp32\n",
            "| stage | result |", "| --- | --- |",
            *(f"| {k} | {v} |" for k, v in rows.items()),
        ]
        record("\n".join(lines))


if __name__ == "__main__":
    main()
