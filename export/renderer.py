"""Export the folded renderer's two programs (models/folded_renderer.py) for phones.

Every artifact holds the same two programs, with fixed shapes so each backend can plan its memory
once:

    condition(latent [1, 3L], mask [1, 3]) -> biases [1, bias_size]     once per photo
    render_points(points [T, 3], biases [bias_size]) -> colors [T, 3]   once per tile of T pixels

* ExecuTorch: one `.pte` with both methods, every op delegated to XNNPACK (fp32).
* ONNX: `renderer_condition.onnx` and `renderer_render_points.onnx` (opset 18, dynamo exporter).
* Core ML: one multifunction `.mlpackage` (functions `condition` and `render_points`, iOS 18),
  fp16 or fp32. One package mirrors the single `.pte` and keeps one weight file; multifunction
  packages need iOS 18 / macOS 15, which is why the deployment target is iOS 18 and not 17.
  Core ML cannot run on Linux: here the packages are converted, saved and inspected only.

The graphs are restatements of `FoldedRenderer` chosen to lower well (one stacked linear for
`condition`; for XNNPACK, layer norm spelled as matrix products); tests check them against it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vera_mobile.errors import CheckpointError, InputError
from vera_mobile.models.folded_renderer import FoldedRenderer
from vera_mobile.targets import COREML_RENDERER_PRECISIONS, RENDERER_METHOD_IO

Precision = Literal["float16", "float32"]  # one of COREML_RENDERER_PRECISIONS

ONNX_OPSET = 18


# --- The two programs as export graphs --------------------------------------------------------


class ConditionProgram(nn.Module):
    """`FoldedRenderer.condition` as one linear layer: latent [1, 3L] + mask [1, 3] -> biases [1, bias_size].

    The three per-layer projections share their input, so they are stacked into one matrix; the
    mask gates each latent slice by broadcasting, since `repeat_interleave` lowers to copies that
    XNNPACK does not delegate.
    """

    def __init__(self, folded: FoldedRenderer) -> None:
        super().__init__()
        self.latent_dim = folded.latent_dim
        self.register_buffer("weight", torch.cat(list(folded.latent_to_bias)))
        offsets = [offset + static for offset, static in zip(folded.latent_bias_offsets, folded.static_biases)]
        self.register_buffer("bias", torch.cat(offsets))

    def forward(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gated = latent.view(-1, 3, self.latent_dim) * mask.view(-1, 3, 1)
        return F.linear(F.relu(gated.view(-1, 3 * self.latent_dim)), self.weight, self.bias)


class RenderPointsProgram(nn.Module):
    """`FoldedRenderer.render_points` as is: ONNX and Core ML have a native layer-norm op."""

    def __init__(self, folded: FoldedRenderer) -> None:
        super().__init__()
        self.folded = folded

    def forward(self, points: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
        return self.folded.render_points(points, biases)


class XnnpackRenderPointsProgram(nn.Module):
    """`FoldedRenderer.render_points` in ops the ExecuTorch XNNPACK partitioner delegates.

    XNNPACK (executorch 1.5.1) has no layer norm, and its mean only reduces the inner dims of 4-D
    tensors, so `F.layer_norm` would run between delegates on the slow portable kernels. The row
    mean is instead a matrix product with a constant [1, width] row of 1/width, which XNNPACK runs
    as a GEMM; `x @ W.T` is written `F.linear` so the weights stay static GEMM operands.
    """

    def __init__(self, folded: FoldedRenderer) -> None:
        super().__init__()
        self.folded = folded
        self.mean_rows = nn.ParameterList(
            nn.Parameter(torch.full((1, width), 1.0 / width), requires_grad=False) for width in folded.widths
        )

    def forward(self, points: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
        folded = self.folded
        h = F.relu(F.linear(points, folded.first_weight, folded.first_bias))
        start = 0
        layers = zip(folded.weights, self.mean_rows, folded.eps)
        for index, (weight, mean_row, eps) in enumerate(layers):
            centred = h - F.linear(h, mean_row)
            normalised = centred * torch.rsqrt(F.linear(centred * centred, mean_row) + eps)
            end = start + weight.shape[0]
            h = F.linear(normalised, weight) + biases[start:end]
            start = end
            if index < len(folded.weights) - 1:
                h = F.relu(h)
        return torch.sigmoid(h)


class _Program(NamedTuple):
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]  # example inputs: they fix the exported shapes
    input_names: tuple[str, ...]
    output_name: str


def _programs(folded: FoldedRenderer, tile: int, render_points: type[nn.Module]) -> dict[str, _Program]:
    if not isinstance(tile, int) or isinstance(tile, bool) or tile <= 0:
        raise InputError(f"tile must be a positive number of points, got {tile!r}")
    latent = torch.zeros(1, 3 * folded.latent_dim)
    names = {program: (inputs, outputs[0]) for program, (inputs, outputs) in RENDERER_METHOD_IO.items()}
    return {
        "condition": _Program(ConditionProgram(folded).eval(), (latent, torch.ones(1, 3)), *names["condition"]),
        "render_points": _Program(
            render_points(folded).eval(), (torch.zeros(tile, 3), torch.zeros(folded.bias_size)), *names["render_points"]
        ),
    }


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Name the export step in any exception from the (verbose, fast-changing) toolchains."""
    try:
        yield
    except Exception as exc:
        exc.add_note(f"vera-mobile: this happened while {what}")
        raise


def _export(name: str, program: _Program) -> torch.export.ExportedProgram:
    with torch.no_grad(), _step(f"running torch.export on the renderer's {name} program"):
        return torch.export.export(program.module, program.inputs)


# --- ExecuTorch ---------------------------------------------------------------------------------


def export_renderer_executorch(folded: FoldedRenderer, tile: int, path: str | os.PathLike) -> Path:
    """Write one `.pte` with methods `condition` and `render_points` (T = `tile`), lowered to XNNPACK fp32."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    programs = _programs(folded, tile, XnnpackRenderPointsProgram)
    exported = {name: _export(name, program) for name, program in programs.items()}
    with torch.no_grad(), _step("lowering the renderer to ExecuTorch with XNNPACK"):
        buffer = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer)
    return path


# --- ONNX ---------------------------------------------------------------------------------------


def export_renderer_onnx(
    folded: FoldedRenderer, tile: int, out_dir: str | os.PathLike, prefix: str = "renderer"
) -> dict[str, Path]:
    """Write `<prefix>_condition.onnx` and `<prefix>_render_points.onnx`; returns {program name: path}.

    Uses the torch.export-based ("dynamo") exporter, torch's default since 2.9; the TorchScript one
    is deprecated. Each file is self-contained (no external weight file).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, program in _programs(folded, tile, RenderPointsProgram).items():
        paths[name] = out_dir / f"{prefix}_{name}.onnx"
        with torch.no_grad(), _step(f"exporting the renderer's {name} program to ONNX"):
            torch.onnx.export(
                program.module,
                program.inputs,
                paths[name],
                dynamo=True,
                input_names=list(program.input_names),
                output_names=[program.output_name],
                opset_version=ONNX_OPSET,
                external_data=False,
                verbose=False,
            )
    return paths


# --- Core ML ------------------------------------------------------------------------------------


def export_renderer_coreml(
    folded: FoldedRenderer,
    tile: int,
    out_dir: str | os.PathLike,
    precision: Precision = "float16",
    prefix: str = "renderer",
) -> dict[str, Path]:
    """Write `<prefix>_<precision>.mlpackage`, one ML program with functions `condition` and `render_points`.

    Returns {program name: package path}; both names map to the same multifunction package.
    Inputs and outputs stay float32 at either precision, so the app hands the same buffers to
    both functions; with float16 the weights are stored and computed in fp16.
    """
    if precision not in COREML_RENDERER_PRECISIONS:
        raise InputError(f"Core ML precision must be one of {', '.join(COREML_RENDERER_PRECISIONS)}, got {precision!r}")
    import coremltools as ct

    compute_precision = ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32
    programs = _programs(folded, tile, RenderPointsProgram)
    package = Path(out_dir) / f"{prefix}_{precision}.mlpackage"
    package.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vera-coreml-") as scratch:
        functions = {}
        for name, program in programs.items():
            exported = _export(name, program).run_decompositions({})  # coremltools wants ATen ops
            with _step(f"converting the renderer's {name} program to Core ML ({precision})"):
                model = ct.convert(
                    exported,
                    outputs=[ct.TensorType(name=program.output_name, dtype=np.float32)],
                    convert_to="mlprogram",
                    minimum_deployment_target=ct.target.iOS18,
                    compute_precision=compute_precision,
                )
            functions[name] = Path(scratch) / f"{name}.mlpackage"
            model.save(str(functions[name]))
        if package.exists():
            shutil.rmtree(package)
        with _step(f"saving the multifunction Core ML package {package}"):
            save_multifunction(functions, package, default="render_points")  # the per-tile hot path
    return {name: package for name in programs}


def save_multifunction(functions: dict[str, Path], path: Path, default: str) -> None:
    """Join saved single-function packages {function name: package} as one multifunction ML program at `path`.

    `default` names the function an app gets when it names none. coremltools stores a constant
    that several functions hold (equal dtype, shape and values) once in the weight file.
    """
    import coremltools as ct

    descriptor = ct.utils.MultiFunctionDescriptor()
    for name, package in functions.items():
        descriptor.add_function(str(package), src_function_name="main", target_function_name=name)
    descriptor.default_function_name = default
    ct.utils.save_multifunction(descriptor, str(path))


def load_mlprogram_spec(path: Path) -> Any:
    """The spec of a saved ML program package; a CheckpointError if missing or not an ML program."""
    if not path.exists():
        raise CheckpointError(f"Core ML package {path} does not exist")
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    if spec.WhichOneof("Type") != "mlProgram":
        raise CheckpointError(f"{path} is a {spec.WhichOneof('Type')} model, not an ML program")
    return spec


def inspect_coreml_package(path: str | os.PathLike) -> dict[str, Any]:
    """The structure of an ML program package, read from its spec (no prediction: not possible on Linux).

    Returns spec_version, deployment_target (e.g. "iOS18"), default_function, and per function its
    inputs/outputs ({name, shape, dtype}), MIL opset, op-type histogram and float constants per dtype
    (elements), plus `weight_dtype`: "float16", "float32" or "mixed" over all functions.
    """
    path = Path(path)
    spec = load_mlprogram_spec(path)
    import coremltools as ct
    # A single-function package describes its one function ("main") at the top level.
    descriptions = {function.name: function for function in spec.description.functions} or {"main": spec.description}
    functions = {
        name: {
            "inputs": [_feature(feature) for feature in description.input],
            "outputs": [_feature(feature) for feature in description.output],
            **_program_facts(spec.mlProgram.functions[name]),
        }
        for name, description in descriptions.items()
    }
    weight_dtypes = {dtype for facts in functions.values() for dtype in facts["weights"]}
    return {
        "spec_version": spec.specificationVersion,
        "deployment_target": ct.target(spec.specificationVersion).name,
        "default_function": spec.description.defaultFunctionName or "main",
        "functions": functions,
        "weight_dtype": weight_dtypes.pop() if len(weight_dtypes) == 1 else "mixed",
    }


def _feature(feature: Any) -> dict[str, Any]:
    from coremltools.proto import FeatureTypes_pb2

    array = feature.type.multiArrayType
    dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    return {"name": feature.name, "shape": list(array.shape), "dtype": dtype.lower()}


def _program_facts(function: Any) -> dict[str, Any]:
    """Op histogram and float-constant element counts per dtype of one MIL function."""
    from coremltools.proto import MIL_pb2

    ops: Counter[str] = Counter()
    weights: Counter[str] = Counter()
    for operation in _operations(function.block_specializations[function.opset].operations):
        ops[operation.type] += 1
        if operation.type == "const":
            tensor = operation.attributes["val"].type.tensorType
            dtype = MIL_pb2.DataType.Name(tensor.dataType).lower()
            if dtype.startswith(("float", "bfloat")):
                weights[dtype] += int(np.prod([dim.constant.size for dim in tensor.dimensions]))
    return {"opset": function.opset, "ops": dict(ops), "weights": dict(weights)}


def _operations(operations: Any) -> Iterator[Any]:
    """Every operation, including those inside nested blocks (control flow)."""
    for operation in operations:
        yield operation
        for block in operation.blocks:
            yield from _operations(block.operations)

