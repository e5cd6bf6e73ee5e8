"""Install vera-mobile with one set of extras into a fresh venv; measure it; retouch from a bundle there.

    python benchmarks/thin_install.py --extras onnx --bundle BUNDLE      # the thin runtime
    python benchmarks/thin_install.py --extras dev                       # the full install, for comparison

Prints one JSON line: the extras, pip's wall time, the venv's size on disk (du), and, with
`--bundle`, what the retouch check in the new venv found. The check retouches the bundle's
sample photo in auto, style, param and reference mode on ONNX Runtime and fails if importing
vera_mobile, loading the bundle or retouching imported torch. pip uses its normal configuration
(package index, find-links), so it installs what a user's pip would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs inside the new venv, with only what the extras installed.
CHECK = r"""
import json, sys
import vera_mobile
imported_torch = {"after import": "torch" in sys.modules}
from vera_mobile import Request
from vera_mobile.builtin import ASSETS
retoucher = vera_mobile.load(sys.argv[1], backend="onnx")
photo = ASSETS / "sample_coffee.jpg"
requests = {
    "auto": (Request("auto"), {}),
    "style": (Request("style", prompt="I want a warm film look."), {}),
    "param": (Request("param", params={"Exposure2012": 30, "Saturation": -10}), {}),
    "reference": (Request("reference"), {"reference": (photo, photo)}),
}
done = {}
for mode, (request, extra) in requests.items():
    result = retoucher.retouch(photo, request, **extra)
    done[mode] = {"shape": list(result.image.shape), "tokens": result.num_tokens}
imported_torch["after retouching"] = "torch" in sys.modules
print(json.dumps({"retouched": done, "imported_torch": imported_torch}))
"""


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def measure(extras: str, bundle: Path | None, workdir: Path) -> dict:
    venv = workdir / f"venv-{extras}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    start = time.perf_counter()
    # A regular (non-editable) install from the checkout: what `pip install vera-mobile[...]` gives.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", f"{ROOT}[{extras}]"], check=True)
    record: dict = {"extras": extras, "install_s": round(time.perf_counter() - start, 1),
                    "venv_mib": round(du_bytes(venv) / 2**20)}
    packages = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                              check=True).stdout
    record["packages"] = sorted(p["name"].lower() for p in json.loads(packages))
    if bundle is not None:
        run = subprocess.run([str(python), "-c", CHECK, str(bundle)], capture_output=True, text=True, cwd=workdir)
        if run.returncode != 0:
            raise SystemExit(f"the retouch check failed in the [{extras}] venv:\n{run.stderr[-3000:]}")
        record.update(json.loads(run.stdout.splitlines()[-1]))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="onnx", help="the extras to install, e.g. onnx or dev")
    parser.add_argument("--bundle", type=Path, help="an ONNX bundle to retouch from in the new venv")
    parser.add_argument("--keep", type=Path, help="build the venv here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure(args.extras, args.bundle, args.keep)))
        return
    with tempfile.TemporaryDirectory(prefix="vera-thin-") as workdir:
        print(json.dumps(measure(args.extras, args.bundle, Path(workdir))))


if __name__ == "__main__":
    main()
