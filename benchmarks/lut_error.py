"""How far the baked-LUT path is from exact rendering, on real photos, for several LUT sizes.

For each of --latents random latents the upstream-size renderer is baked into an S³ LUT for every
S in --sizes, each photo is mapped through the LUT (Pillow, 8-bit) and compared with the exact
8-bit render: CIEDE2000 (sRGB → XYZ → Lab, D65) and PSNR. The trained renderer weights are not
available here, so the renderer is a seeded random initialisation of `ConditionalMLPDecoder()`.

The exact reference costs ~7 µs per pixel on a 2-core CPU (about 10 s per latent for the
1.3 MP of all five photos, plus CIEDE2000 for every size), which would put 32 latents past ten
minutes. So it is computed on --samples pixels per photo (about a quarter of them by default),
drawn uniformly at random once and reused for every latent and size; the LUT is applied to the
whole photo (that is what is timed) and read at those pixels. A uniform sample estimates the mean
and the 99th percentile of the per-pixel error without bias.

    python benchmarks/lut_error.py --record
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore", message='"Matplotlib" related API')  # colour's import-time notice
import colour  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import command, record  # noqa: E402
from vera_mobile.lut import apply_lut, bake_lut  # noqa: E402
from vera_mobile.models.renderer import LATENT_DIM, ConditionalMLPDecoder  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.render import render_pixels  # noqa: E402
from vera_mobile.runtime.torch_backend import TorchRenderer  # noqa: E402

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"]
TARGET_MEAN_DE = 0.5


@dataclass
class SizeStats:
    """Everything measured for one LUT size, over all latents and photos."""

    delta_e: list[np.ndarray] = field(default_factory=list)
    squared_error: float = 0.0
    values: int = 0
    bake_s: list[float] = field(default_factory=list)
    apply_s: list[float] = field(default_factory=list)  # one whole photo, 8-bit
    apply_s_per_mp: list[float] = field(default_factory=list)

    def psnr(self) -> float:
        mse = self.squared_error / self.values
        return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def skimage_photos() -> list[tuple[str, np.ndarray]]:
    import skimage  # only for where its bundled CC0 / public-domain photos live

    data = Path(skimage.__file__).parent / "data"
    return [(name, load_photo(data / name).pixels) for name in PHOTOS]


def lab(pixels: np.ndarray) -> np.ndarray:
    """8-bit sRGB → CIE Lab (D65 white, as sRGB's own white point)."""
    xyz = colour.RGB_to_XYZ(pixels / 255.0, "sRGB", apply_cctf_decoding=True)
    return colour.XYZ_to_Lab(xyz, colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])


def measure(args: argparse.Namespace) -> tuple[dict[int, SizeStats], list[tuple[str, np.ndarray]], float]:
    """Run every latent × size × photo; also return the mean ΔE of the edit itself (exact vs input)."""
    photos = skimage_photos()
    rng = np.random.default_rng(args.seed)
    # Fixed pixel positions per photo; the exact renderer sees them as one (N, 1, 3) "photo".
    positions = [rng.choice(p.shape[0] * p.shape[1], size=min(args.samples, p.shape[0] * p.shape[1]), replace=False)
                 for _, p in photos]
    samples = np.concatenate([p.reshape(-1, 3)[i] for (_, p), i in zip(photos, positions)])[:, None, :]
    samples_lab = lab(samples[:, 0])

    torch.manual_seed(args.seed)
    backend = TorchRenderer(ConditionalMLPDecoder().eval())
    mask = np.ones(3, dtype=np.float32)
    stats = {size: SizeStats() for size in args.sizes}
    edit_de = []
    for index in range(args.latents):
        latent = rng.standard_normal(3 * LATENT_DIM).astype(np.float32)
        biases = backend.condition(latent, mask)
        exact = render_pixels(backend, samples, latent, mask)[:, 0]
        exact_lab = lab(exact)
        edit_de.append(colour.delta_E(samples_lab, exact_lab, method="CIE 2000"))
        for size in args.sizes:
            start = time.perf_counter()
            lut = bake_lut(backend, biases, size)
            stats[size].bake_s.append(time.perf_counter() - start)
            mapped = []
            for (_, pixels), picked in zip(photos, positions):
                start = time.perf_counter()
                out = apply_lut(pixels, lut)
                elapsed = time.perf_counter() - start
                stats[size].apply_s.append(elapsed)
                stats[size].apply_s_per_mp.append(elapsed / (pixels.shape[0] * pixels.shape[1] / 1e6))
                mapped.append(out.reshape(-1, 3)[picked])
            mapped = np.concatenate(mapped)
            stats[size].delta_e.append(colour.delta_E(exact_lab, lab(mapped), method="CIE 2000").astype(np.float32))
            stats[size].squared_error += float(np.sum((mapped.astype(np.float64) - exact) ** 2))
            stats[size].values += mapped.size
        print(f"latent {index + 1}/{args.latents} done", file=sys.stderr, flush=True)
    return stats, photos, float(np.mean(np.concatenate(edit_de)))


def table(stats: dict[int, SizeStats]) -> list[str]:
    rows = ["| S | grid points | mean ΔE2000 | p99 ΔE2000 | max ΔE2000 | PSNR (dB) | bake (median) | apply per photo, 8-bit (median) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size, s in stats.items():
        de = np.concatenate(s.delta_e)
        rows.append(
            f"| {size} | {size**3:,} | {de.mean():.3f} | {np.percentile(de, 99):.3f} | {de.max():.2f} | {s.psnr():.2f} "
            f"| {np.median(s.bake_s) * 1000:.0f} ms | {np.median(s.apply_s) * 1000:.1f} ms ({np.median(s.apply_s_per_mp) * 1000:.1f} ms/MP) |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[17, 25, 33, 49, 65])
    parser.add_argument("--latents", type=int, default=32)
    parser.add_argument("--samples", type=int, default=65_536, help="exact-reference pixels per photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()

    started = time.perf_counter()
    stats, photos, edit_de = measure(args)
    smallest = [size for size, s in stats.items() if np.concatenate(s.delta_e).mean() <= TARGET_MEAN_DE]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch fp32 ({torch.get_num_threads()} threads), Pillow Color3DLUT"
    lines = [
        "Renderer: random-init upstream-size `ConditionalMLPDecoder()` (seed "
        f"{args.seed}); the trained VeraRetouch renderer weights are not available, so real edits may be steeper.  ",
        f"Photos (skimage, full size): {', '.join(f'{n} {p.shape[1]}x{p.shape[0]}' for n, p in photos)}.  ",
        f"{args.latents} latents ~ N(0, 1) of length {3 * LATENT_DIM}, mask ones; exact reference on "
        f"{args.samples:,} random pixels per photo; LUT applied to the whole photo.  ",
        f"Size of the edit itself (exact render vs input): mean ΔE2000 {edit_de:.2f}.  ",
        f"Smallest S with mean ΔE2000 ≤ {TARGET_MEAN_DE}: {min(smallest) if smallest else 'none'}; "
        f"run time {time.perf_counter() - started:.0f} s.\n",
        *table(stats),
    ]
    print(f"Machine: {machine}\n" + "\n".join(lines))

    if args.record:
        header = [f"\n## Baked 3D LUT vs exact rendering ({time.strftime('%Y-%m-%d')})\n",
                  f"Command: `{command(__file__)}`  ", f"Machine: {machine}\n"]
        record("\n".join(header + lines))


if __name__ == "__main__":
    main()
