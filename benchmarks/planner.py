"""Planner side by side on the full-size architecture: transformers eager vs ExecuTorch vs ONNX Runtime vs llama.cpp.

For each method, in one run and each in its own fresh process:
  - vision encoder time (FastViTHD + projector on the 1024² planner view; the faster of 2 runs),
  - prefill tokens/s (256 image tokens + the auto-mode prompt, one call),
  - decode tokens/s (one token per call, `--tokens` steps),
  - peak RSS of the process (load + generation) and RSS once loaded,
  - artifact size on disk, export time and export peak RSS (exports are cached in --work).
Methods: transformers eager fp32 (the torch reference backend: Qwen2ForCausalLM with its KV
cache), and ExecuTorch and ONNX Runtime at each bundle precision (`vera-mobile export --quant`
fp32 / int4 / int8; the recipe each writes is `vera_mobile.targets.PLANNER_RECIPES`, named in the
table). The runtimes load the vision encoder and the language model one at a time by default; the
`-resident` methods run the same export with both loaded (runtime/executorch_planner.py,
runtime/onnx_planner.py), so the two peak RSS figures sit side by side. The vision time of the
default includes loading the vision encoder.

The peer: llama.cpp (benchmarks/llama_cpp.py builds it from the llama-cpp-python sdist) on the
same checkpoint's language model, converted with its convert_hf_to_gguf.py and quantized to
Q4_0 and Q8_0. llama-bench measures prefill of the same number of positions and decode at that
depth, with as many threads as our runtimes use (all cores); it runs no vision encoder and
returns no hidden states, so its rows have speed, size and peak RSS (its own process, baseline
included) but no vision time, agreement or latent.

Weights are random with the real shapes (a synthetic checkpoint in the upstream layout); speed
and memory do not depend on the values. Random weights never stop, so the reference greedy
tokens are recorded once and every other method decodes the same tokens (teacher forcing):
that also measures how often its own greedy choice agrees, and gives latents over the same
sequence, compared by cosine similarity and by the PSNR of the photo each latent renders.

    python benchmarks/planner.py --tokens 64 --record
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import llama_cpp  # noqa: E402
from benchmarks.results import command, record  # noqa: E402

SAMPLE = ROOT / "vera_mobile" / "assets" / "sample_coffee.jpg"
REFERENCE = "torch-eager"
METHODS = {  # name → (target, bundle precision), the same exports `vera-mobile export --quant` writes
    REFERENCE: ("torch", "fp32"),
    "executorch-fp32": ("executorch", "fp32"),
    "executorch-int4": ("executorch", "int4"),
    "executorch-int8": ("executorch", "int8"),
    "executorch-int4-resident": ("executorch", "int4"),
    "executorch-int8-resident": ("executorch", "int8"),
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int4": ("onnx", "int4"),
    "onnx-int8": ("onnx", "int8"),
    "onnx-int4-resident": ("onnx", "int4"),
    "llama.cpp-q4_0": ("llama.cpp", "Q4_0"),
    "llama.cpp-q8_0": ("llama.cpp", "Q8_0"),
}
# The same export as the method without the suffix, run with resident=True: the vision encoder and
# the language model loaded together (the default loads one at a time).
RESIDENT = "-resident"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def artifact_dir(work: Path, method: str) -> Path:
    return work / "planner-artifacts" / method.removesuffix(RESIDENT)


def artifact_sibling(work: Path, method: str, suffix: str) -> Path:
    """A file next to a method's artifact folder: `<folder name><suffix>` (names may hold dots)."""
    folder = artifact_dir(work, method)
    return folder.with_name(folder.name + suffix)


def llama_cpp_gguf(work: Path, method: str) -> Path:
    return artifact_dir(work, method) / "language_model.gguf"


def export_llama_cpp(checkpoint: Path, work: Path, method: str) -> dict:
    """The checkpoint's language model as a Hugging Face folder, then GGUF f32 (shared), then `method`'s type."""
    from vera_mobile.models.checkpoint import load_planner

    start = time.perf_counter()
    f32 = work / "llama.cpp" / "language_model-f32.gguf"
    if not f32.is_file():
        hf_dir = work / "llama.cpp" / "hf"
        load_planner(checkpoint)[0].language_model.save_pretrained(hf_dir)
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json",
                     "tokenizer.json"):
            if (checkpoint / name).is_file():
                shutil.copyfile(checkpoint / name, hf_dir / name)
        llama_cpp.convert(hf_dir, f32.with_suffix(".partial"), "f32").rename(f32)
    partial = artifact_sibling(work, method, ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    llama_cpp.quantize(f32, partial / llama_cpp_gguf(work, method).name, METHODS[method][1])
    partial.rename(artifact_dir(work, method))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"export_s": time.perf_counter() - start, "export_peak_mib": max(peak_rss_mib(), children),
            "recipe": METHODS[method][1]}


def export_child(checkpoint: Path, work: Path, method: str) -> dict:
    """Export one method's planner artifacts into the cache (this process)."""
    from vera_mobile.export.bundle import export_planner
    from vera_mobile.export.planner_methods import PlannerCalibration
    from vera_mobile.models.checkpoint import load_planner
    from vera_mobile.tokenizer import Tokenizer

    target, quant = METHODS[method]
    if target == "llama.cpp":
        return export_llama_cpp(checkpoint, work, method)
    start = time.perf_counter()
    model, _ = load_planner(checkpoint)
    partial = artifact_sibling(work, method, ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted export
    calibration = PlannerCalibration(model, Tokenizer.from_dir(checkpoint))
    recipe, _ = export_planner(model, target, quant, partial, calibration, progress=lambda m: print(m, file=sys.stderr, flush=True))
    partial.rename(artifact_dir(work, method))
    return {"export_s": time.perf_counter() - start, "export_peak_mib": peak_rss_mib(), "recipe": recipe}


def open_backend(checkpoint: Path, work: Path, method: str):
    target, _ = METHODS[method]
    if target == "torch":
        from vera_mobile.models.checkpoint import load_planner
        from vera_mobile.runtime.torch_backend import TorchPlanner

        return TorchPlanner(load_planner(checkpoint)[0])
    if target == "executorch":
        from vera_mobile.runtime.executorch_planner import ExecuTorchPlanner

        return ExecuTorchPlanner(artifact_dir(work, method) / "planner.pte", resident=method.endswith(RESIDENT))
    from vera_mobile.export.planner_onnx import graph_files
    from vera_mobile.runtime.onnx_planner import OnnxPlanner

    return OnnxPlanner(graph_files(artifact_dir(work, method)), resident=method.endswith(RESIDENT))


def _import_runtime(target: str) -> None:
    import torch  # noqa: F401  (every backend here exchanges tensors through torch or numpy)

    if target == "torch":
        import transformers  # noqa: F401
    elif target == "executorch":
        import executorch.kernels.quantized  # noqa: F401
        import executorch.runtime  # noqa: F401
    else:
        import onnxruntime  # noqa: F401


def run_child(checkpoint: Path, work: Path, method: str, tokens: int) -> dict:
    """Load one method and measure vision, prefill and decode (this process)."""
    from vera_mobile.photo_io import load_photo
    from vera_mobile.views import PLANNER_IMAGE_SIZE, planner_view
    from vera_mobile.prompts import Request
    from vera_mobile.runtime.generation import prompt_embeddings
    from vera_mobile.tokenizer import Tokenizer

    _import_runtime(METHODS[method][0])
    baseline = current_rss_mib()  # Python + the runtime's libraries, before any weights
    start = time.perf_counter()
    backend = open_backend(checkpoint, work, method)
    result = {"load_s": time.perf_counter() - start, "baseline_rss_mib": baseline}
    tokenizer = Tokenizer.from_dir(checkpoint)
    pixels = planner_view(load_photo(SAMPLE), backend.image_size if hasattr(backend, "image_size") else PLANNER_IMAGE_SIZE)

    vision_times = []
    for _ in range(2):
        start = time.perf_counter()
        features = backend.encode_image(pixels)
        vision_times.append(time.perf_counter() - start)
    embeds = prompt_embeddings(backend, tokenizer.encode_prompt(Request("auto").full_prompt()), features)
    result["loaded_rss_mib"] = current_rss_mib()

    backend.reset()
    backend.decode(embeds[:1])  # warm-up: first-call allocations are not prefill speed
    backend.reset()
    start = time.perf_counter()
    logits, hidden = backend.decode(embeds)
    prefill_s = time.perf_counter() - start

    reference_path = work / "reference_tokens.json"
    forced = json.loads(reference_path.read_text()) if method != REFERENCE else None
    chosen, states = [], [hidden]
    start = time.perf_counter()
    for step in range(tokens):
        chosen.append(int(np.argmax(logits)))
        token = chosen[-1] if forced is None else forced[step]
        logits, hidden = backend.decode(backend.embed(np.asarray([token], np.int64)))
        states.append(hidden)
    decode_s = time.perf_counter() - start
    if forced is None:
        reference_path.write_text(json.dumps(chosen))
    # The states before the last three positions stand in for the retouch tokens' states.
    latent = backend.latent(np.stack(states[-3:]), np.ones(3, np.float32))
    np.save(work / f"latent-{method}.npy", latent)
    agreement = 1.0 if forced is None else float(np.mean(np.asarray(chosen) == np.asarray(forced)))
    return {**result, "vision_s": min(vision_times), "prompt_tokens": int(embeds.shape[0]),
            "prefill_tok_s": embeds.shape[0] / prefill_s, "decode_tok_s": tokens / decode_s,
            "agreement": agreement, "peak_rss_mib": peak_rss_mib()}


def child(args: list[str]) -> None:
    kind, checkpoint, work, method, tokens = args
    if kind == "export":
        print(json.dumps(export_child(Path(checkpoint), Path(work), method)))
    else:
        print(json.dumps(run_child(Path(checkpoint), Path(work), method, int(tokens))))


def in_fresh_process(kind: str, checkpoint: Path, work: Path, method: str, tokens: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(checkpoint), str(work), method, str(tokens)]
    run = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr (progress) goes to the terminal
    if run.returncode != 0:
        raise SystemExit(f"{kind} of {method} failed (exit {run.returncode})")
    return json.loads(run.stdout.strip().splitlines()[-1])


def size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e6


def rendered_psnr(checkpoint: Path, latents: dict[str, np.ndarray]) -> dict[str, float]:
    """PSNR of the sample photo rendered with each latent against the reference latent's render."""
    from vera_mobile.models.checkpoint import load_planner
    from vera_mobile.photo_io import load_photo
    from vera_mobile.render import render_pixels
    from vera_mobile.runtime.torch_backend import TorchRenderer

    renderer = TorchRenderer(load_planner(checkpoint)[0].renderer)
    photo = load_photo(SAMPLE).pixels
    mask = np.ones(3, np.float32)
    images = {m: render_pixels(renderer, photo, latent, mask).astype(np.float64) for m, latent in latents.items()}
    psnr = {}
    for method, image in images.items():
        mse = np.mean((image - images[REFERENCE]) ** 2)
        psnr[method] = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
    return psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/vera-bench", help="cache: synthetic checkpoint and exported artifacts")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from: {', '.join(METHODS)}")
    parser.add_argument("--model", help="checkpoint directory (default: a full-size synthetic one, cached in --work)")
    parser.add_argument("--tokens", type=int, default=64, help="decode steps per method")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument("--export-only", action="store_true", help="fill the export cache and stop (no timings)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from vera_mobile.testing.synthetic import write_synthetic_checkpoint

    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or REFERENCE not in methods:
        raise SystemExit(f"unknown method(s) {unknown}; {REFERENCE} must be included (the others follow its tokens)")
    work = Path(args.work)
    checkpoint = Path(args.model) if args.model else work / "full-bfloat16"
    if not args.model and not (checkpoint / "model.safetensors").is_file():
        print(f"writing the full-size synthetic checkpoint to {checkpoint}", file=sys.stderr)
        write_synthetic_checkpoint(checkpoint, size="full", dtype="bfloat16")

    exports: dict[str, dict] = {}
    for method in methods:
        cached = artifact_sibling(work, method, ".json")
        if METHODS[method][0] != "torch" and not cached.is_file():
            print(f"exporting {method} (cached in {artifact_dir(work, method)})", file=sys.stderr, flush=True)
            cached.parent.mkdir(parents=True, exist_ok=True)
            facts = in_fresh_process("export", checkpoint, work, method, args.tokens)
            cached.write_text(json.dumps(facts))
        if cached.is_file():
            exports[method] = json.loads(cached.read_text())
    if args.export_only:
        return

    results = {}
    for method in [REFERENCE, *(m for m in methods if m != REFERENCE)]:
        print(f"measuring {method}", file=sys.stderr, flush=True)
        if METHODS[method][0] == "llama.cpp":
            prompt = results[REFERENCE]["prompt_tokens"]
            results[method] = llama_cpp.bench(llama_cpp_gguf(work, method), prompt, args.tokens, os.cpu_count())
        else:
            results[method] = in_fresh_process("run", checkpoint, work, method, args.tokens)
        print(json.dumps(results[method]), file=sys.stderr, flush=True)
    latents = {m: np.load(work / f"latent-{m}.npy") for m in results if METHODS[m][0] != "llama.cpp"}
    psnr = rendered_psnr(checkpoint, latents)
    reference = latents[REFERENCE]

    rows = []
    eager_decode = results[REFERENCE]["decode_tok_s"]
    for method, r in results.items():
        export = exports.get(method, {})
        size = f"{size_mb(artifact_dir(work, method)):.0f}" if export else "(checkpoint)"
        exported = f"{export['export_s']:.0f} s / {export['export_peak_mib'] / 1024:.1f} GiB" if export else "—"
        if method not in latents:  # llama.cpp: speed, size and its process's whole peak RSS only
            rows.append(
                f"| {method} | {export['recipe']} (language model only) | — | {r['prefill_tok_s']:.0f} | "
                f"{r['decode_tok_s']:.1f} ({r['decode_tok_s'] / eager_decode:.1f}×) | — | — | "
                f"{r['peak_rss_mib']:.0f} (whole process) | {size} | {exported} | — | — | — |"
            )
            print(rows[-1])
            continue
        cosine = float(latents[method] @ reference / (np.linalg.norm(latents[method]) * np.linalg.norm(reference)))
        rows.append(
            f"| {method} | {export.get('recipe', 'fp32')} | {r['vision_s'] * 1000:.0f} | {r['prefill_tok_s']:.0f} | "
            f"{r['decode_tok_s']:.1f} ({r['decode_tok_s'] / eager_decode:.1f}×) | {r['baseline_rss_mib']:.0f} | "
            f"{r['loaded_rss_mib'] - r['baseline_rss_mib']:+.0f} | {r['peak_rss_mib'] - r['baseline_rss_mib']:+.0f} | "
            f"{size} | {exported} | {r['agreement']:.3f} | {cosine:.5f} | {psnr[method]:.1f} |"
        )
        print(rows[-1])

    if args.record:
        prompt = results[REFERENCE]["prompt_tokens"]
        model = (f"checkpoint `{args.model}`" if args.model
                 else "full-size architecture with random weights (synthetic checkpoint, upstream layout)")
        lines = [
            f"\n## Planner: transformers eager vs ExecuTorch vs ONNX Runtime vs llama.cpp ({time.strftime('%Y-%m-%d')})\n",
            f"Command: `{command(__file__)}`  ",
            f"Machine: {platform.machine()}, 2 cores, CPU only; {model}; each method in its own process  ",
            f"Prefill: {prompt} positions (image tokens + the auto-mode prompt); decode: {args.tokens} steps, "
            "every method fed the reference's greedy tokens; latent from the states of the last 3 positions, "
            "mask ones; PSNR of the sample photo rendered with that latent vs the reference latent's render.\n",
            "RSS columns: the process after importing Python and the runtime's libraries (torch included, which "
            "an app's C++/Kotlin/Swift runtime does not carry), then what loading and generating added to it.\n",
            "| method | recipe | vision ms | prefill tok/s | decode tok/s (× eager) | RSS before load MiB | "
            "+ loaded MiB | + peak MiB | artifacts MB | export time / peak | greedy agreement | latent cosine | "
            "rendered PSNR dB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
            *rows,
        ]
        record("\n".join(lines))


if __name__ == "__main__":
    main()
