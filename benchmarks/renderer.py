"""Renderer side by side: upstream-style eager PyTorch vs our exact tiled path per backend vs the LUT path.

For each photo size (megapixels), in one run:
  - upstream-style eager: the photo as one [1,3,H,W] float tensor in [-1, 1], the reference
    ConditionalMLPDecoder in 262,144-pixel chunks (upstream's recommended `--chunk`), then clamp,
    ×255, round — what upstream's inference does, in fp32;
  - exact: our folded renderer streamed in fixed tiles (vera_mobile.runtime.render.render_pixels)
    on each backend (torch, executorch, onnx);
  - lut: condition + bake an S³ LUT, then apply it (Pillow Color3DLUT), reported separately.
Each method runs in a forked child so its peak RSS is its own; the photo buffers are made before
the fork, so "peak RSS" minus the baseline is the method's working set on top of them.

Renderer weights are a seeded random upstream-size renderer (the trained weights are not
available here); speed and memory do not depend on the weights.

    python benchmarks/renderer.py --sizes 1,12 --repeats 3 --record
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vera_mobile.lut import DEFAULT_LUT_SIZE, apply_lut, bake_lut  # noqa: E402
from vera_mobile.models.renderer import ConditionalMLPDecoder  # noqa: E402
from vera_mobile.runtime.render import DEFAULT_TILE, render_pixels  # noqa: E402
from vera_mobile.runtime.retoucher import renderer_for  # noqa: E402

SAMPLE = ROOT / "vera_mobile" / "assets" / "sample_coffee.jpg"
UPSTREAM_CHUNK = 262_144


def make_photo(megapixels: float) -> np.ndarray:
    sample = Image.open(SAMPLE).convert("RGB")
    scale = (megapixels * 1e6 / (sample.width * sample.height)) ** 0.5
    size = (round(sample.width * scale), round(sample.height * scale))
    return np.asarray(sample.resize(size, Image.BICUBIC))


def upstream_eager(decoder: ConditionalMLPDecoder, pixels: np.ndarray, latent: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        image = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5) * 2
        out = decoder.render_image(image, torch.from_numpy(latent)[None], chunk=UPSTREAM_CHUNK)
        return (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(job: Callable[[], dict], queue: mp.Queue) -> None:
    result = job()
    result["peak_rss_mib"] = peak_rss_mib()
    queue.put(result)


def run_isolated(job: Callable[[], dict]) -> dict:
    """Run `job` in a forked child; returns its result dict plus the child's peak RSS."""
    queue: mp.Queue = mp.get_context("fork").Queue()
    process = mp.get_context("fork").Process(target=_child, args=(job, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def timed(fn: Callable[[], object], repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,12,48", help="photo sizes in megapixels")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of fast methods (median reported)")
    parser.add_argument("--slow-repeats", type=int, default=1, help="repeats of per-pixel methods")
    parser.add_argument("--exact-max-mp", type=float, default=48.0, help="skip per-pixel methods above this size")
    parser.add_argument("--backends", default="torch,executorch,onnx")
    parser.add_argument("--lut-size", type=int, default=DEFAULT_LUT_SIZE)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()

    torch.manual_seed(0)
    decoder = ConditionalMLPDecoder().eval()
    latent = np.random.default_rng(0).normal(size=2688).astype(np.float32)
    mask = np.ones(3, np.float32)
    backends = {name: renderer_for(decoder, name) for name in args.backends.split(",")}
    torch_backend = backends.get("torch") or renderer_for(decoder, "torch")

    rows = []
    for megapixels in (float(s) for s in args.sizes.split(",")):
        pixels = make_photo(megapixels)
        label = f"{pixels.shape[1]}x{pixels.shape[0]} ({pixels.shape[0] * pixels.shape[1] / 1e6:.1f} MP)"
        baseline = peak_rss_mib()
        jobs: dict[str, Callable[[], dict]] = {}
        if megapixels <= args.exact_max_mp:
            jobs["upstream-style eager torch (262,144-px chunks)"] = lambda: timed(
                lambda: upstream_eager(decoder, pixels, latent), args.slow_repeats)
            for name, backend in backends.items():
                jobs[f"exact, {name} ({backend.tile or DEFAULT_TILE}-px tiles)"] = lambda b=backend: timed(
                    lambda: render_pixels(b, pixels, latent, mask), args.slow_repeats)

        def lut_job() -> dict:
            bake = timed(lambda: bake_lut(torch_backend, torch_backend.condition(latent, mask), args.lut_size), args.repeats)
            lut = bake_lut(torch_backend, torch_backend.condition(latent, mask), args.lut_size)
            apply = timed(lambda: apply_lut(pixels, lut), args.repeats)
            return {"median_s": bake["median_s"] + apply["median_s"], "bake_s": bake["median_s"],
                    "apply_s": apply["median_s"], "repeats": args.repeats}

        jobs[f"lut {args.lut_size}³ (torch bake + Pillow apply)"] = lut_job
        results = {}
        for name, job in jobs.items():
            results[name] = run_isolated(job)
            r = results[name]
            extra = f" (bake {r['bake_s']:.3f} s + apply {r['apply_s']:.3f} s)" if "bake_s" in r else ""
            print(f"{label:24s} {name:52s} {r['median_s']:9.3f} s{extra}  peak RSS {r['peak_rss_mib']:7.0f} MiB "
                  f"(+{r['peak_rss_mib'] - baseline:.0f} over photo buffers)", flush=True)
        eager = next((r["median_s"] for n, r in results.items() if n.startswith("upstream")), None)
        for name, r in results.items():
            speedup = f"{eager / r['median_s']:.0f}×" if eager else "—"
            extra = f"bake {r['bake_s'] * 1000:.0f} ms + apply {r['apply_s'] * 1000:.0f} ms" if "bake_s" in r else ""
            rows.append(f"| {label} | {name} | {r['median_s']:.3f} | {r['repeats']} | {speedup} | "
                        f"{r['peak_rss_mib']:.0f} (+{r['peak_rss_mib'] - baseline:.0f}) | {extra} |")

    if args.record:
        command = "python benchmarks/renderer.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        lines = [
            f"\n## Renderer: upstream-style eager vs exact tiled backends vs LUT ({time.strftime('%Y-%m-%d')})\n",
            f"Command: `{command}`  ",
            f"Machine: {platform.machine()}, 2 cores, {torch.get_num_threads()} torch threads; "
            "seeded random upstream-size renderer (weights do not affect speed)\n",
            "| photo | method | median s | repeats | vs upstream eager | peak RSS MiB (over photo) | LUT split |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
        with open(ROOT / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
