"""The thin runtime install: a fresh venv with only `vera-mobile[onnx]` retouches from an ONNX
bundle in every mode without torch (benchmarks/thin_install.py does the install and the check).

Slow: pip installs numpy, Pillow, tokenizers and onnxruntime into a new venv (.ci/run runs it).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_an_onnx_only_venv_retouches_from_a_bundle_without_torch(tmp_path):
    from vera_mobile.export.bundle import export_bundle

    bundle = export_bundle("nano", tmp_path / "bundle", ("onnx",), quant="int8")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "thin_install.py"), "--extras", "onnx",
                          "--bundle", str(bundle), "--keep", str(tmp_path / "venvs")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(run.stdout.splitlines()[-1])
    assert "torch" not in record["packages"] and "onnxruntime" in record["packages"]
    assert record["imported_torch"] == {"after import": False, "after retouching": False}
    assert set(record["retouched"]) == {"auto", "style", "param", "reference"}
    assert all(r["shape"] == [400, 600, 3] for r in record["retouched"].values())
