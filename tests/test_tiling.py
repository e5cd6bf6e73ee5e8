"""Tiled streaming: the renderer's working set stays fixed however large the photo (up to 48 MP)."""

import json
import subprocess
import sys

import pytest

# Runs in a fresh interpreter so ru_maxrss belongs to this render alone.
_MEASURE = r"""
import json, resource, sys
import numpy as np, torch
from vera_mobile.models.renderer import ConditionalMLPDecoder
from vera_mobile.render import render_pixels
from vera_mobile.runtime.torch_backend import TorchRenderer

torch.set_num_threads(2)
megapixels, tile = float(sys.argv[1]), int(sys.argv[2])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
torch.manual_seed(0)
backend = TorchRenderer(ConditionalMLPDecoder(latent_dim=8, hidden_dims=(8, 16, 32)).eval())
latent, mask = np.random.default_rng(0).normal(size=24).astype(np.float32), np.ones(3, np.float32)
render_pixels(backend, np.zeros((64, 64, 3), np.uint8), latent, mask, tile=tile)  # warm up kernels
height = int((megapixels * 1e6 / 1.5) ** 0.5)
pixels = np.random.default_rng(1).integers(0, 256, (height, int(height * 1.5), 3), dtype=np.uint8)
before = rss()
out = render_pixels(backend, pixels, latent, mask, tile=tile)
print(json.dumps({"pixels": pixels.size // 3, "extra": rss() - before - out.nbytes, "photo_bytes": pixels.nbytes}))
"""


def measure(megapixels: float, tile: int = 65_536) -> dict:
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(megapixels), str(tile)],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_48_megapixel_photo_renders_within_a_fixed_working_set():
    small, large = measure(3), measure(48)
    assert large["pixels"] > 47e6
    # Beyond the input and output photo buffers, rendering needs a few tiles' worth of memory,
    # the same for 3 MP and 48 MP (a non-tiled renderer would need ~24 GB more at 48 MP).
    assert large["extra"] < 256 * 2**20, large
    assert abs(large["extra"] - small["extra"]) < 64 * 2**20, (small, large)


def test_working_set_does_not_grow_with_photo_size():
    small, large = measure(1), measure(8)
    assert large["extra"] < 192 * 2**20, large
    assert abs(large["extra"] - small["extra"]) < 48 * 2**20, (small, large)
