"""Quiet output: a demo-like run (retouch, int8 export, retouch from the bundle on both runtimes)
writes to stderr only the lines we print ourselves; known third-party noise is silenced at the
source (vera_mobile/quiet.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DEMO_LIKE = r"""
import sys
import vera_mobile
from vera_mobile import SamplingOptions

def say(message):
    print(f"ours: {message}", file=sys.stderr)

checkpoint, bundle = sys.argv[1], sys.argv[2]
photo = vera_mobile.builtin.ASSETS / "sample_coffee.jpg"
four = SamplingOptions(max_new_tokens=4)
say(vera_mobile.load(checkpoint).retouch(photo, sampling=four).num_tokens)
from vera_mobile.export.bundle import export_bundle
export_bundle(checkpoint, bundle, ("executorch", "onnx"), quant="int8", progress=say)
for backend in ("executorch", "onnx"):
    say(vera_mobile.load(bundle, backend).retouch(photo, sampling=four).num_tokens)
"""


@pytest.mark.slow  # an int8 export to two targets: minutes on 2 cores (.ci/run runs it)
def test_a_demo_like_run_prints_only_our_own_lines(tiny_checkpoint, tmp_path):
    run = subprocess.run([sys.executable, "-c", "import vera_mobile.builtin\n" + DEMO_LIKE, str(tiny_checkpoint),
                          str(tmp_path / "bundle")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stderr.splitlines()
    assert len(lines) > 5 and "ours: writing the manifest" in lines
    assert [line for line in lines if not line.startswith("ours: ")] == []
