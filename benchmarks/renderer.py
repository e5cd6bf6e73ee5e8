"""Renderer side by side: upstream-style eager PyTorch vs our exact tiled path per backend vs the LUT path.

For each photo size (megapixels), in one run:
  - upstream-style eager: the photo as one [1,3,H,W] float tensor in [-1, 1], the reference
    ConditionalMLPDecoder in 262,144-pixel chunks (upstream's recommended `--chunk`), then clamp,
    ×255, round — what upstream's inference does, in fp32;
  - exact: our folded renderer streamed in fixed tiles (vera_mobile.render.render_pixels)
    on each backend (torch, executorch, onnx);
  - lut: condition + bake an S³ LUT, then apply it (Pillow Color3DLUT), reported separately.
Each method runs in its own fresh Python process (this script with --child), so its peak RSS is
its own; "over photo" subtracts the RSS the process had once the photo and model were loaded.

Renderer weights are a seeded random upstream-size renderer (the trained weights are not
available here); speed and memory do not depend on the weights.

    python benchmarks/renderer.py --sizes 1,12 --repeats 3 --record
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import command, record  # noqa: E402

SAMPLE = ROOT / "vera_mobile" / "assets" / "sample_coffee.jpg"
UPSTREAM_CHUNK = 262_144
EAGER = "upstream-style eager torch (262,144-px chunks)"


def make_photo(megapixels: float) -> np.ndarray:
    sample = Image.open(SAMPLE).convert("RGB")
    scale = (megapixels * 1e6 / (sample.width * sample.height)) ** 0.5
    size = (round(sample.width * scale), round(sample.height * scale))
    return np.array(sample.resize(size, Image.BICUBIC))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def exact_renderer(decoder, backend: str, workdir: Path):
    """The renderer on one runtime: eager torch, or a renderer-only bundle exported into `workdir`."""
    from vera_mobile.runtime.torch_backend import TorchRenderer

    if backend == "torch":
        return TorchRenderer(decoder)
    from vera_mobile.export.bundle import export_renderer_bundle
    from vera_mobile.runtime.retoucher import renderer_from_bundle

    return renderer_from_bundle(export_renderer_bundle(decoder, backend, workdir), "renderer", backend)


def run_child(method: str, megapixels: float, repeats: int, lut_size: int) -> dict:
    """Measure one method on one photo size in this process."""
    import torch

    from vera_mobile.lut import apply_lut, bake_lut
    from vera_mobile.models.renderer import ConditionalMLPDecoder
    from vera_mobile.render import render_pixels
    from vera_mobile.runtime.torch_backend import TorchRenderer

    torch.manual_seed(0)
    decoder = ConditionalMLPDecoder().eval()
    latent = np.random.default_rng(0).normal(size=2688).astype(np.float32)
    mask = np.ones(3, np.float32)
    pixels = make_photo(megapixels)
    result: dict = {"photo": f"{pixels.shape[1]}x{pixels.shape[0]} ({pixels.size / 3e6:.1f} MP)", "repeats": repeats}

    if method == "eager":
        def eager() -> np.ndarray:
            with torch.no_grad():
                image = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5) * 2
                out = decoder.render_image(image, torch.from_numpy(latent)[None], chunk=UPSTREAM_CHUNK)
                return (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

        result["baseline_mib"] = peak_rss_mib()
        result["median_s"] = timed(eager, repeats)
    elif method.startswith("exact:"):
        with tempfile.TemporaryDirectory(prefix="vera-renderer-") as workdir:
            backend = exact_renderer(decoder, method.split(":")[1], Path(workdir))
            render_pixels(backend, pixels[:8], latent, mask)  # warm up (first-call allocations)
            result["tile"] = backend.tile
            result["baseline_mib"] = peak_rss_mib()
            result["median_s"] = timed(lambda: render_pixels(backend, pixels, latent, mask), repeats)
    else:
        backend = TorchRenderer(decoder)
        result["baseline_mib"] = peak_rss_mib()
        result["bake_s"] = timed(lambda: bake_lut(backend, backend.condition(latent, mask), lut_size), repeats)
        lut = bake_lut(backend, backend.condition(latent, mask), lut_size)
        result["apply_s"] = timed(lambda: apply_lut(pixels, lut), repeats)
        result["median_s"] = result["bake_s"] + result["apply_s"]
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def measure(method: str, megapixels: float, repeats: int, lut_size: int) -> dict:
    command = [sys.executable, __file__, "--child", method, str(megapixels), str(repeats), str(lut_size)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{method} at {megapixels} MP failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    from vera_mobile.lut import DEFAULT_LUT_SIZE
    from vera_mobile.render import DEFAULT_TILE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,12,48", help="photo sizes in megapixels")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the LUT path (median reported)")
    parser.add_argument("--slow-repeats", type=int, default=1, help="repeats of per-pixel methods")
    parser.add_argument("--exact-max-mp", type=float, default=48.0, help="skip per-pixel methods above this size")
    parser.add_argument("--backends", default="torch,executorch,onnx")
    parser.add_argument("--lut-size", type=int, default=DEFAULT_LUT_SIZE)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "MP", "REPEATS", "LUT_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, megapixels, repeats, lut_size = args.child
        print(json.dumps(run_child(method, float(megapixels), int(repeats), int(lut_size))))
        return

    rows = []
    for megapixels in (float(s) for s in args.sizes.split(",")):
        methods: dict[str, tuple[str, int]] = {}
        if megapixels <= args.exact_max_mp:
            methods[EAGER] = ("eager", args.slow_repeats)
            for name in args.backends.split(","):
                tile = DEFAULT_TILE
                methods[f"exact, {name} ({tile:,}-px tiles)"] = (f"exact:{name}", args.slow_repeats)
        methods[f"lut {args.lut_size}³ (torch bake + Pillow apply)"] = ("lut", args.repeats)
        results = {name: measure(method, megapixels, repeats, args.lut_size) for name, (method, repeats) in methods.items()}
        eager = results.get(EAGER, {}).get("median_s")
        for name, r in results.items():
            speedup = f"{eager / r['median_s']:.0f}×" if eager else "—"
            split = f"bake {r['bake_s'] * 1000:.0f} ms + apply {r['apply_s'] * 1000:.0f} ms" if "bake_s" in r else ""
            over = r["peak_rss_mib"] - r["baseline_mib"]
            print(f"{r['photo']:22s} {name:50s} {r['median_s']:9.3f} s  ×{r['repeats']}  {speedup:>6s}  "
                  f"peak RSS {r['peak_rss_mib']:6.0f} MiB (+{over:.0f})  {split}", flush=True)
            rows.append(f"| {r['photo']} | {name} | {r['median_s']:.3f} | {r['repeats']} | {speedup} | "
                        f"{r['peak_rss_mib']:.0f} (+{over:.0f}) | {split} |")

    if args.record:
        lines = [
            f"\n## Renderer: upstream-style eager vs exact tiled backends vs LUT ({time.strftime('%Y-%m-%d')})\n",
            f"Command: `{command(__file__)}`  ",
            f"Machine: {platform.machine()}, 2 cores, CPU only; seeded random upstream-size renderer "
            "(weights do not affect speed); each method in its own process\n",
            "| photo | method | median s | repeats | speed-up vs upstream eager | peak RSS MiB (+ over photo & model) | LUT split |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
        record("\n".join(lines))


if __name__ == "__main__":
    main()
