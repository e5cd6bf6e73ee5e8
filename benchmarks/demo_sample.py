"""How the demo's sample photo was chosen: the model on every freely licensed held-out photo, darkened.

Each public-domain or CC0 photo of the held-out split (at least 300 px on the short side, at
most 640 px on the long side) is darkened the way `vera_mobile/assets/sample_trier_dark.jpg` is
(`Exposure2012 -30`, about 1.5 stops) and retouched in auto mode. One line per photo: the PSNR
gain against the original, the exposure direction and the cast the reasoning names; then the
totals. The sample is a photo near the median gain.

    python benchmarks/demo_sample.py --photos data/photos --model nano
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.quality import psnr  # noqa: E402
from vera_mobile.develop.photo import develop_pixels  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402
from vera_mobile.training.synthesis import load_working_photo, read_directions  # noqa: E402

FREE_LICENCES = {"public domain", "cc0-1.0"}
DARKEN = {"Exposure2012": -30}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", required=True, type=Path, help="folder written by scripts/fetch_photos.py")
    parser.add_argument("--model", default="nano")
    args = parser.parse_args()
    manifest = json.loads((args.photos / "manifest.json").read_text())
    candidates = [p for p in manifest["photos"] if p["split"] == "held_out" and p["licence"].lower() in FREE_LICENCES]
    retoucher = Retoucher.load(args.model)
    gains, under, cast_named = [], 0, 0
    with tempfile.TemporaryDirectory() as work:
        darkened = Path(work) / "darkened.png"
        for entry in candidates:
            original = load_working_photo(args.photos / entry["path"], 640)
            if min(original.shape[:2]) < 300:
                continue
            Image.fromarray(develop_pixels(original, DARKEN)).save(darkened)
            result = retoucher.retouch(darkened)
            named = read_directions(result.raw_text)
            gains.append(psnr(result.image, original) - psnr(np.asarray(Image.open(darkened)), original))
            under += named["exposure"] == "under"
            cast_named += named["cast"] is not None
            print(f"{gains[-1]:+6.2f} dB  exposure {named['exposure']}  cast {named['cast']}  {entry['path']}", flush=True)
    print(f"{len(gains)} photos: mean gain {np.mean(gains):+.2f} dB, median {np.median(gains):+.2f} dB, "
          f"improved {np.mean(np.array(gains) > 0):.0%}; named under-exposed {under}, named a cast {cast_named}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
