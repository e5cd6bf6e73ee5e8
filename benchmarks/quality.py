"""Retouch quality of a model on held-out photos it never saw, per mode, against known answers.

The held-out data set comes from the synthesizer (`vera-mobile synthesize --split held_out`), so
every record has an exact answer:

* auto: the photo was degraded by a known slider set; the answer is the original. Reported: PSNR
  and CIEDE2000 of the retouched photo against the original, the same for the degraded input, the
  gain, the share of photos whose PSNR improved, and whether the reasoning names the true exposure
  direction and colour-cast direction (`read_directions`, the synthesizer's own wording rules).
* param: the answer is the develop engine's exact result for the record's slider set.
* style: the answer is the style's slider definition applied by the develop engine.
* reference: the before/after pair of one held-out param/style record is the example; the answer
  is the same slider set applied by the develop engine to a *different* held-out photo.

For param, style and reference the "input" row is the untouched photo against the answer (how much
the edit changes the photo). Runs on the PyTorch model, or on a bundle with --bundle/--backend.

    python benchmarks/quality.py --record
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message='"Matplotlib" related API')  # colour's import-time notice
import colour  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import publish  # noqa: E402

from vera_mobile.develop.photo import develop_pixels  # noqa: E402
from vera_mobile.develop.synthesize import read_directions, read_records  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.prompts import Request  # noqa: E402
from vera_mobile.runtime.generation import SamplingOptions  # noqa: E402
from vera_mobile.runtime.result import RenderOptions  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402

TARGETS = {"auto_psnr_gain_db": 3.0, "auto_improved": 0.8, "param_delta_e": 3.0, "directions": 0.8}


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 between two 8-bit sRGB images (D65)."""
    lab = lambda p: colour.XYZ_to_Lab(colour.sRGB_to_XYZ(p / 255.0))  # noqa: E731
    return float(np.mean(colour.delta_E(lab(a), lab(b), method="CIE 2000")))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def pixels(path: str | Path) -> np.ndarray:
    return load_photo(path).pixels


def ensure_data(args: argparse.Namespace) -> Path:
    """The held-out data set: --data if given, else synthesized once into --work (deterministic by seed)."""
    if args.data:
        return Path(args.data)
    data = Path(args.work) / f"heldout-{args.count}-seed{args.seed}"
    if not (data / "records.jsonl").is_file():
        photos = ROOT / "data" / "photos" / "manifest.json"
        if not photos.is_file():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_photos.py"), "--out", str(photos.parent)], check=True)
        subprocess.run([sys.executable, "-m", "vera_mobile.cli", "synthesize", "--photos", str(photos), "--split", "held_out",
                        "--count", str(args.count), "--seed", str(args.seed), "--size", str(args.size), "--out", str(data)],
                       check=True)
    return data


def evaluate(retoucher: Retoucher, records: list[dict], render: RenderOptions, say) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"auto": [], "param": [], "style": [], "reference": []}
    examples = [r for r in records if r["mode"] in ("param", "style")]
    for i, record in enumerate(records):
        mode = record["mode"]
        source, answer = pixels(record["input"]), pixels(record["target"])
        request = Request(mode, prompt=record["prompt"] if mode == "style" else None,
                          params=record["sliders"] if mode == "param" else None)
        result = retoucher.retouch(record["input"], request, render=render, sampling=SamplingOptions(max_new_tokens=512))
        out = result.image
        row = {"psnr": psnr(out, answer), "delta_e": delta_e(out, answer),
               "psnr_input": psnr(source, answer), "delta_e_input": delta_e(source, answer),
               "forced": bool(result.forced_retouch_tokens), "seconds": result.timings["total"]}
        if mode == "auto":
            found, true = read_directions(result.text), record["directions"]
            row.update({f"{k}_true": true[k] for k in ("exposure", "cast")})
            row.update({f"{k}_read": found[k] for k in ("exposure", "cast")})
        rows[mode].append(row)
        # Reference mode: this record's photo, edited as the next param/style record's example shows.
        if examples and retoucher.reference is not None and mode in ("param", "style"):
            later = examples[examples.index(record) + 1:] + examples
            example = next((e for e in later if e["photo"] != record["photo"]), None)
            if example is not None:
                photo = source  # the untouched photo of this param/style record
                want = develop_pixels(photo, example["sliders"])
                got = retoucher.retouch(record["input"], Request("reference"), render=render,
                                        reference=(example["input"], example["target"])).image
                rows["reference"].append({"psnr": psnr(got, want), "delta_e": delta_e(got, want),
                                          "psnr_input": psnr(photo, want), "delta_e_input": delta_e(photo, want),
                                          "forced": False, "seconds": 0.0})
        say(f"{i + 1}/{len(records)} {mode}: PSNR {row['psnr']:.2f} dB (input {row['psnr_input']:.2f}), "
            f"ΔE {row['delta_e']:.2f} (input {row['delta_e_input']:.2f})")
    return rows


def direction_accuracy(rows: list[dict], key: str) -> tuple[float, int]:
    relevant = [r for r in rows if r[f"{key}_true"] is not None]
    if not relevant:
        return float("nan"), 0
    return float(np.mean([r[f"{key}_read"] == r[f"{key}_true"] for r in relevant])), len(relevant)


def summary_table(rows: dict[str, list[dict]]) -> str:
    lines = ["| mode | records | PSNR out / input (dB) | gain | ΔE2000 out / input | improved | forced tokens |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for mode, items in rows.items():
        if not items:
            continue
        p, pi = np.mean([r["psnr"] for r in items]), np.mean([r["psnr_input"] for r in items])
        d, di = np.mean([r["delta_e"] for r in items]), np.mean([r["delta_e_input"] for r in items])
        improved = np.mean([r["psnr"] > r["psnr_input"] for r in items])
        forced = sum(r["forced"] for r in items)
        lines.append(f"| {mode} | {len(items)} | {p:.2f} / {pi:.2f} | {p - pi:+.2f} | {d:.2f} / {di:.2f} | "
                     f"{improved:.0%} | {forced} |")
    return "\n".join(lines)


def targets_table(rows: dict[str, list[dict]]) -> str:
    auto = rows["auto"]
    gain = np.mean([r["psnr"] - r["psnr_input"] for r in auto]) if auto else float("nan")
    improved = np.mean([r["psnr"] > r["psnr_input"] for r in auto]) if auto else float("nan")
    param = np.mean([r["delta_e"] for r in rows["param"]]) if rows["param"] else float("nan")
    exposure, n_exposure = direction_accuracy(auto, "exposure")
    cast, n_cast = direction_accuracy(auto, "cast")
    both = [r for r in auto if r["exposure_true"] is not None or r["cast_true"] is not None]
    named = np.mean([all(r[f"{k}_read"] == r[f"{k}_true"] for k in ("exposure", "cast") if r[f"{k}_true"] is not None)
                     for r in both]) if both else float("nan")
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    return "\n".join([
        "| target | measured | |",
        "| --- | ---: | --- |",
        f"| auto: mean PSNR gain ≥ {TARGETS['auto_psnr_gain_db']} dB | {gain:+.2f} dB | {verdict(gain >= 3)} |",
        f"| auto: ≥ 80 % of photos improved | {improved:.0%} | {verdict(improved >= 0.8)} |",
        f"| param: mean ΔE2000 ≤ 3 vs develop engine | {param:.2f} | {verdict(param <= 3)} |",
        f"| reasoning names the true exposure direction | {exposure:.0%} of {n_exposure} | {verdict(exposure >= 0.8)} |",
        f"| reasoning names the true colour-cast direction | {cast:.0%} of {n_cast} | {verdict(cast >= 0.8)} |",
        f"| both named (records with either) | {named:.0%} of {len(both)} | {verdict(named >= 0.8)} |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nano", help="built-in model name or checkpoint directory")
    parser.add_argument("--bundle", help="evaluate an export bundle instead (with --backend)")
    parser.add_argument("--backend", choices=("executorch", "onnx"), default="executorch")
    parser.add_argument("--data", help="held-out data set (default: synthesized into --work)")
    parser.add_argument("--work", default="/tmp/vera-quality")
    parser.add_argument("--count", type=int, default=200, help="records to synthesize when --data is not given")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--size", type=int, default=256, help="working size of synthesized photos")
    parser.add_argument("--limit", type=int, help="evaluate only the first N records")
    parser.add_argument("--render", choices=("lut", "exact"), default="lut")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()

    began = time.perf_counter()
    data = ensure_data(args)
    records = read_records(data)[: args.limit]
    if any(r["split"] != "held_out" for r in records):
        sys.exit(f"{data}: contains training-split records; the quality benchmark needs held-out photos only")
    retoucher = Retoucher.load(args.bundle, args.backend) if args.bundle else Retoucher.load(args.model)
    rows = evaluate(retoucher, records, RenderOptions(args.render), lambda m: print(m, file=sys.stderr))
    elapsed = time.perf_counter() - began
    what = f"bundle `{args.bundle}` on {args.backend}" if args.bundle else f"model `{args.model}` (PyTorch)"
    photos = sorted({r["photo"] for r in records})
    markdown = "\n".join([
        "## Retouch quality on held-out photos",
        "",
        f"`{' '.join(shlex.quote(a) for a in ['python', 'benchmarks/quality.py', *sys.argv[1:]])}`",
        f"— {platform.machine()}, {os.cpu_count()} cores, {datetime.date.today().isoformat()}, run time "
        f"{elapsed / 60:.1f} min. {what}, render {args.render}; {len(records)} synthesized records on "
        f"{len(photos)} held-out photos (never seen in training), working size {args.size} px.",
        "",
        summary_table(rows),
        "",
        targets_table(rows),
        "",
    ])
    publish(markdown, args.record)


if __name__ == "__main__":
    main()
