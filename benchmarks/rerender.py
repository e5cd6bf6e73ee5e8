"""Re-render cost: `result.rerender(groups=..., strength=...)` on the built-in model, LUT and exact paths.

    python benchmarks/rerender.py [--megapixels 12] [--repeats 5] [--record]

One auto-mode retouch of the sample photo (resized to the given size), then the median wall time
of rerenders that switch one group off at strength 0.6, next to the retouch's own time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vera_mobile  # noqa: E402
from benchmarks.results import command, publish  # noqa: E402
from vera_mobile import RenderOptions  # noqa: E402
from vera_mobile.builtin import ASSETS  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=0.24, help="photo size (the sample photo is 0.24 MP)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    sample = Image.open(ASSETS / "sample_coffee.jpg")
    scale = (args.megapixels * 1e6 / (sample.width * sample.height)) ** 0.5
    photo = load_photo(sample.resize((round(sample.width * scale), round(sample.height * scale)), Image.BICUBIC))
    retoucher = vera_mobile.load("nano")
    rows = []
    for method, label in (("lut", "LUT (33³ bake + apply)"), ("exact", "exact (every pixel)")):
        result = retoucher.retouch(photo, render=RenderOptions(method))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result.rerender(groups=(True, False, True), strength=0.6)
            times.append(time.perf_counter() - start)
        rows.append(f"| {label} | {result.timings['total']:.2f} s ({result.num_tokens} tokens) | "
                    f"{statistics.median(times) * 1000:,.0f} ms |")
    width, height = photo.size
    load = os.getloadavg()[0]
    publish("\n".join([
        f"## Re-render without re-planning: VeraRetouch-Nano, {width}x{height} ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command(__file__)}` (`rerender(groups=(True, False, True), strength=0.6)` after one auto "
        f"retouch of the sample photo; median of {args.repeats})  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the end, torch fp32\n",
        "| render | retouch (planner + draw) | rerender |",
        "| --- | --- | --- |",
        *rows,
    ]), args.record)

if __name__ == "__main__":
    main()
