"""Export the planner as Core ML ML programs (iOS 18): a function per ExecuTorch method, in three packages.

The programs and names mirror `planner_executorch.py` (same split, same tensors):

    vision_encoder:  pixels [1,3,S,S] float32 in [0,1]          -> image_embeds [1, N, H]
    token_embedding: input_ids [1,T] int32                      -> inputs_embeds [1, T, H]
    text_decoder:    inputs_embeds [1,T,H], input_pos [T] int32 -> logits [1, V], hidden [1, H]
                     states k_cache_<i>, v_cache_<i> [kv_heads, max_seq_len, head_dim] fp16
    retouch_head:    hidden3 [1,3,H], mask [1,3]                -> latent [1, 3H]

`PACKAGES` says which package holds which: `planner_vision_encoder` and `planner_retouch_head`
hold their one program as an ordinary package; `planner_language_model` is a multifunction
package with the functions `token_embedding` and `text_decoder` (the default). When the
embedding table and lm_head are one tied matrix (Qwen2-0.5B: 151,936 x 896, 27 % of the
weights), both functions read it, and `coremltools.utils.save_multifunction` stores a constant
that several functions hold once in the package's weight file (its const deduplication gives
them one blob offset). That needs the two copies compressed identically, bit for bit; see the
recipes.

T is flexible (a range 1 .. max_seq_len). The decoder is stateful (iOS 18 `StateType`): its K/V
cache lives in Core ML states, which an app creates with `model.newState()` (Swift; iOS 18) and passes to every
prediction of one sequence; `input_pos` are the positions of the T new tokens (batch 1),
exactly as for ExecuTorch's `text_decoder_with_hidden`. Ids and positions are int32
because Core ML has no int64 inputs. Every float input and output is float32; the programs compute
in fp16 (Core ML states are fp16 only). The token embedding is its own function so that the decoder
takes embeddings, which is how image embeddings are spliced into the prompt.

Conversion route: `torch.export` (non-strict) with dynamic T, then `ct.convert` of the
ExportedProgram, whose mutated buffers become the Core ML states. `StaticCacheDecoder` writes its
cache with `index_copy_`, which coremltools 9.0 cannot convert (no `index_copy`), and
`cache[:, input_pos] = k` lowers to an `index_put` with a whole-slice index that coremltools only
handles for a single scalar position ("Input squeeze_0 has rank 1 != other inputs rank 0").
`CoreMLTextDecoder` therefore writes with an explicit (head, position) index pair, which becomes
a `scatter_nd` into the state. The TorchScript route (`torch.jit.trace` + `ct.StateType`) fails
earlier on this torch/numpy: a traced `x.shape[-1] // 2` in `rotate_half` becomes a 1-element
array that coremltools' `int` op cannot make a scalar ("only 0-dimensional arrays can be
converted to Python scalars").

Recipes (`RECIPES`), applied with `coremltools.optimize.coreml` to the converted programs:

* `fp16`: fp16 weights and compute everywhere.
* `int4-block32`: the decoder's linears (lm_head included) and the token embedding as symmetric
  int4 with one fp16 scale per block of 32 input channels (`constexpr_blockwise_shift_scale`).
* `int4-block32-head8`: as int4-block32, but lm_head (the decoder's widest linear) is int8 per
  output channel: 4-bit costs the output projection most (benchmarks/RESULTS.md, per layer type).
  A token embedding tied to lm_head is int8 per row too: the one stored copy is the head's, and
  8 bits for the table cost less than a second, 4-bit copy of it (an untied one stays int4).
* `int8-channel`: the same weights as symmetric int8 with one fp16 scale per output channel
  (`constexpr_blockwise_shift_scale` too): the Core ML counterpart of the bundles' `--quant int8`.
* `palettize4`: the same weights as 4-bit look-up tables (`constexpr_lut_to_dense`), one
  16-entry table per group of 16 output channels, entries spaced uniformly over each group's
  range. Not k-means: coremltools clusters with sklearn when kmeans1d is absent, and per-tensor
  k-means on the tiny test model's 9.7M-element embedding alone had not finished after 3 minutes.

In every quantized recipe the vision encoder and the retouch head stay fp16, and the decoder's
RoPE tables and norms are left alone (only `linear` weights are compressed in the decoder). Each
recipe compresses the embedding table ([V, H], gathered by rows) and lm_head ([V, H], a linear)
on the same axes (coremltools takes axis 0 as the output channel of both), so a tied matrix
gives identical constants in both functions.

Core ML cannot run on Linux: here the packages are converted, saved and inspected only
(`inspect_planner_coreml`); the torch module that is converted is checked against the reference.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vera_mobile.errors import InputError
from vera_mobile.models.kv_decoder import StaticCacheDecoder
from vera_mobile.models.planner import VeraPlanner

from vera_mobile.targets import COREML_BLOCK_SIZE as BLOCK_SIZE
from vera_mobile.targets import COREML_PALETTE_GROUP as PALETTE_GROUP
from vera_mobile.targets import COREML_RECIPES as RECIPES
from vera_mobile.targets import CONTEXT_LENGTH, PLANNER_METHOD_IO

from . import planner_methods
from .planner_executorch import _step
from .renderer import _operations, _program_facts, load_mlprogram_spec, save_multifunction

# {package file stem: the methods it holds}; a package of several is multifunction, its last
# method the default function (the decoder runs once per token).
PACKAGES = {
    "planner_vision_encoder": ("vision_encoder",),
    "planner_language_model": ("token_embedding", "text_decoder"),
    "planner_retouch_head": ("retouch_head",),
}
METHODS = tuple(method for methods in PACKAGES.values() for method in methods)
COMPRESSION_OPS = ("constexpr_blockwise_shift_scale", "constexpr_lut_to_dense")


class CoreMLTextDecoder(StaticCacheDecoder):
    """`StaticCacheDecoder` with the cache write spelled as a (head, position) scatter.

    Same buffers, weights and math; only the in-place write differs (see the module docstring).
    forward(inputs_embeds [1,T,H], input_pos [T]) -> (logits [1,V], hidden [1,H]).
    """

    def __init__(self, language_model: nn.Module, max_seq_len: int) -> None:
        super().__init__(language_model, max_seq_len)
        self.core.regroup_queries = False  # non-strict torch.export rejects the regrouped form's guard

    def cache_index(self, input_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(head, position) index pairs [kv_heads, T] for an index_put_ scatter."""
        heads = torch.arange(self.core.num_kv_heads, device=input_pos.device)[:, None].expand(-1, input_pos.shape[0])
        positions = input_pos[None, :].expand(self.core.num_kv_heads, -1)
        return heads, positions

    def write_cache(self, cache: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor], values: torch.Tensor) -> None:
        cache.index_put_(where, values)


def _check_arguments(model: VeraPlanner, recipe: str, max_seq_len: int) -> None:
    if recipe not in RECIPES:
        raise InputError(f"unknown Core ML recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    limit = int(model.config.text.get("max_position_embeddings", max_seq_len))
    if not isinstance(max_seq_len, int) or isinstance(max_seq_len, bool) or not 2 <= max_seq_len <= limit:
        raise InputError(f"max_seq_len must be an integer from 2 to {limit}, got {max_seq_len!r}")
    if recipe.startswith("int4-block32"):
        widths = {m.in_features for m in model.language_model.modules() if isinstance(m, nn.Linear)}
        widths.add(model.config.hidden_size)  # the embedding's rows
        bad = sorted(w for w in widths if w % BLOCK_SIZE)
        if bad:
            raise InputError(f"{recipe} needs input widths divisible by {BLOCK_SIZE}; the model has {bad}")


def exported_programs(model: VeraPlanner, max_seq_len: int) -> dict[str, torch.export.ExportedProgram]:
    """The four torch programs that are converted, as ATen-level ExportedPrograms (T dynamic).

    The decoder program owns fresh zeroed K/V buffers over `model`'s weights; `model` is unchanged.
    """
    from torch.export import Dim

    seq = Dim("seq", min=1, max=max_seq_len)
    language_model = model.language_model
    two = torch.arange(2, dtype=torch.int32)
    # (module, example inputs, dynamic shapes); the decoder is Core ML's own form (its cache in states).
    programs = {
        "vision_encoder": planner_methods.vision_encoder(model)[:3],
        "token_embedding": planner_methods.token_embedding(language_model, max_seq_len, torch.int32)[:3],
        "text_decoder": (
            CoreMLTextDecoder(language_model, max_seq_len), (torch.zeros(1, 2, model.config.hidden_size), two),
            ({1: seq}, {0: seq}),
        ),
        "retouch_head": planner_methods.retouch_head(model)[:3],
    }
    exported = {}
    for name, (module, inputs, dynamic_shapes) in programs.items():
        with torch.no_grad():
            program = torch.export.export(module.eval(), inputs, dynamic_shapes=dynamic_shapes, strict=False)
        exported[name] = program.run_decompositions({})  # coremltools converts ATen ops
    return exported


_INT_INPUTS = {"input_ids", "input_pos"}


def _convert(name: str, program: torch.export.ExportedProgram) -> Any:
    import coremltools as ct

    states = None
    if name == "text_decoder":
        # Declared rather than inferred so that the fp16 state dtype is explicit (Core ML has no other).
        states = [
            ct.StateType(wrapped_type=ct.TensorType(shape=tuple(buffer.shape), dtype=np.float16), name=buffer_name)
            for buffer_name, buffer in program.named_buffers()
            if "_cache_" in buffer_name
        ]
    model = ct.convert(
        program,
        # Shapes (flexible T included) come from the ExportedProgram. Dtypes are explicit: left
        # unset, an fp16 program gets fp16 inputs, which cannot hold token ids past 2048.
        inputs=[
            ct.TensorType(name=input_name, dtype=np.int32 if input_name in _INT_INPUTS else np.float32)
            for input_name in PLANNER_METHOD_IO[name][0]
        ],
        outputs=[ct.TensorType(name=output, dtype=np.float32) for output in PLANNER_METHOD_IO[name][1]],
        states=states,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
        skip_model_load=True,  # nothing can load it on Linux, and on macOS the caller loads it
    )
    return model


def _compress(model: Any, recipe: str, op_type: str | None, tied_head: bool = False) -> Any:
    """Apply the recipe's weight compression; `op_type` limits it to weights of that op type.

    `tied_head`: the program is a token embedding whose table is the output head's matrix; it is
    then compressed as the head is, so that the language model package stores one copy.
    """
    import coremltools.optimize.coreml as cto

    int8 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    int4 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                       block_size=BLOCK_SIZE)
    if recipe in ("int4-block32", "int4-block32-head8", "int8-channel"):
        head8 = recipe == "int4-block32-head8"
        scope = _scope(int8 if recipe == "int8-channel" or (head8 and tied_head) else int4, op_type)
        # Only the decoder is compressed per op type ("linear"), and only it has an output head.
        head = _output_head(model) if head8 and op_type == "linear" else None
        if head is not None:
            scope["op_name_configs"] = {head: int8}
        return cto.linear_quantize_weights(model, cto.OptimizationConfig(**scope))
    op_config = cto.OpPalettizerConfig(
        nbits=4, mode="uniform", granularity="per_grouped_channel", group_size=PALETTE_GROUP
    )
    return cto.palettize_weights(model, cto.OptimizationConfig(**_scope(op_config, op_type)))


def _output_head(model: Any) -> str | None:
    """The name of the program's vocabulary projection: its widest linear (None: it has no linear)."""
    linears = [op for op in model._mil_program.functions["main"].operations if op.op_type == "linear"]
    return max(linears, key=lambda op: op.weight.shape[0]).name if linears else None


def _scope(op_config: Any, op_type: str | None) -> dict[str, Any]:
    return {"op_type_configs": {op_type: op_config}} if op_type else {"global_config": op_config}


# Which weights each quantized recipe compresses, per program: the decoder's linears only (not the
# RoPE tables or norms), the whole embedding table.
_COMPRESSED = {"text_decoder": "linear", "token_embedding": None}


def export_planner_coreml(
    model: VeraPlanner,
    out_dir: str | os.PathLike,
    recipe: str = "fp16",
    max_seq_len: int = CONTEXT_LENGTH,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write the packages of `PACKAGES` (module docstring); returns {method: its package's path}.

    `recipe` is one of `RECIPES` (module docstring); `max_seq_len` sizes the K/V states and bounds
    T. `progress` receives a line per step. The packages are written to a scratch folder inside
    `out_dir` and moved into place only once all are complete; existing ones are replaced.
    """
    _check_arguments(model, recipe, max_seq_len)
    model = model.eval()
    tied = planner_methods.tied_embedding(model.language_model)
    with _step("exporting the planner's programs with torch.export", progress):
        exported = exported_programs(model, max_seq_len)

    def convert(name: str) -> Any:
        with _step(f"converting the planner's {name} program to Core ML (fp16)", progress):
            converted = _convert(name, exported[name])
        if recipe != "fp16" and name in _COMPRESSED:
            with _step(f"compressing the planner's {name} program ({recipe})", progress):
                converted = _compress(converted, recipe, _COMPRESSED[name], tied_head=tied and name == "token_embedding")
        return converted

    return save_packages(PACKAGES, convert, out_dir, progress)


def save_packages(
    packages: dict[str, tuple[str, ...]], convert: Callable[[str], Any], out_dir: str | os.PathLike,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Save every package {file stem: names} as `<stem>.mlpackage` in `out_dir`, all or nothing.

    A package of one name is `convert(name)` as it is; one of several is a multifunction package
    with the function `name` for each (the last the default), which stores a weight the functions
    share once. The packages are written to a scratch folder inside `out_dir` and moved into
    place only once all are complete; existing ones are replaced. Returns {name: package path}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".coreml-packages-", dir=out_dir))
    try:
        for stem, names in packages.items():
            staged = scratch / f"{stem}.mlpackage"
            # One program is the package; several are saved apart first, then joined as functions.
            parts = {names[0]: staged} if len(names) == 1 else {n: scratch / stem / f"{n}.mlpackage" for n in names}
            for name, part in parts.items():
                converted = convert(name)
                with _step(f"saving {part.name}", progress):
                    converted.save(str(part))
            if len(names) > 1:
                with _step(f"joining {', '.join(names)} as the functions of {staged.name}", progress):
                    save_multifunction(parts, staged, default=names[-1])
        for stem in packages:
            package = out_dir / f"{stem}.mlpackage"
            if package.exists():
                shutil.rmtree(package)
            os.replace(scratch / package.name, package)  # same file system: a rename, never a half-written package
        return {name: out_dir / f"{stem}.mlpackage" for stem, names in packages.items() for name in names}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- Inspection ---------------------------------------------------------------------------------


def inspect_planner_coreml(path: str | os.PathLike, function: str | None = None) -> dict[str, Any]:
    """The structure of one saved planner package, read from its spec on Linux.

    Core ML cannot *run* a model on Linux, so this validates structure only (no prediction).
    `function` picks one function of a multifunction package (default: the package's default;
    a single-function package has only "main"). Returns spec_version, deployment_target (e.g.
    "iOS18"), `functions` (every function's name), and for the function: inputs / outputs ({name,
    shape, dtype, and `range` [[lo, hi] per dim] when the shape is flexible), states ({name,
    shape, dtype}), the MIL opset, op-type histogram `ops`, float-constant elements per dtype
    `weights`, `compression` (count of each constexpr decompression op in COMPRESSION_OPS); and
    for the package, `weight_bytes` (size of its weight file) and `shared_weight_elements` (the
    elements of the stored weights that more than one function reads: each is stored once).
    """
    path = Path(path)
    spec = load_mlprogram_spec(path)
    import coremltools as ct
    # A single-function package describes its one function ("main") at the top level.
    descriptions = {f.name: f for f in spec.description.functions} or {"main": spec.description}
    function = function or spec.description.defaultFunctionName or "main"
    if function not in descriptions:
        raise InputError(f"{path.name} has no function {function!r}; it has: {', '.join(descriptions)}")
    description = descriptions[function]
    facts = _program_facts(spec.mlProgram.functions[function])
    weights = list(path.glob("Data/com.apple.CoreML/weights/*.bin"))
    return {
        "spec_version": spec.specificationVersion,
        "deployment_target": ct.target(spec.specificationVersion).name,
        "functions": list(descriptions),
        "inputs": [_feature(feature) for feature in description.input],
        "outputs": [_feature(feature) for feature in description.output],
        "states": [_feature(feature) for feature in description.state],
        **facts,
        "compression": {op: facts["ops"].get(op, 0) for op in COMPRESSION_OPS},
        "weight_bytes": sum(file.stat().st_size for file in weights),
        "shared_weight_elements": _shared_weight_elements(spec),
    }


def _shared_weight_elements(spec: Any) -> int:
    """Elements of the weight-file blobs that more than one function of the program reads."""
    readers: dict[tuple[str, int], set[str]] = {}
    sizes: dict[tuple[str, int], int] = {}
    for name, function in spec.mlProgram.functions.items():
        for operation in _operations(function.block_specializations[function.opset].operations):
            # A const holds its value as an attribute; a constexpr (compressed weight) as inputs.
            values = [operation.attributes["val"]] if operation.type == "const" else [
                argument.value for binding in operation.inputs.values() for argument in binding.arguments
                if argument.HasField("value")]
            for value in values:
                if value.WhichOneof("value") == "blobFileValue":
                    blob = (value.blobFileValue.fileName, value.blobFileValue.offset)
                    readers.setdefault(blob, set()).add(name)
                    sizes[blob] = int(np.prod([dim.constant.size for dim in value.type.tensorType.dimensions]))
    return sum(sizes[blob] for blob, functions in readers.items() if len(functions) > 1)


def _feature(feature: Any) -> dict[str, Any]:
    """{name, shape, dtype} of a multi-array or state feature, with `range` if its shape is flexible."""
    from coremltools.proto import FeatureTypes_pb2

    kind = feature.type.WhichOneof("Type")
    array = feature.type.stateType.arrayType if kind == "stateType" else feature.type.multiArrayType
    dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType).lower()
    facts: dict[str, Any] = {"name": feature.name, "shape": list(array.shape), "dtype": dtype}
    if array.WhichOneof("ShapeFlexibility") == "shapeRange":
        facts["range"] = [[size.lowerBound, size.upperBound] for size in array.shapeRange.sizeRanges]
    elif array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
        facts["enumerated"] = [list(shape.shape) for shape in array.enumeratedShapes.shapes]
    return facts
