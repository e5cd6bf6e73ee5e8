"""Golden vectors: record what an exported artifact computes, and check a runtime reproduces it.

The exporter runs each planner artifact once, through the same backend classes the runtime
uses, on inputs anyone can rebuild from a few numbers (a seed-free pixel pattern, fixed token
ids, a closed-form hidden state), and stores the outputs in the manifest's `golden` list. A
runtime on any device (Python here, the Kotlin and Swift cores of the demo apps) replays them
to catch a wrong file, a wrong preprocessing constant or a miscompiled kernel before the user's
photo does.

The inputs are defined here and written into each record, so an app needs no code from here:

* pixels[c, y, x] = ((7x + 13y + 29c) mod 256) / 255 for the vision encoder and the generation;
* hidden3[i, j] = sin(0.01 * (j + 1) * (i + 1)) for the retouch head, with mask [1, 0, 1];
* the auto-mode prompt, greedy decoding, `max_new_tokens` new tokens for the generation trace.

Tolerances compare to the output's scale: |got - want| <= tolerance * max(1, max |want|).
Quantized programs get a looser tolerance than float ones, because dynamic-activation int8
kernels round differently on other CPUs; their token trace is recorded but only float
programs must reproduce it exactly.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..prompts import Request
from ..tokenizer import Tokenizer
from .generation import PlannerBackend, SamplingOptions, generate, prompt_embeddings

GOLDEN_TOKENS = 8  # new tokens in the recorded generation trace
ROW_VALUES = 32  # values kept per row of large outputs
FLOAT_TOLERANCE = 1e-3
QUANTIZED_TOLERANCE = 5e-2
HEAD_MASK = (1.0, 0.0, 1.0)


def golden_pixels(size: int) -> np.ndarray:
    """The planner's golden input image: [3, size, size] float32 in [0, 1], a closed-form pattern."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(size), np.arange(size), indexing="ij")
    return (((7 * x + 13 * y + 29 * c) % 256) / 255.0).astype(np.float32)


def golden_hidden3(hidden_size: int) -> np.ndarray:
    """The retouch head's golden input: [3, hidden_size], a closed-form pattern."""
    i, j = np.meshgrid(np.arange(3), np.arange(hidden_size), indexing="ij")
    return np.sin(0.01 * (j + 1) * (i + 1)).astype(np.float32)


def _values(array: np.ndarray, count: int | None = None) -> list[float]:
    flat = np.asarray(array, np.float32).ravel()
    return [float(v) for v in (flat if count is None else flat[:count])]


def record_planner_golden(
    backend: PlannerBackend,
    tokenizer: Tokenizer,
    eos_ids: Sequence[int],
    image_size: int,
    hidden_size: int,
    quantized: bool,
) -> dict[str, Any]:
    """Run the golden inputs through one planner artifact and return its manifest record."""
    features = backend.encode_image(golden_pixels(image_size))
    ids = np.asarray(tokenizer.encode("Retouch")[:3] + list(tokenizer.retouch_ids), np.int64)
    embeddings = backend.embed(ids)
    prompt_ids = tokenizer.encode_prompt(Request("auto").full_prompt())
    embeds = prompt_embeddings(backend, prompt_ids, features)
    trace = generate(backend, tokenizer, embeds, eos_ids, SamplingOptions(max_new_tokens=GOLDEN_TOKENS))
    latent = backend.latent(golden_hidden3(hidden_size), np.asarray(HEAD_MASK, np.float32))
    return {
        "component": "planner",
        "tolerance": QUANTIZED_TOLERANCE if quantized else FLOAT_TOLERANCE,
        "tokens_must_match": not quantized,
        "vision_encoder": {
            "pixels": "((7x + 13y + 29c) mod 256) / 255, shape [1, 3, S, S]",
            "first_row": _values(features[0], ROW_VALUES),
            "last_row": _values(features[-1], ROW_VALUES),
            "mean": float(features.mean()),
        },
        "token_embedding": {"input_ids": ids.tolist(), "rows": [_values(row, ROW_VALUES) for row in embeddings]},
        "generation": {
            "mode": "auto",
            "pixels": "as vision_encoder",
            "prompt_ids": list(prompt_ids),
            "max_new_tokens": GOLDEN_TOKENS,
            "sampling": "greedy",
            "token_ids": trace.token_ids,
            "stop_reason": trace.stop_reason,
            "retouch_hidden": [_values(row, ROW_VALUES) for row in trace.retouch_hidden],
        },
        "retouch_head": {"hidden3": "sin(0.01 * (j + 1) * (i + 1)), shape [1, 3, H]", "mask": list(HEAD_MASK),
                         "latent": _values(latent)},
    }


def _compare(name: str, got: Any, want: Any, tolerance: float) -> str | None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return f"{name}: shape {got.shape}, expected {want.shape}"
    error = float(np.abs(got - want).max()) if want.size else 0.0
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    if error > tolerance * scale:
        return f"{name}: max difference {error:.3g} exceeds {tolerance:g} x {scale:.3g}"
    return None


def check_planner_golden(backend: PlannerBackend, tokenizer: Tokenizer, eos_ids: Sequence[int],
                         image_size: int, hidden_size: int, golden: dict[str, Any]) -> list[str]:
    """Replay a planner record on `backend`; returns the problems found (empty: it reproduces)."""
    tolerance = golden["tolerance"]
    replay = record_planner_golden(backend, tokenizer, eos_ids, image_size, hidden_size, quantized=False)
    problems = []
    if replay["generation"]["prompt_ids"] != golden["generation"]["prompt_ids"]:
        problems.append("generation: the prompt tokenizes differently from the recorded ids")
    for section, key in (("vision_encoder", "first_row"), ("vision_encoder", "last_row"), ("vision_encoder", "mean"),
                         ("token_embedding", "rows"), ("retouch_head", "latent")):
        problems.append(_compare(f"{section}.{key}", replay[section][key], golden[section][key], tolerance))
    recorded, replayed = golden["generation"]["token_ids"], replay["generation"]["token_ids"]
    if golden["tokens_must_match"]:
        if replayed != recorded:
            problems.append(f"generation: greedy tokens {replayed}, recorded {recorded}")
        else:
            problems.append(_compare("generation.retouch_hidden", replay["generation"]["retouch_hidden"],
                                     golden["generation"]["retouch_hidden"], tolerance))
    return [p for p in problems if p]


def check_renderer_golden(backend: Any, golden: dict[str, Any]) -> list[str]:
    """Replay a renderer record (condition, then the first points of a tile) on a RendererBackend."""
    condition, render = golden["condition"], golden["render_points"]
    biases = backend.condition(np.asarray(condition["latent"], np.float32), np.asarray(condition["mask"], np.float32))
    points = np.asarray(render["points"], np.float32)
    if backend.tile is not None:  # fixed-shape programs take a whole tile; pad after the golden points
        points = np.concatenate([points, np.zeros((backend.tile - len(points), 3), np.float32)])
    colors = backend.render_points(points, biases)[: len(render["points"])]
    problems = [_compare("condition.biases", biases, condition["biases"], golden["tolerance"]),
                _compare("render_points.colors", colors, render["colors"], golden["tolerance"])]
    return [p for p in problems if p]


def check_bundle(path: Any, backend: str = "executorch") -> dict[str, list[str]]:
    """Replay every golden record of a bundle that `backend` can run; component → problems found.

    A component with an empty list reproduced its golden vectors. Raises the usual
    CheckpointError for a bundle that does not load (missing file, wrong hash, schema version).
    """
    from .retoucher import Retoucher

    retoucher = Retoucher.from_bundle(path, backend=backend)
    manifest = retoucher.manifest
    report: dict[str, list[str]] = {}
    for golden in manifest["golden"]:
        if golden["component"] == "renderer":
            report["renderer"] = check_renderer_golden(retoucher.renderer, golden)
        elif golden["component"] == "planner" and golden.get("target") == backend and retoucher.planner is not None:
            model = manifest["model"]
            report["planner"] = check_planner_golden(retoucher.planner, retoucher.tokenizer, retoucher.eos_ids,
                                                     model["image_size"], model["hidden_size"], golden)
    return report
