"""Retouch quality of a model on held-out photos it never saw, per mode, against known answers,
side by side with the classic one-button "auto enhance" baselines on the same records.

The held-out data set comes from the synthesizer (`vera-mobile synthesize --split held_out`), so
every record has an exact answer:

* auto: the photo was degraded by a known slider set; the answer is the original. Reported: PSNR
  and CIEDE2000 of the retouched photo against the original, the same for the degraded input, the
  gain, the share of photos whose PSNR improved, and whether the reasoning's *problem sentences*
  name the true exposure direction and colour-cast direction (`read_directions`, the
  synthesizer's own wording rules). Per degradation kind (records that contain the kind), next to
  three baselines on the same records: the untouched input, gray-world white balance (channel
  means equalised in linear light) and gray-world + auto-levels (then a 0.5 / 99.5 % luminance
  stretch).
* clean: auto records whose photo was left clean (answer = input). Reported: how far the output
  moved from the photo (PSNR capped at PSNR_CAP, ΔE) and how often the reasoning says there is no
  problem (`says_no_problem`).
* sensitivity: each of the first `--sensitivity-photos` held-out originals and its warm / cool /
  green / magenta copies (`CAST_PROBES`): do the five colour-problem sentences differ, and does the
  named cast follow the applied shift?
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

from benchmarks.results import command, publish  # noqa: E402

from vera_mobile.develop.photo import develop_pixels  # noqa: E402
from vera_mobile.develop.colour import srgb_decode, srgb_encode  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.plan import parse_plan  # noqa: E402
from vera_mobile.prompts import Request  # noqa: E402
from vera_mobile.runtime.generation import SamplingOptions  # noqa: E402
from vera_mobile.runtime.result import RenderOptions  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402
from vera_mobile.training.synthesis import CAST_PROBES, KINDS, read_directions, read_records, says_no_problem  # noqa: E402

TARGETS = {  # the Nano 2 targets on held-out photos
    "auto_psnr_gain_db": 4.0, "auto_improved": 0.85, "clean_psnr_db": 35.0, "clean_no_problem": 0.7,
    "exposure_direction": 0.9, "cast_direction": 0.8, "sensitivity": 0.8, "param_delta_e": 3.0,
    "style_gain_db": 10.0, "reference_improved": 0.6,
}
PSNR_CAP = 60.0  # dB: identical images would be infinite; means use this cap
LEVELS_PERCENTILES = (0.5, 99.5)


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 between two 8-bit sRGB images (D65)."""
    lab = lambda p: colour.XYZ_to_Lab(colour.sRGB_to_XYZ(p / 255.0))  # noqa: E731
    return float(np.mean(colour.delta_E(lab(a), lab(b), method="CIE 2000")))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images, capped at PSNR_CAP."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(min(PSNR_CAP, 10 * np.log10(255.0**2 / max(mse, 1e-10))))


def _linear(pixels: np.ndarray) -> np.ndarray:
    import torch

    return srgb_decode(torch.from_numpy(pixels.astype(np.float64) / 255.0)).numpy()


def _to_uint8(linear: np.ndarray) -> np.ndarray:
    import torch

    encoded = srgb_encode(torch.from_numpy(np.clip(linear, 0.0, 1.0))).numpy()
    return np.round(np.clip(encoded, 0.0, 1.0) * 255).astype(np.uint8)


def gray_world(pixels: np.ndarray) -> np.ndarray:
    """Gray-world white balance: scale R, G, B in linear light so that their means are equal."""
    linear = _linear(pixels)
    means = linear.reshape(-1, 3).mean(0).clip(1e-6)
    return _to_uint8(linear * (means.mean() / means))


def auto_levels(pixels: np.ndarray) -> np.ndarray:
    """Stretch the 0.5 / 99.5 % luminance percentiles (Rec. 709 weights on sRGB values) to black / white."""
    unit = pixels.astype(np.float64) / 255.0
    luminance = unit @ np.array([0.2126, 0.7152, 0.0722])
    low, high = np.percentile(luminance, LEVELS_PERCENTILES)
    stretched = (unit - low) / max(high - low, 1e-6)
    return np.round(np.clip(stretched, 0.0, 1.0) * 255).astype(np.uint8)


BASELINES = {"gray-world": gray_world, "gray-world + auto-levels": lambda p: auto_levels(gray_world(p))}


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
                        "--count", str(args.count), "--seed", str(args.seed), "--size", str(args.size),
                        "--fit-steps", "0", "--out", str(data)],  # the fitted inverse only words the plan text
                       check=True)
    return data


def evaluate(retoucher: Retoucher, records: list[dict], render: RenderOptions, say) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"auto": [], "clean": [], "param": [], "style": [], "reference": []}
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
            found, true = read_directions(result.raw_text), record["directions"]
            row.update({f"{k}_true": true[k] for k in ("exposure", "cast")})
            row.update({f"{k}_read": found[k] for k in ("exposure", "cast")})
            row.update({"kinds": record["kinds"], "no_problem": says_no_problem(result.raw_text)})
            row.update({name: psnr(baseline(source), answer) for name, baseline in BASELINES.items()})
            mode = "auto" if record["kinds"] else "clean"
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


def _mean(items: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in items])) if items else float("nan")


def summary_table(rows: dict[str, list[dict]]) -> str:
    lines = ["| mode | records | PSNR out / input (dB) | gain | ΔE2000 out / input | improved | forced tokens |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for mode, items in rows.items():
        if not items:
            continue
        p, pi = _mean(items, "psnr"), _mean(items, "psnr_input")
        d, di = _mean(items, "delta_e"), _mean(items, "delta_e_input")
        improved = "—" if mode == "clean" else f"{np.mean([r['psnr'] > r['psnr_input'] for r in items]):.0%}"
        forced = sum(r["forced"] for r in items)
        lines.append(f"| {mode} | {len(items)} | {p:.2f} / {pi:.2f} | {p - pi:+.2f} | {d:.2f} / {di:.2f} | "
                     f"{improved} | {forced} |")
    return "\n".join(lines)


def kinds_table(auto: list[dict]) -> str:
    """Auto mode per degradation kind (records containing it) next to the baselines, mean PSNR in dB."""
    names = list(BASELINES)
    lines = [f"| kind | records | input | {' | '.join(names)} | model | model gain | improved |",
             "| --- | ---: | ---: |" + " ---: |" * len(names) + " ---: | ---: | ---: |"]
    groups = [("all degraded", auto)] + [(k, [r for r in auto if k in r["kinds"]]) for k in KINDS]
    for kind, items in groups:
        if not items:
            continue
        base = " | ".join(f"{_mean(items, n):.2f}" for n in names)
        improved = np.mean([r["psnr"] > r["psnr_input"] for r in items])
        lines.append(f"| {kind} | {len(items)} | {_mean(items, 'psnr_input'):.2f} | {base} | {_mean(items, 'psnr'):.2f} | "
                     f"{_mean(items, 'psnr') - _mean(items, 'psnr_input'):+.2f} | {improved:.0%} |")
    return "\n".join(lines)


def clean_table(clean: list[dict]) -> str:
    names = list(BASELINES)
    return "\n".join([
        f"| clean photos | records | model PSNR vs photo | model ΔE2000 | says no problem | {' | '.join(names)} |",
        "| --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(names),
        f"| nothing to fix | {len(clean)} | {_mean(clean, 'psnr'):.2f} | {_mean(clean, 'delta_e'):.2f} | "
        f"{np.mean([r['no_problem'] for r in clean]) if clean else float('nan'):.0%} | "
        + " | ".join(f"{_mean(clean, n):.2f}" for n in names) + " |",
    ])


def colour_sentence(text: str) -> str:
    return (parse_plan(text).problem_global_color or "").strip()


def sensitivity(retoucher: Retoucher, records: list[dict], photos: int, render: RenderOptions, work: Path, say) -> dict:
    """A photo and its four cast copies: distinct colour-problem sentences, and the named cast."""
    from PIL import Image

    originals = list(dict.fromkeys(r["target"] if r["mode"] == "auto" else r["input"] for r in records))[:photos]
    distinct, followed, total = 0, 0, 0
    work.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(originals):
        photo = pixels(path)
        sentences = [colour_sentence(retoucher.retouch(path, Request("auto"), render=render).raw_text)]
        for cast, sliders in CAST_PROBES.items():
            copy = work / f"sensitivity-{i}-{cast}.png"
            Image.fromarray(develop_pixels(photo, sliders)).save(copy)
            text = retoucher.retouch(copy, Request("auto"), render=render).raw_text
            sentences.append(colour_sentence(text))
            followed += read_directions(text)["cast"] == cast
            total += 1
        distinct += len(set(sentences)) == len(sentences)
        say(f"sensitivity {i + 1}/{len(originals)}: {len(set(sentences))} distinct colour sentences of 5")
    return {"photos": len(originals), "all_distinct": distinct / max(1, len(originals)),
            "cast_followed": followed / max(1, total), "copies": total}


def targets_table(rows: dict[str, list[dict]], sens: dict | None) -> str:
    auto, clean = rows["auto"], rows["clean"]
    gain = _mean(auto, "psnr") - _mean(auto, "psnr_input")
    improved = np.mean([r["psnr"] > r["psnr_input"] for r in auto]) if auto else float("nan")
    per_kind = [(k, [r for r in auto if k in r["kinds"]]) for k in KINDS]
    beats = [k for k, items in per_kind if items and _mean(items, "psnr") > _mean(items, "psnr_input")
             and all(_mean(items, "psnr") > _mean(items, n) for n in BASELINES)]
    present = [k for k, items in per_kind if items]
    exposure, n_exposure = direction_accuracy(auto, "exposure")
    cast, n_cast = direction_accuracy(auto, "cast")
    clean_psnr = _mean(clean, "psnr")
    no_problem = np.mean([r["no_problem"] for r in clean]) if clean else float("nan")
    param = _mean(rows["param"], "delta_e")
    style_gain = _mean(rows["style"], "psnr") - _mean(rows["style"], "psnr_input")
    ref = rows["reference"]
    ref_gain = _mean(ref, "psnr") - _mean(ref, "psnr_input")
    ref_improved = np.mean([r["psnr"] > r["psnr_input"] for r in ref]) if ref else float("nan")
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    t = TARGETS
    lines = [
        "| target | measured | |",
        "| --- | ---: | --- |",
        f"| auto: mean PSNR gain ≥ +{t['auto_psnr_gain_db']} dB | {gain:+.2f} dB | {verdict(gain >= t['auto_psnr_gain_db'])} |",
        f"| auto: ≥ {t['auto_improved']:.0%} of degraded photos improved | {improved:.0%} | "
        f"{verdict(improved >= t['auto_improved'])} |",
        f"| auto: every kind gains and beats both baselines | {len(beats)} of {len(present)} kinds"
        f"{' (not: ' + ', '.join(k for k in present if k not in beats) + ')' if len(beats) < len(present) else ''} | "
        f"{verdict(len(beats) == len(present))} |",
        f"| clean photos: mean PSNR vs the photo ≥ {t['clean_psnr_db']} dB | {clean_psnr:.2f} dB | "
        f"{verdict(clean_psnr >= t['clean_psnr_db'])} |",
        f"| clean photos: says no problem in ≥ {t['clean_no_problem']:.0%} | {no_problem:.0%} of {len(clean)} | "
        f"{verdict(no_problem >= t['clean_no_problem'])} |",
        f"| true exposure direction named in ≥ {t['exposure_direction']:.0%} | {exposure:.0%} of {n_exposure} | "
        f"{verdict(exposure >= t['exposure_direction'])} |",
        f"| true colour-cast direction named in ≥ {t['cast_direction']:.0%} | {cast:.0%} of {n_cast} | "
        f"{verdict(cast >= t['cast_direction'])} |",
    ]
    if sens is not None:
        lines.append(f"| sensitivity: named cast follows the shift in ≥ {t['sensitivity']:.0%} "
                     f"({sens['photos']} photos × 4 casts; all 5 colour sentences distinct in "
                     f"{sens['all_distinct']:.0%} of photos) | {sens['cast_followed']:.0%} | "
                     f"{verdict(sens['cast_followed'] >= t['sensitivity'])} |")
    lines += [
        f"| param: mean ΔE2000 ≤ {t['param_delta_e']} vs develop engine | {param:.2f} | {verdict(param <= t['param_delta_e'])} |",
        f"| style: gain ≥ +{t['style_gain_db']} dB | {style_gain:+.2f} dB | {verdict(style_gain >= t['style_gain_db'])} |",
        f"| reference: gain > 0 dB and ≥ {t['reference_improved']:.0%} improved | {ref_gain:+.2f} dB, {ref_improved:.0%} | "
        f"{verdict(ref_gain > 0 and ref_improved >= t['reference_improved'])} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nano", help="built-in model name or checkpoint directory")
    parser.add_argument("--bundle", help="evaluate an export bundle instead (with --backend)")
    parser.add_argument("--backend", choices=("executorch", "onnx"), default="executorch")
    parser.add_argument("--data", help="held-out data set (default: synthesized into --work)")
    parser.add_argument("--work", default="/tmp/vera-quality")
    parser.add_argument("--count", type=int, default=400, help="records to synthesize when --data is not given")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--size", type=int, default=256, help="working size of synthesized photos")
    parser.add_argument("--limit", type=int, help="evaluate only the first N records")
    parser.add_argument("--render", choices=("lut", "exact"), default="lut")
    parser.add_argument("--sensitivity-photos", type=int, default=20,
                        help="held-out originals for the cast-sensitivity check (0: skip)")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()

    began = time.perf_counter()
    data = ensure_data(args)
    records = read_records(data)[: args.limit]
    if any(r["split"] != "held_out" for r in records):
        sys.exit(f"{data}: contains training-split records; the quality benchmark needs held-out photos only")
    retoucher = Retoucher.load(args.bundle, args.backend) if args.bundle else Retoucher.load(args.model)
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    render = RenderOptions(args.render)
    rows = evaluate(retoucher, records, render, say)
    sens = (sensitivity(retoucher, records, args.sensitivity_photos, render, Path(args.work), say)
            if args.sensitivity_photos else None)
    elapsed = time.perf_counter() - began
    what = f"bundle `{args.bundle}` on {args.backend}" if args.bundle else f"model `{args.model}` (PyTorch)"
    photos = sorted({r["photo"] for r in records})
    markdown = "\n".join([
        "## Retouch quality on held-out photos",
        "",
        f"`{command(__file__)}`",
        f"— {platform.machine()}, {os.cpu_count()} cores, {datetime.date.today().isoformat()}, run time "
        f"{elapsed / 60:.1f} min. {what}, render {args.render}; {len(records)} synthesized records on "
        f"{len(photos)} held-out photos (never seen in training), working size {args.size} px.",
        "",
        summary_table(rows),
        "",
        "Auto mode per degradation kind, mean PSNR (dB) against the original, side by side with the baselines "
        f"on the same records (PSNR capped at {PSNR_CAP:.0f} dB):",
        "",
        kinds_table(rows["auto"]),
        "",
        clean_table(rows["clean"]),
        "",
        targets_table(rows, sens),
        "",
    ])
    publish(markdown, args.record)


if __name__ == "__main__":
    main()
