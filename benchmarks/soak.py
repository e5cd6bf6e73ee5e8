"""Soak test: many consecutive retouches in one process, resident memory sampled; is there a leak?

    nice -n 10 python benchmarks/soak.py --iterations 1000 --every 10

Retouches the bundled sample photo (loaded from its file each time, auto mode, default render) with
the built-in nano model, and samples the process's resident set size (VmRSS) every `--every`
retouches. The slope of a least-squares line through the samples after the warm-up (the first
`--warmup` retouches, where caches and allocator pools fill) is the growth per retouch; a leak
shows up as a slope that stays positive however long the run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "vera_mobile" / "assets" / "sample_coffee.jpg"


def rss_mib() -> float:
    """This process's resident set size in MiB, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (this script needs Linux)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10, help="sample RSS every N retouches")
    parser.add_argument("--warmup", type=int, default=100, help="retouches left out of the slope fit")
    parser.add_argument("--model", default="nano")
    parser.add_argument("--json", help="also write the samples and the fit to this file")
    args = parser.parse_args()

    from vera_mobile.runtime.retoucher import Retoucher

    retoucher = Retoucher.from_pretrained(args.model)
    samples: list[tuple[int, float]] = [(0, rss_mib())]
    start = time.perf_counter()
    for i in range(1, args.iterations + 1):
        retoucher.retouch(SAMPLE_PHOTO)
        if i % args.every == 0 or i == args.iterations:
            samples.append((i, rss_mib()))
            if i % (args.every * 10) == 0:  # a progress line now and then: a long run shows it is alive
                print(f"{i}/{args.iterations} retouches, RSS {samples[-1][1]:.1f} MiB, "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start

    fitted = [(i, rss) for i, rss in samples if i >= args.warmup]
    slope, _ = np.polyfit([i for i, _ in fitted], [rss for _, rss in fitted], 1)
    report = {
        "model": args.model, "iterations": args.iterations, "seconds": round(seconds, 1),
        "rss_start_mib": round(samples[0][1], 1), "rss_after_warmup_mib": round(fitted[0][1], 1),
        "rss_end_mib": round(samples[-1][1], 1), "rss_max_mib": round(max(r for _, r in samples), 1),
        "slope_kib_per_retouch": round(slope * 1024, 3),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "samples": samples}, indent=2) + "\n")


if __name__ == "__main__":
    main()
