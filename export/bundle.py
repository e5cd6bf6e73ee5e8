"""Write an export bundle: every artifact, the tokenizer and a versioned manifest, all or nothing.

    vera-mobile export --model DIR --targets executorch,onnx,coreml --out BUNDLE

The bundle is assembled in a hidden sibling folder and renamed into place only when complete,
so an interrupted or failed export never leaves a half-written bundle behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vera_mobile import __version__
from vera_mobile.bundle import MANIFEST_NAME, SCHEMA_VERSION, Bundle, sha256_of
from vera_mobile.errors import InputError
from vera_mobile.models.checkpoint import load_planner, safetensors_files
from vera_mobile.models.folded_renderer import FoldedRenderer
from vera_mobile.models.reference_checkpoint import load_encoder_renderer
from vera_mobile.render import DEFAULT_TILE
from vera_mobile.builtin import resolve_model
from vera_mobile.runtime.retoucher import reference_checkpoint_in
from vera_mobile.tokenizer import Tokenizer
from vera_mobile.targets import (
    CONTEXT_LENGTH,
    COREML_RECIPES,
    COREML_RENDERER_PRECISIONS,
    DEFAULT_PRECISION,
    EXECUTORCH_OPTIONS,
    EXECUTORCH_RECIPES,
    EXPORT_TARGETS,
    ONNX_RECIPES,
    OPTIONAL_EXPORT_TARGETS,
    PLANNER_METHOD_IO,
    PLANNER_RECIPES,
    PRECISIONS,
    REFERENCE_PRECISION_NOTE,
    RENDERER_METHOD_IO,
    RENDERER_PRECISION_NOTE,
    SEARCHED_SCALE_RECIPES,
    UPSTREAM_APP_TARGET,
)
from vera_mobile.views import REFERENCE_SIZE

from .manifest import preprocessing_section, prompt_section, renderer_section
from .planner_methods import PlannerCalibration
from .reference import export_reference_coreml, export_reference_executorch, export_reference_onnx
from .renderer import export_renderer_coreml, export_renderer_executorch, export_renderer_onnx

Progress = Callable[[str], None]


def _io(name: str, shape: list[int | str], dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": dtype}


def renderer_methods(latent_size: int, bias_size: int, tile: int) -> dict[str, Any]:
    """The manifest's renderer method entries: names from RENDERER_METHOD_IO, fixed shapes from the export."""
    shapes = {  # program -> (input shapes, output shapes), in RENDERER_METHOD_IO's order
        "condition": ([[1, latent_size], [1, 3]], [[1, bias_size]]),
        "render_points": ([[tile, 3], [bias_size]], [[tile, 3]]),
    }
    return {
        program: {"inputs": [_io(name, shape) for name, shape in zip(inputs, shapes[program][0], strict=True)],
                  "outputs": [_io(name, shape) for name, shape in zip(outputs, shapes[program][1], strict=True)]}
        for program, (inputs, outputs) in RENDERER_METHOD_IO.items()
    }


def checkpoint_hash(directory: Path) -> str:
    """One sha256 over config.json and the weight files: identifies the source checkpoint."""
    digest = [sha256_of(directory / "config.json"), *(sha256_of(p) for p in safetensors_files(directory))]
    return sha256_of_text("\n".join(digest))


def sha256_of_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _renderer_golden(folded: FoldedRenderer, latent_size: int) -> dict[str, Any]:
    """A small recorded input → output pair for on-device self-checks of the renderer programs."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(1, latent_size)).astype(np.float32)
    mask = np.array([[1.0, 0.0, 1.0]], np.float32)
    points = np.linspace(-1, 1, 16 * 3, dtype=np.float32).reshape(16, 3)
    with torch.no_grad():
        biases = folded.condition(torch.from_numpy(latent), torch.from_numpy(mask))
        colors = folded.render_points(torch.from_numpy(points), biases[0])
    return {
        "component": "renderer",
        "tolerance": 1e-4,
        "condition": {"latent": latent[0].round(6).tolist(), "mask": mask[0].tolist(), "biases": biases[0].numpy().round(6).tolist()},
        "render_points": {"points": points.tolist(), "colors": colors.numpy().round(6).tolist(),
                          "note": "the first 16 points of a tile; the rest of the tile is padding"},
    }


def _renderer_artifacts(
    folded: FoldedRenderer, latent_size: int, target: str, staging: Path, component: str
) -> list[dict[str, Any]]:
    """Export one renderer's two programs for one target; returns their manifest entries."""
    if target == "executorch":
        paths = [export_renderer_executorch(folded, DEFAULT_TILE, staging / f"{component}.pte")]
    elif target == "onnx":
        paths = list(dict.fromkeys(export_renderer_onnx(folded, DEFAULT_TILE, staging, prefix=component).values()))
    else:
        paths = [
            path for precision in COREML_RENDERER_PRECISIONS
            for path in dict.fromkeys(export_renderer_coreml(folded, DEFAULT_TILE, staging, precision, prefix=component).values())
        ]
    methods = renderer_methods(latent_size, folded.bias_size, DEFAULT_TILE)
    return [
        {"component": component, "target": target, "path": path.name, "sha256": sha256_of(path), "methods": methods,
         "precision": "float16" if "float16" in path.name else "float32"}
        for path in paths
    ]


def export_renderer_bundle(decoder: Any, target: str, directory: Path) -> Bundle:
    """A renderer-only bundle: one renderer exported for one target into `directory`, with its
    manifest entries (in memory; there is no planner or tokenizer to write a full manifest for).

    `vera_mobile.runtime.retoucher.renderer_from_bundle(bundle, "renderer", target)` runs it, for
    benchmarks and tests that compare a bare renderer across runtimes.
    """
    folded = FoldedRenderer(decoder).eval()
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = _renderer_artifacts(folded, 3 * decoder.latent_dim, target, directory, "renderer")
    return Bundle(directory, {"artifacts": artifacts})


def planner_methods(model: Any, max_seq_len: int) -> dict[str, Any]:
    """The manifest's method entries: names from PLANNER_METHOD_IO, shapes and dtypes from the model."""
    config = model.config
    hidden, size = config.hidden_size, config.vision.image_size
    shapes = {  # per method: (shape, dtype) of each input, then of each output
        "vision_encoder": ([([1, 3, size, size], "float32")], [([1, config.vision.num_patches, hidden], "float32")]),
        "token_embedding": ([([1, "tokens"], "int64")], [([1, "tokens", hidden], "float32")]),
        "text_decoder": ([([1, "tokens", hidden], "float32"), (["tokens"], "int64")],
                         [([1, int(config.text["vocab_size"])], "float32"), ([1, hidden], "float32")]),
        "retouch_head": ([([1, 3, hidden], "float32"), ([1, 3], "float32")], [([1, 3 * config.latent_dim], "float32")]),
    }
    methods: dict[str, Any] = {}
    for name, (input_names, output_names) in PLANNER_METHOD_IO.items():
        inputs, outputs = shapes[name]
        methods[name] = {"inputs": [_io(n, *io) for n, io in zip(input_names, inputs, strict=True)],
                         "outputs": [_io(n, *io) for n, io in zip(output_names, outputs, strict=True)]}
    methods["text_decoder"]["max_seq_len"] = max_seq_len
    return methods


def export_planner(
    model: Any, target: str, quant: str, directory: Path, calibration: PlannerCalibration,
    progress: Progress | None = None, recipe: str | None = None,
) -> tuple[str, dict[str, Path]]:
    """Export the planner for one target at a bundle precision: (recipe, {method or file role: path}).

    `recipe` overrides the target's recipe for `quant` (e.g. Core ML's "palettize4"). `calibration`
    is measured, on first use, for the recipes that search their scales; pass one per model, so
    that all its targets share that measurement.
    """
    from .planner_coreml import export_planner_coreml
    from .planner_executorch import export_planner_executorch
    from .planner_onnx import export_planner_onnx, weight_files

    recipe = recipe or PLANNER_RECIPES[target][quant]
    directory.mkdir(parents=True, exist_ok=True)
    if target == "coreml":
        return recipe, export_planner_coreml(model, directory, recipe, CONTEXT_LENGTH, progress=progress)
    power = calibration.power if recipe in SEARCHED_SCALE_RECIPES[target] else None
    if target == "executorch":
        path = export_planner_executorch(model, directory / "planner.pte", recipe, CONTEXT_LENGTH, progress=progress,
                                         power=power, **EXECUTORCH_OPTIONS[quant])
        return recipe, {"planner": path}
    graphs = export_planner_onnx(model, directory, CONTEXT_LENGTH, recipe, progress=progress, power=power)
    return recipe, {**graphs, **weight_files(directory)}  # external weights: of a graph over 1 GiB, the tied matrix


def _planner_layers(artifacts: list[dict[str, Any]], quant: str) -> dict[str, dict[str, str]]:
    """Each planner target's recipe per layer type (a recipe's name alone does not say it)."""
    layers = {}
    for artifact in artifacts:
        if artifact["component"] == "planner" and artifact["target"] == "executorch":
            vision = str(EXECUTORCH_OPTIONS[quant].get("vision", "fp32"))
            layers["executorch"] = {**EXECUTORCH_RECIPES[artifact["recipe"]].layer_types(), "vision_encoder": vision}
        elif artifact["component"] == "planner" and artifact["target"] == "onnx":
            layers["onnx"] = dict(ONNX_RECIPES[artifact["recipe"]])
        elif artifact["component"] == "planner" and artifact["target"] == "coreml":
            layers["coreml"] = dict(COREML_RECIPES[artifact["recipe"]])
    return layers


def _planner_artifacts(
    model: Any, target: str, quant: str, staging: Path, calibration: PlannerCalibration, say: Progress,
    recipe: str | None = None,
) -> list[dict[str, Any]]:
    """Manifest entries of one target's planner; ONNX's decoder takes past/present K/V instead of
    input_pos, Core ML's keeps its K/V in states and takes int32 ids and positions."""
    recipe, files = export_planner(model, target, quant, staging, calibration, say, recipe)
    methods = planner_methods(model, CONTEXT_LENGTH)
    entry = {"component": "planner", "target": target, "recipe": recipe}
    if target == "executorch":
        # The stock runner aborts on a second decoder output, so the hidden state has its own method.
        with_hidden = methods.pop("text_decoder")
        methods["text_decoder"] = {**with_hidden, "outputs": with_hidden["outputs"][:1]}
        methods["text_decoder_with_hidden"] = with_hidden
        path = files["planner"]
        return [{**entry, "path": path.name, "sha256": sha256_of(path), "methods": methods}]
    entries: dict[Path, dict[str, Any]] = {}  # by path: a multifunction Core ML package holds several methods
    for name, path in files.items():
        graph = dict(methods.get(name, {}))
        if target == "coreml":
            graph["inputs"] = [{**io, "dtype": "int32"} if io["dtype"] == "int64" else io for io in graph["inputs"]]
            if name == "text_decoder":
                text = model.config.text
                shape = [text["num_key_value_heads"], CONTEXT_LENGTH, model.config.hidden_size // text["num_attention_heads"]]
                graph["states"] = [_io(f"{kind}_cache_{i}", shape, "float16")
                                   for i in range(text["num_hidden_layers"]) for kind in "kv"]
        elif name == "text_decoder":
            kv = ["layers", "kv_heads", "past", "head_dim"]
            graph["inputs"] = [graph["inputs"][0], _io("past_keys", kv), _io("past_values", kv)]
            grown = [*kv[:2], "past + tokens", kv[3]]
            graph["outputs"] = [*graph["outputs"], _io("present_keys", grown), _io("present_values", grown)]
        package = entries.setdefault(path, {**entry, "path": path.name, "sha256": sha256_of(path), "methods": {}})
        if graph:
            package["methods"][name] = graph
    return list(entries.values())


def _planner_golden(model: Any, tokenizer: Tokenizer, target: str, quant: str, staging: Path) -> dict[str, Any]:
    """Record the golden vectors of one target's planner by running the staged artifact itself.

    Core ML cannot run on Linux, so its record comes from the fp32 torch reference, with the
    looser tolerance an fp16 or quantized program needs and no exact-token requirement.
    """
    from vera_mobile.runtime.selfcheck import record_planner_golden

    if target == "executorch":
        from vera_mobile.runtime.executorch_planner import ExecuTorchPlanner

        backend, quantized, source = ExecuTorchPlanner(staging / "planner.pte"), quant != "fp32", "the exported .pte"
    elif target == "onnx":
        from vera_mobile.runtime.onnx_planner import OnnxPlanner

        from .planner_onnx import graph_files

        backend, quantized, source = OnnxPlanner(graph_files(staging)), quant != "fp32", "the exported graphs"
    else:
        from vera_mobile.runtime.torch_backend import TorchPlanner

        backend, quantized, source = TorchPlanner(model), True, "the fp32 torch reference (Core ML cannot run on Linux)"
    record = record_planner_golden(backend, tokenizer, model.config.eos_token_ids, model.config.vision.image_size,
                                   model.config.hidden_size, quantized)
    return {**record, "target": target, "recorded_with": source}


def _reference_artifact(model: Any, latent_size: int, target: str, staging: Path) -> dict[str, Any]:
    view = [1, 3, REFERENCE_SIZE, REFERENCE_SIZE]
    methods = {"encode": {"inputs": [_io("ref_before", view), _io("ref_after", view), _io("mask", [1, 3])],
                          "outputs": [_io("latent", [1, latent_size])]}}
    if target == "executorch":
        path = export_reference_executorch(model, staging / "reference.pte")
    elif target == "onnx":
        path = export_reference_onnx(model, staging / "reference_encode.onnx")
    else:
        path = export_reference_coreml(model, staging / "reference_float16.mlpackage")
    precision = "float16" if target == "coreml" else "float32"
    return {"component": "reference", "target": target, "path": path.name, "sha256": sha256_of(path),
            "methods": methods, "precision": precision}


def _upstream_app_artifacts(model: Any, recipe: str, staging: Path, say: Progress) -> list[dict[str, Any]]:
    """Manifest entries of the packages upstream's app loads: the tower and head are planner
    parts (compressed by `recipe`), the decoder is the renderer (fp16)."""
    from .upstream_app_coreml import COMPRESSED, export_upstream_app_coreml, upstream_app_io

    paths = export_upstream_app_coreml(model, staging, recipe, progress=say)
    io = upstream_app_io(model.config)
    entries = []
    for name, path in paths.items():
        entry = {"component": "planner" if name in COMPRESSED else "renderer", "target": UPSTREAM_APP_TARGET,
                 "path": path.name, "sha256": sha256_of(path), "methods": {name: io[name]}}
        entries.append({**entry, "recipe": recipe} if name in COMPRESSED else {**entry, "precision": "float16"})
    return entries


def export_bundle(
    model_dir: str | Path,
    out: str | Path,
    targets: tuple[str, ...] = EXPORT_TARGETS,
    reference: str | Path | None = None,
    quant: str = DEFAULT_PRECISION,
    progress: Progress | None = None,
    coreml_recipe: str | None = None,
) -> Path:
    """Export the renderer (and the reference encoder, if any) for each target, the tokenizer and the manifest.

    `reference` is an `encoder_renderer.pth` (or `.safetensors`); by default the one inside `model_dir`, if present.
    `coreml_recipe` overrides the Core ML planner recipe `quant` implies (e.g. "palettize4"), for
    `coreml` and for the opt-in `coreml-upstream-app` target (upstream's own app's packages only).
    """
    model_dir, out = resolve_model(model_dir), Path(out)
    if reference is None:
        reference = reference_checkpoint_in(model_dir)
    known = EXPORT_TARGETS + OPTIONAL_EXPORT_TARGETS
    unknown = [t for t in targets if t not in known]
    if unknown or not targets:
        raise InputError(f"unknown export target(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    if quant not in PRECISIONS:
        raise InputError(f"unknown planner precision {quant!r}; choose from {', '.join(PRECISIONS)}")
    if coreml_recipe is not None:
        if coreml_recipe not in COREML_RECIPES:
            raise InputError(f"unknown Core ML planner recipe {coreml_recipe!r}; choose from {', '.join(COREML_RECIPES)}")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} already exists and is not empty; choose a new bundle folder")
    say = progress or (lambda message: None)

    say("loading the checkpoint")
    model, report = load_planner(model_dir)
    tokenizer = Tokenizer.from_dir(model_dir)
    calibration = PlannerCalibration(model, tokenizer)  # one measurement for every target that needs it
    folded = FoldedRenderer(model.renderer).eval()
    latent_size = 3 * model.config.latent_dim

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        tokenizer.save(staging / "tokenizer.json")
        artifacts, golden = [], [_renderer_golden(folded, latent_size)]
        for target in targets:
            if target == UPSTREAM_APP_TARGET:
                recipe = coreml_recipe or PLANNER_RECIPES["coreml"][quant]
                say(f"upstream app's Core ML packages ({recipe})")
                artifacts += _upstream_app_artifacts(model, recipe, staging, say)
                continue
            if target in PLANNER_RECIPES:
                recipe = (coreml_recipe if target == "coreml" else None) or PLANNER_RECIPES[target][quant]
                say(f"planner → {target} ({recipe})")
                artifacts += _planner_artifacts(model, target, quant, staging, calibration, say, recipe)
                say(f"recording the {target} planner's golden vectors")
                golden.append(_planner_golden(model, tokenizer, target, quant, staging))
            say(f"renderer → {target}")
            artifacts += _renderer_artifacts(folded, latent_size, target, staging, "renderer")
        if reference is not None:
            encoder_renderer = load_encoder_renderer(reference)
            reference_folded = FoldedRenderer(encoder_renderer.decoder).eval()
            reference_latent = 3 * encoder_renderer.latent_dim
            for target in (t for t in targets if t in EXPORT_TARGETS):
                say(f"reference encoder and its renderer → {target}")
                artifacts.append(_reference_artifact(encoder_renderer, reference_latent, target, staging))
                artifacts += _renderer_artifacts(reference_folded, reference_latent, target, staging, "reference_renderer")

        say("writing the manifest")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "vera_mobile_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": {"checkpoint": model_dir.name, "sha256": checkpoint_hash(model_dir),
                       "parameters": report.parameters},
            "model": {"hidden_size": model.config.hidden_size, "latent_size": latent_size,
                      "image_size": model.config.vision.image_size,
                      "num_image_tokens": model.config.vision.num_patches,
                      "vocab_size": int(model.config.text["vocab_size"])},
            "tokenizer": {"file": "tokenizer.json", "sha256": sha256_of(staging / "tokenizer.json"),
                          "eos_ids": list(model.config.eos_token_ids),
                          "retouch_token_ids": list(tokenizer.retouch_ids)},
            "prompts": prompt_section(),
            "preprocessing": preprocessing_section(model.config.vision.image_size),
            "renderer": renderer_section(folded.bias_size, model.config.latent_dim),
            "quantization": {"planner": {a["target"]: a["recipe"] for a in artifacts if a["component"] == "planner"},
                             "planner_layers": _planner_layers(artifacts, quant),
                             "renderer": RENDERER_PRECISION_NOTE, "reference": REFERENCE_PRECISION_NOTE},
            "artifacts": artifacts,
            "golden": golden,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"bundle written to {out}")
    return out
