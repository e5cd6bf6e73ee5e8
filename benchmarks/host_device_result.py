"""Benchmark a bundle on this machine and write a device result, the same file the phone apps write.

    python benchmarks/host_device_result.py BUNDLE --out results/host.json
    python benchmarks/device_table.py results/*.json

Same fixed inputs as the apps' benchmark mode (android_demo/core: Benchmark.kt; ios_demo: Benchmark.swift):
the golden pixels for the vision encoder, the auto-mode prompt with greedy decoding of
DECODE_TOKENS tokens, the renderer's golden latent for the LUT bake and a 4000 x 3000 pattern
photo for the LUT application. The planner and renderer run on ExecuTorch (`Retoucher.from_bundle`).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vera_mobile import __version__  # noqa: E402
from vera_mobile.files import write_text_atomic  # noqa: E402
from vera_mobile.lut import apply_lut, bake_lut  # noqa: E402
from vera_mobile.prompts import Request  # noqa: E402
from vera_mobile.runtime.generation import SamplingOptions, generate, prompt_embeddings  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402
from vera_mobile.runtime.selfcheck import golden_pixels  # noqa: E402

DECODE_TOKENS = 64
APPLY_SIZE = (3000, 4000)  # height, width: 12 MP
TOOL = "vera-mobile host_device_result.py"


class TimedPlanner:
    """Wraps a planner backend and times its calls; the first decode after reset is the prefill."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.prefilled = inner, False
        self.prefill_s = self.decode_s = 0.0
        self.prefill_tokens = self.decode_tokens = 0

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        return self.inner.encode_image(pixels)

    def embed(self, ids: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        rows = self.inner.embed(ids)
        if self.prefilled:
            self.decode_s += time.perf_counter() - start
        return rows

    def reset(self) -> None:
        self.inner.reset()
        self.prefilled = False

    def decode(self, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        out = self.inner.decode(embeds)
        elapsed = time.perf_counter() - start
        if self.prefilled:
            self.decode_s, self.decode_tokens = self.decode_s + elapsed, self.decode_tokens + len(embeds)
        else:
            self.prefill_s, self.prefill_tokens, self.prefilled = elapsed, len(embeds), True
        return out

    def latent(self, hidden3: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.inner.latent(hidden3, mask)


def pattern_photo(height: int, width: int) -> np.ndarray:
    """The apps' 12 MP benchmark photo: r = 7x, g = 13y, b = x + y, each mod 256."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(7 * x) & 255, (13 * y) & 255, (x + y) & 255], axis=-1).astype(np.uint8)


def device() -> dict[str, str]:
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if models:
            name = f"{models[0]} ({len(models)} CPUs)"
    return {"name": name, "os": platform.platform(), "kind": "host"}


def run(bundle: Path) -> dict[str, Any]:
    retoucher = Retoucher.load(bundle, backend="executorch")
    manifest = retoucher.manifest
    if retoucher.planner is None:
        raise SystemExit(f"error: {bundle} has no ExecuTorch planner")
    planner = TimedPlanner(retoucher.planner)
    pixels = golden_pixels(manifest["model"]["image_size"])
    planner.encode_image(pixels)  # warm-up: first-call allocations are not the steady state
    start = time.perf_counter()
    features = planner.encode_image(pixels)
    vision_ms = (time.perf_counter() - start) * 1e3

    ids = retoucher.tokenizer.encode_prompt(Request("auto").full_prompt())
    embeds = prompt_embeddings(planner, ids, features)
    generation = generate(planner, retoucher.tokenizer, embeds, retoucher.eos_ids,
                          SamplingOptions(max_new_tokens=DECODE_TOKENS))

    golden = next(g for g in manifest["golden"] if g["component"] == "renderer")
    latent = np.asarray(golden["condition"]["latent"], np.float32)
    mask = np.asarray(golden["condition"]["mask"], np.float32)
    start = time.perf_counter()
    lut = bake_lut(retoucher.renderer, retoucher.renderer.condition(latent, mask), manifest["renderer"]["lut_size"])
    bake_ms = (time.perf_counter() - start) * 1e3
    photo = pattern_photo(*APPLY_SIZE)
    start = time.perf_counter()
    apply_lut(photo, lut)
    apply_ms = (time.perf_counter() - start) * 1e3

    return {
        "schema_version": 1,
        "tool": {"name": TOOL, "version": __version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": device(),
        "backend": "executorch-xnnpack (python runtime)",
        "recipe": manifest["quantization"]["planner"].get("executorch", "unknown"),
        "metrics": {
            "vision_ms": vision_ms,
            "prefill_tokens_per_s": planner.prefill_tokens / planner.prefill_s,
            "decode_tokens_per_s": planner.decode_tokens / planner.decode_s if planner.decode_s else None,
            "lut_bake_ms": bake_ms,
            "lut_apply_12mp_ms": apply_ms,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "details": {"prefill_tokens": planner.prefill_tokens, "decode_tokens": planner.decode_tokens,
                    "generated": len(generation.token_ids), "lut_size": manifest["renderer"]["lut_size"],
                    "source_sha256": manifest["source"]["sha256"], "lut_apply": "Pillow Color3DLUT (CPU)"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="a bundle with the executorch target")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result JSON")
    args = parser.parse_args()
    result = run(args.bundle)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
