"""Export the planner to ONNX: four graphs that `runtime/onnx_planner.py` runs with ONNX Runtime.

    vision_encoder.onnx   pixels [1, 3, S, S]                      -> image_embeds [1, N, H]
    token_embedding.onnx  input_ids [1, T] (int64)                 -> inputs_embeds [1, T, H]
    text_decoder.onnx     inputs_embeds [1, T, H],
                          past_keys, past_values [L, Hkv, P, d]    -> logits [1, V], hidden [1, H],
                                                                      present_keys, present_values [L, Hkv, P+T, d]
    retouch_head.onnx     hidden3 [1, 3, H], mask [1, 3]           -> latent [1, 3H]

T and P are dynamic (P may be 0: the first call is the prefill); everything else is fixed by the
checkpoint. The decoder is models/kv_decoder.py's `PastKeyValueDecoder`, so it returns the logits
and the final-norm hidden state of the last position only. Its `max_seq_len` (the RoPE table
length) is stored in the decoder's metadata under `vera.max_seq_len`.

Recipes (`quant`), all CPU-runnable in ONNX Runtime; every quantized one (int4, int4-search,
int8) also writes the vision encoder and the retouch head in int8, as described after the list:

* fp32: as exported, every graph.
* int4: `MatMulNBitsQuantizer`, block 32, asymmetric (uint4 with a zero point per block), on every
  MatMul of the decoder whose weight is constant (all projections and lm_head) and on the token
  embedding's Gather (GatherBlockQuantized; that graph is exported at opset 21, the first with
  int4 tensors). Asymmetric because a zero point costs 4 bits per 32 weights (+3 % size) and lets
  each block use all 16 levels when its weights are not centred (on the tiny model it also beat
  symmetric: hidden-state cosine 0.9977 vs 0.9965). lm_head and the embedding are included
  because at the full size each is a 151,936 x 896 table, together over half the fp32 planner.
  `accuracy_level` is left unset: MatMulNBits computes in fp32. Vision encoder and retouch head:
  int8.
* int4-search (what `--quant int4` writes): the decoder's MatMuls as symmetric uint4
  MatMulNBits (block 32, no zero points: the kernel's default 8) whose scales are searched
  against calibration activations as in ExecuTorch's 8da4w-search (export/weight_scales.py), and
  lm_head as 8-bit MatMulNBits (block 32, scale = largest / 127, accuracy level 4: int8
  activations, which ORT's fast 8-bit kernel needs): the same int4 grid and an int8 head, as in
  the ExecuTorch bundle. When the embedding and lm_head are one tied matrix (Qwen2-0.5B,
  SmolLM2), that matrix is stored once, in `tied_embedding.data` next to the graphs: the head's
  8-bit MatMulNBits and the embedding's GatherBlockQuantized (8 bits, same blocks, same default
  zero point 128) read the same bytes through ONNX external data, each graph giving its own shape.
  Otherwise the token embedding is quantized as in int4. Vision encoder and retouch head: int8.
* int8: `quantize_dynamic`, per-channel QInt8 weights (activations quantized to uint8 at run
  time) on the decoder's MatMuls, lm_head included, and on the retouch head's. The embedding
  stays fp32: the dynamic quantizer quantizes a Gather's table with a single scale, too coarse
  for embeddings. Weights use 7 of the 8 bits (`reduce_range`): on x86 CPUs without VNNI (AVX2
  only) ORT's uint8 x int8 kernel adds pairs of products in int16, which saturates with
  full-range weights. There the nano bundle's retouch moved 10.5 levels from PyTorch's; with the
  7-bit range 0.05. Vision encoder: int8.

The int8 retouch head is int8's recipe on its three linears (the exporter's Gemms are rewritten
as MatMul + Add first). The int8 vision encoder (`_quantize_vision_int8`) is int8 dynamic
activations x int8 per-output-channel weights, like the ExecuTorch bundles' 8da8w encoder: its
MatMuls (attention and projector, 32 M of the 126 M parameters at the full size) by int8's
recipe, its one-group convolutions (the 1x1 ones, 93 M) as ConvInteger on uint8 weights with one
scale per output channel, the input quantized at each call (`_int8_convolutions`). Two kinds of
convolution stay fp32: the depthwise ones (1.3 M parameters; quantized, they made the nano
tower's call about 1.5x slower) and the stem's (`patch_embed`, 12 K parameters, the most
sensitive: quantized, the nano tower's worst cosine below falls from 0.9992 to 0.9946). At the
full size that should take the encoder's 506 MB to about 130 MB (estimated, not measured).
The method was chosen on the trained nano tower: image embeddings of five scikit-image photos
(preprocessed as the runtime does) against the fp32 graph's, worst cosine / largest error over
the largest fp32 value. On the layers quantized here: dynamic activations with per-channel
weights 0.9992 / 0.057; quantize_dynamic's own ConvInteger, one scale per weight tensor, 0.9992 /
0.039 with uint8 weights and 0.9923 / 0.16 with 7-bit int8 ones (on every convolution, stem and
depthwise included: 0.66 / 2.2); static QDQ (QLinearConv, activation ranges calibrated on the
two bundled photos) 0.9968 / 0.14, although its kernel is the faster one. Per-channel scales are
kept for towers whose channels differ more in range than nano's (folded BatchNorms), and dynamic
activations need no calibration photos. On the tiny synthetic tower every candidate stays above
0.9999.

`export_text_decoder_onnx` writes token_embedding.onnx and text_decoder.onnx alone for any
Qwen2/Llama-style causal LM, with the same recipes; benchmarks/quant_fidelity.py uses it to
measure the recipes on a pretrained model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import onnx
import onnx_ir as ir
import torch
from torch import nn

from . import planner_methods
from .renderer import ONNX_OPSET, _step
from vera_mobile.errors import InputError
from vera_mobile.models.kv_decoder import PastKeyValueDecoder
from vera_mobile.models.planner import VeraPlanner
from vera_mobile.runtime.onnx_planner import GRAPH_IO, MAX_SEQ_LEN_KEY
from vera_mobile.targets import CONTEXT_LENGTH, ONNX_RECIPES
from vera_mobile.targets import ONNX_INT4_BLOCK_SIZE as INT4_BLOCK_SIZE

Quant = Literal["fp32", "int4", "int8", "int4-search"]  # ONNX_RECIPES, for type checkers
INT4_SYMMETRIC = False
INT4_TENSOR_OPSET = 21  # the first opset with int4 tensors, which GatherBlockQuantized's table is
# A protobuf file cannot exceed 2 GB; graphs whose weights pass this size keep them in `<name>.onnx.data`.
EXTERNAL_DATA_BYTES = 1 << 30
# int4-search's tied embedding/output matrix, stored once for both graphs that read it.
TIED_TABLE_FILE = "tied_embedding.data"
TIED_TABLE_BITS = 8
TIED_TABLE_ALIGNMENT = 1 << 16  # page-aligned sections, so ONNX Runtime can map them instead of copying


# --- The graphs ---------------------------------------------------------------------------------


class _Graph(NamedTuple):
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]  # examples; the names are runtime/onnx_planner.py's GRAPH_IO
    dynamic_shapes: tuple[dict[int, torch.export.Dim] | None, ...] | None


def _graphs(model: VeraPlanner, max_seq_len: int) -> dict[str, _Graph]:
    return {
        "vision_encoder": _Graph(*planner_methods.vision_encoder(model)[:3]),
        **_language_model_graphs(model.language_model, max_seq_len),
        "retouch_head": _Graph(*planner_methods.retouch_head(model)[:3]),
    }


def _language_model_graphs(language_model: nn.Module, max_seq_len: int) -> dict[str, _Graph]:
    """token_embedding and text_decoder of a Qwen2/Llama-style causal LM."""
    hidden = language_model.config.hidden_size
    decoder = PastKeyValueDecoder(language_model, max_seq_len).eval()
    core = decoder.core
    cache_shape = (len(core.layers), core.num_kv_heads, 2, core.head_dim)  # examples: P = 2, T = 3
    tokens = torch.export.Dim("tokens", min=1, max=max_seq_len)
    past = torch.export.Dim("past", min=0, max=max_seq_len - 1)
    return {
        "token_embedding": _Graph(*planner_methods.token_embedding(language_model, max_seq_len)[:3]),
        "text_decoder": _Graph(
            decoder,
            (torch.randn(1, 3, hidden), torch.randn(cache_shape), torch.randn(cache_shape)),
            ({1: tokens}, {2: past}, {2: past}),
        ),
    }


# --- Export -------------------------------------------------------------------------------------


def export_planner_onnx(
    model: VeraPlanner,
    out_dir: str | os.PathLike,
    max_seq_len: int = CONTEXT_LENGTH,
    quant: Quant = "fp32",
    progress: Callable[[str], None] | None = None,
    power: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Path]:
    """Write the four planner graphs into `out_dir` with recipe `quant`; returns {graph name: .onnx path}.

    `power` maps the language model's linears to their inputs' mean squares, which weight
    int4-search's scales (planner_methods.PlannerCalibration measures the planner's own; see
    export/weight_scales.py); without it every channel weighs alike.
    `progress` receives one line per step. Graphs over EXTERNAL_DATA_BYTES of weights (the
    full-size fp32 decoder) keep them in a `<name>.onnx.data` file next to the graph.
    """
    _check_arguments(model, max_seq_len, quant, "load_planner(..., dtype=torch.float32) for the planner")
    searched = _SearchedInt4(model.language_model, power)
    return _write_graphs(_graphs(model, max_seq_len), out_dir, max_seq_len, quant, progress, searched)


def export_text_decoder_onnx(
    language_model: nn.Module,
    out_dir: str | os.PathLike,
    max_seq_len: int = CONTEXT_LENGTH,
    quant: Quant = "fp32",
    progress: Callable[[str], None] | None = None,
    power: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Path]:
    """Write token_embedding.onnx and text_decoder.onnx of a causal LM into `out_dir`; returns their paths.

    `language_model` is a transformers Qwen2/Llama-style `...ForCausalLM` in float32; the graphs,
    their I/O names, the recipes and `power` are the planner's (module docstring,
    `export_planner_onnx`), so `OnnxPlanner`'s `embed`/`decode` conventions apply to them.
    """
    _check_arguments(language_model, max_seq_len, quant, "dtype=torch.float32")
    graphs = _language_model_graphs(language_model, max_seq_len)
    return _write_graphs(graphs, out_dir, max_seq_len, quant, progress, _SearchedInt4(language_model, power))


def _check_arguments(model: nn.Module, max_seq_len: int, quant: str, how: str) -> None:
    if quant not in ONNX_RECIPES:
        raise InputError(f"unknown ONNX planner recipe {quant!r}; choose one of: {', '.join(ONNX_RECIPES)}")
    if not isinstance(max_seq_len, int) or max_seq_len < 2:
        raise InputError(f"max_seq_len must be an integer of at least 2, got {max_seq_len!r}")
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise InputError(f"export from float32 weights ({how}), not {dtype}")


def graph_files(directory: str | os.PathLike) -> dict[str, Path]:
    """Where `export_planner_onnx` writes each graph in `directory`: graph name -> `<name>.onnx`."""
    return {name: Path(directory) / f"{name}.onnx" for name in GRAPH_IO}


def _write_graphs(
    graphs: dict[str, _Graph],
    out_dir: str | os.PathLike,
    max_seq_len: int,
    quant: Quant,
    progress: Callable[[str], None] | None,
    searched: _SearchedInt4,
) -> dict[str, Path]:
    report = progress or (lambda message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    int4 = quant.startswith("int4")
    language = ("token_embedding", "text_decoder") if int4 else ("text_decoder",)
    quantized = () if quant == "fp32" else (*language, "vision_encoder", "retouch_head")
    # Everything is written to a scratch folder first, so a failed export leaves no partial set behind.
    with tempfile.TemporaryDirectory(prefix=".vera-onnx-", dir=out_dir) as scratch:
        scratch = Path(scratch)
        table = None
        if quant == "int4-search" and searched.tied:
            report("writing the tied embedding/output matrix (8-bit)")
            table = _write_tied_table(searched.head_weight, scratch / TIED_TABLE_FILE)
        for name, graph in graphs.items():
            final = graph_files(scratch)[name]
            exported = scratch / f"{name}.fp32.onnx" if name in quantized else final
            opset = INT4_TENSOR_OPSET if int4 and name == "token_embedding" else ONNX_OPSET
            metadata = {MAX_SEQ_LEN_KEY: str(max_seq_len)} if name == "text_decoder" else {}
            report(f"exporting {name} to ONNX (fp32)")
            _export(name, graph, exported, opset, metadata)
            if name in quantized:
                report(f"quantizing {name} ({quant})")
                with _step(f"quantizing the planner's {name} graph to {quant}"):
                    if name == "vision_encoder":
                        _quantize_vision_int8(exported, final, graph.module.vision_tower.patch_embed)
                    elif name == "retouch_head" or quant == "int8":
                        _quantize_int8(exported, final)
                    elif quant == "int4-search" and name == "text_decoder":
                        searched.quantize(exported, final, table)
                    elif table is not None:
                        _gather_tied_table(exported, final, table)
                    else:
                        _quantize_int4(exported, final, "Gather" if name == "token_embedding" else "MatMul")
        _move_or_drop(scratch / TIED_TABLE_FILE, out_dir)
        return {name: _move(path, out_dir) for name, path in graph_files(scratch).items() if name in graphs}


def _move(graph: Path, out_dir: Path) -> Path:
    """Move a graph and its external weights, if any, into out_dir (dropping stale weights of an older export)."""
    _move_or_drop(graph.with_name(graph.name + ".data"), out_dir)  # where the exporter and quantizers put them
    target = out_dir / graph.name
    os.replace(graph, target)
    return target


def _move_or_drop(source: Path, out_dir: Path) -> None:
    """Move `source` into out_dir if it was written; otherwise remove out_dir's stale file of that name."""
    target = out_dir / source.name
    if source.exists():
        os.replace(source, target)
    elif target.exists():
        target.unlink()


def weight_files(directory: str | os.PathLike) -> dict[str, Path]:
    """The weight files next to the graphs in `directory`, by bundle role: a large graph's
    `<name>.onnx.data` (\"<name> weights\") and int4-search's tied matrix (\"tied embedding\")."""
    found = {f"{name} weights": path.with_name(path.name + ".data") for name, path in graph_files(directory).items()}
    found["tied embedding"] = Path(directory) / TIED_TABLE_FILE
    return {role: path for role, path in found.items() if path.is_file()}


def _export(name: str, graph: _Graph, path: Path, opset: int, metadata: dict[str, str]) -> None:
    with torch.no_grad(), _step(f"exporting the planner's {name} graph to ONNX"):
        program = torch.onnx.export(
            graph.module,
            graph.inputs,
            dynamo=True,
            input_names=list(GRAPH_IO[name][0]),
            output_names=list(GRAPH_IO[name][1]),
            dynamic_shapes=graph.dynamic_shapes,
            opset_version=opset,
            verbose=False,
        )
    _gemm_to_matmul(program.model.graph)
    program.model.metadata_props.update(metadata)
    external = f"{path.name}.data" if _weight_bytes(program.model.graph) > EXTERNAL_DATA_BYTES else None
    ir.save(program.model, path, external_data=external)


def _weight_bytes(graph: ir.Graph) -> int:
    """Bytes of the initializers held in the graph (not those already in an external file)."""
    return sum(value.const_value.nbytes for value in graph.initializers.values()
               if value.const_value is not None and not isinstance(value.const_value, ir.ExternalTensor))


def _gemm_to_matmul(graph: ir.Graph) -> None:
    """Rewrite `Gemm(x, W, transB=1)` with a constant W as `MatMul(x, W.T)`, followed by `Add(b)` when
    the Gemm has a bias b, in place.

    The exporter writes each 2-D linear layer as a Gemm (the retouch head's), but ONNX Runtime's
    weight quantizers (MatMulNBits, dynamic int8) only take MatMul, which wants W as [in, out]:
    transpose it once here. ONNX Runtime fuses MatMul and Add again at load.
    """
    for node in list(graph):
        weight = node.inputs[1] if node.op_type == "Gemm" and node.domain == "" else None
        if weight is None or weight.const_value is None or len(weight.uses()) != 1:
            continue
        attrs = {name: attr.value for name, attr in node.attributes.items()}
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        if attrs.get("transA", 0) != 0 or attrs.get("transB", 0) != 1 or attrs.get("alpha", 1.0) != 1.0:
            continue
        if bias is not None and attrs.get("beta", 1.0) != 1.0:
            continue
        transposed = ir.Value(name=f"{weight.name}.T", const_value=ir.tensor(weight.const_value.numpy().T.copy()))
        graph.register_initializer(transposed)
        nodes = [ir.node("MatMul", [node.inputs[0], transposed], name=node.name)]
        if bias is not None:
            nodes.append(ir.node("Add", [nodes[0].outputs[0], bias], name=f"{node.name}.bias"))
        _replace_node(graph, node, nodes)


def _replace_node(graph: ir.Graph, node: ir.Node, replacement: ir.Node | Sequence[ir.Node]) -> None:
    """Put `replacement` (a node, or nodes whose last one gives the output) where `node` was, under its
    output name, and drop the initializers `node` read that nothing reads any more."""
    nodes = [replacement] if isinstance(replacement, ir.Node) else list(replacement)
    graph.insert_after(node, nodes)
    output_name = node.outputs[0].name
    ir.convenience.replace_all_uses_with(node.outputs[0], nodes[-1].outputs[0], replace_graph_outputs=True)
    inputs = [value for value in node.inputs if value is not None and value.is_initializer()]
    graph.remove(node, safe=True)
    for value in inputs:
        if not value.uses():
            graph.initializers.pop(value.name)
    nodes[-1].outputs[0].name = output_name  # keeps graph output names such as "logits"


# --- Quantization recipes -----------------------------------------------------------------------


def _quantize_int4(source: Path, destination: Path, op_type: Literal["MatMul", "Gather"]) -> None:
    """Block-wise 4-bit weights: MatMul -> MatMulNBits, or Gather -> GatherBlockQuantized.

    One op type per graph: asked for Gather, the quantizer moves a graph below opset 21 to 21
    (int4 tensors) without converting its ops. The embedding graph is exported at opset 21 for
    that reason; the decoder, quantized for MatMul only, keeps opset 18.
    """
    quantizer = _nbits_quantizer_class()(
        str(source),
        bits=4,
        block_size=INT4_BLOCK_SIZE,
        is_symmetric=INT4_SYMMETRIC,
        op_types_to_quantize=(op_type,),
        quant_axes=(("MatMul", 0), ("Gather", 1)),  # blocks run along the input (K) / hidden axis
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(destination), use_external_data_format=_too_big(quantizer.model.model))


class _SearchedInt4:
    """int4-search's decoder pass: each MatMul whose constant weight is one of the language
    model's linears becomes a MatMulNBits with searched int4 scales (lm_head: 8 bits)."""

    def __init__(self, language_model: nn.Module, power: Mapping[str, torch.Tensor] | None) -> None:
        self.language_model, self.power = language_model, power or {}
        self.head_weight = language_model.get_output_embeddings().weight.detach()
        self.tied = planner_methods.tied_embedding(language_model)

    def quantize(self, source: Path, destination: Path, table: _TiedTable | None) -> None:
        """Quantize the decoder graph `source` into `destination`; lm_head reads `table` when given."""
        head = self.language_model.get_output_embeddings()
        # The exported MatMul holds W.T of its linear: recognised by value, whatever the exporter named it.
        linears = {_digest(m.weight.detach().T.contiguous().numpy()): (name, m)
                   for name, m in self.language_model.named_modules() if isinstance(m, nn.Linear)}
        model = ir.load(source)
        for node in list(model.graph):
            weight = node.inputs[1] if node.op_type == "MatMul" and node.domain == "" and len(node.inputs) > 1 else None
            if weight is None or weight.const_value is None:
                continue
            found = linears.get(_digest(weight.const_value.numpy()))
            if found is None:
                continue
            name, module = found
            if module is head and table is not None:
                levels = table.levels(f"{weight.name}.q{TIED_TABLE_BITS}", (table.rows, table.blocks, INT4_BLOCK_SIZE))
                scales = table.scales(f"{weight.name}.scales", (table.rows * table.blocks,))
                _replace_with_matmul_nbits(model.graph, node, levels, scales, TIED_TABLE_BITS)
            else:
                bits = 8 if module is head else 4
                levels, scales = _block_quantize(module.weight.detach(), bits, self.power.get(name) if bits == 4 else None)
                prefix = weight.name
                _replace_with_matmul_nbits(model.graph, node, _initializer(f"{prefix}.q{bits}", levels),
                                           _initializer(f"{prefix}.scales", scales.reshape(-1)), bits)
        model.opset_imports["com.microsoft"] = 1
        _save(model, destination)


def _digest(array: np.ndarray) -> tuple[tuple[int, ...], str]:
    return array.shape, hashlib.sha256(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()


def _block_quantize(weight: torch.Tensor, bits: int, power: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric block-INT4_BLOCK_SIZE levels of a weight [N, K] as MatMulNBits stores them.

    Returns (levels [N, K / block, block * bits / 8] uint8 offset by 2^(bits-1), the default zero
    point of MatMulNBits and GatherBlockQuantized; scales [N, K / block] float32). 4-bit scales are
    searched against the input channels' mean squares `power`; 8-bit ones are largest / 127.
    """
    from .weight_scales import search_scales

    rows, columns = weight.shape
    blocks = weight.float().reshape(rows, columns // INT4_BLOCK_SIZE, INT4_BLOCK_SIZE)
    if bits == 4:
        scales = search_scales(weight, INT4_BLOCK_SIZE, power)
    else:
        scales = blocks.abs().amax(-1).clamp_min(1e-12) / 127
    offset = 1 << (bits - 1)
    levels = torch.clamp(torch.round(blocks / scales[..., None]), -offset, offset - 1) + offset
    levels = levels.to(torch.uint8).numpy()
    if bits == 4:  # two weights a byte, the first in the low nibble
        levels = levels[..., 0::2] | (levels[..., 1::2] << 4)
    return np.ascontiguousarray(levels), scales.numpy().astype(np.float32)


def _initializer(name: str, array: np.ndarray) -> ir.Value:
    return ir.Value(name=name, const_value=ir.tensor(np.ascontiguousarray(array)))


def _replace_with_matmul_nbits(graph: ir.Graph, node: ir.Node, levels: ir.Value, scales: ir.Value, bits: int) -> None:
    """MatMul(x, W.T) -> MatMulNBits(x, levels, scales): symmetric, block INT4_BLOCK_SIZE, no zero points."""
    columns, rows = node.inputs[1].const_value.shape  # the MatMul's W.T is [K inputs, N outputs]
    for value in (levels, scales):
        graph.register_initializer(value)
    attributes = {"K": columns, "N": rows, "bits": bits, "block_size": INT4_BLOCK_SIZE}
    if bits == 8:
        # ORT's 8-bit kernels need int8 activations (accuracy level 4, quantized per block of the
        # input); at the fp32 level 8-bit falls back to a path 60x slower here (329 vs 5.5 ms for
        # a 576 x 49,152 head, one token).
        attributes["accuracy_level"] = 4
    _replace_node(graph, node, ir.node("MatMulNBits", [node.inputs[0], levels, scales], domain="com.microsoft",
                                       name=node.name, attributes=attributes))


class _TiedTable(NamedTuple):
    """The tied embedding/output matrix in TIED_TABLE_FILE: 8-bit levels [rows, columns] at offset 0,
    then one float32 scale per block [rows, blocks] at `scales_offset`."""

    path: Path
    rows: int
    columns: int
    scales_offset: int

    @property
    def blocks(self) -> int:
        return self.columns // INT4_BLOCK_SIZE

    def levels(self, name: str, shape: tuple[int, ...]) -> ir.Value:
        return self._external(name, 0, self.rows * self.columns, ir.DataType.UINT8, shape)

    def scales(self, name: str, shape: tuple[int, ...]) -> ir.Value:
        return self._external(name, self.scales_offset, self.rows * self.blocks * 4, ir.DataType.FLOAT, shape)

    def _external(self, name: str, offset: int, length: int, dtype: ir.DataType, shape: tuple[int, ...]) -> ir.Value:
        # The location is relative to the graph, which is saved in the same folder as the table.
        tensor = ir.ExternalTensor(self.path.name, offset, length, dtype, shape=ir.Shape(shape), name=name,
                                   base_dir=self.path.parent)
        return ir.Value(name=name, const_value=tensor)


def _write_tied_table(weight: torch.Tensor, path: Path) -> _TiedTable:
    """Write the 8-bit tied matrix (levels, then scales, each section page-aligned) to `path`."""
    levels, scales = _block_quantize(weight, TIED_TABLE_BITS, None)
    scales_offset = -(-levels.nbytes // TIED_TABLE_ALIGNMENT) * TIED_TABLE_ALIGNMENT
    with open(path, "wb") as file:
        file.write(levels.tobytes())
        file.write(bytes(scales_offset - levels.nbytes))
        file.write(scales.tobytes())
    return _TiedTable(path, weight.shape[0], weight.shape[1], scales_offset)


def _gather_tied_table(source: Path, destination: Path, table: _TiedTable) -> None:
    """The embedding graph's Gather on the fp32 table -> GatherBlockQuantized on the tied 8-bit table."""
    model = ir.load(source)
    gathers = [node for node in model.graph if node.op_type == "Gather" and node.inputs[0].const_value is not None
               and tuple(node.inputs[0].shape) == (table.rows, table.columns)]
    if len(gathers) != 1:
        raise RuntimeError(f"expected one Gather on the [{table.rows}, {table.columns}] table, found {len(gathers)}")
    node = gathers[0]
    levels = table.levels("embedding.q8", (table.rows, table.columns))
    scales = table.scales("embedding.scales", (table.rows, table.blocks))
    for value in (levels, scales):
        model.graph.register_initializer(value)
    attributes = {"bits": TIED_TABLE_BITS, "block_size": INT4_BLOCK_SIZE, "gather_axis": 0, "quantize_axis": 1}
    _replace_node(model.graph, node, ir.node("GatherBlockQuantized", [levels, node.inputs[1], scales],
                                             domain="com.microsoft", name=node.name, attributes=attributes))
    model.opset_imports["com.microsoft"] = 1
    _save(model, destination)


def _save(model: ir.Model, destination: Path) -> None:
    """Save a rewritten graph: what it still reads from its fp32 source's external data (the norms'
    weights of a decoder over EXTERNAL_DATA_BYTES) is copied in, since that file is scratch; only the
    tied table stays shared. A graph still over the limit keeps its weights, the tied table included
    (onnx_ir moves them all), in `<name>.onnx.data`."""
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if isinstance(tensor, ir.ExternalTensor) and Path(tensor.location).name != TIED_TABLE_FILE:
            value.const_value = ir.tensor(tensor.numpy(), name=tensor.name)
    external = f"{destination.name}.data" if _weight_bytes(model.graph) > EXTERNAL_DATA_BYTES else None
    ir.save(model, destination, external_data=external)


def _nbits_quantizer_class() -> type:
    """Import `MatMulNBitsQuantizer`, undoing the root-logger setup its module does on import.

    That module calls `logging.basicConfig(level=INFO)`, which would flood every later export
    (and the caller's program) with the toolchains' INFO messages.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    root.setLevel(level)
    root.handlers[:] = handlers
    return MatMulNBitsQuantizer


def _quantize_int8(source: Path, destination: Path) -> None:
    """Per-channel int8 weights, activations quantized per call (MatMulInteger; fused at session load)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        destination,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        reduce_range=True,  # 7-bit weights: no int16 saturation on x86 without VNNI (module docstring)
        # int8 weights take a quarter of the fp32 bytes: the full-size decoder fits in one file again.
        use_external_data_format=_file_bytes(source) // 4 > EXTERNAL_DATA_BYTES,
    )


def _quantize_vision_int8(source: Path, destination: Path, stem: nn.Module) -> None:
    """The vision encoder of every quantized recipe (module docstring): its MatMuls as `_quantize_int8`
    writes them, then its convolutions by `_int8_convolutions`, but the depthwise ones and `stem`'s
    (the tower's patch embedding, recognised by the values of its weights) stay fp32."""
    matmuls = destination.with_name(f"{destination.stem}.matmuls.onnx")  # scratch, next to the destination
    _quantize_int8(source, matmuls)
    stem_weights = {_digest(conv.weight.detach().numpy()) for conv in stem.modules()
                    if isinstance(conv, nn.Conv2d) and conv.groups == 1}
    _int8_convolutions(matmuls, destination, stem_weights)


def _int8_convolutions(source: Path, destination: Path, fp32_weights: set[tuple[tuple[int, ...], str]]) -> None:
    """Each one-group Conv with a constant weight not in `fp32_weights` (by `_digest`) -> int8 dynamic
    activations x int8 weights per output channel, as ExecuTorch's 8da8w:

        q, s, z = DynamicQuantizeLinear(x)                        uint8, this call's range of x
        y = Cast(ConvInteger(q, W8, z, 128)) * (s * scale) + b    W8 = round(W / scale) + 128

    with one scale per output channel, its largest |weight| / 127. quantize_dynamic's own ConvInteger
    has one scale per weight tensor. The weights are symmetric, so one zero point (128) serves every
    channel, and uint8: ONNX Runtime's CPU ConvInteger takes int8 weights too, but ran 1.7-1.9x
    slower with them here for the same result.
    """
    model = ir.load(source)
    graph = model.graph
    kept = 0
    dense = [node for node in graph if node.op_type == "Conv" and node.domain == ""
             and node.attributes.get_int("group", 1) == 1  # depthwise convs stay fp32
             and all(value is None or value.const_value is not None for value in node.inputs[1:])]
    for node in dense:
        weight, bias = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None
        values = weight.const_value.numpy()
        if _digest(values) in fp32_weights:
            kept += 1
            continue
        scale = np.maximum(np.abs(values).reshape(len(values), -1).max(1), 1e-12) / 127
        levels = np.round(values / scale.reshape(-1, 1, 1, 1)) + 128  # in [1, 255]
        weight8 = _initializer(f"{weight.name}.u8", levels.astype(np.uint8))
        zero_point = _initializer(f"{weight.name}.zero_point", np.array(128, np.uint8))
        channel_scale = _initializer(f"{weight.name}.scale", scale.reshape(-1, 1, 1).astype(np.float32))
        for value in (weight8, zero_point, channel_scale):
            graph.register_initializer(value)
        name = node.name
        quantize = ir.node("DynamicQuantizeLinear", [node.inputs[0]], num_outputs=3, name=f"{name}.quantize_input")
        quantized, input_scale, input_zero_point = quantize.outputs
        attributes = {key: attribute.value for key, attribute in node.attributes.items()}
        conv = ir.node("ConvInteger", [quantized, weight8, input_zero_point, zero_point], attributes, name=name)
        total = ir.node("Cast", [conv.outputs[0]], {"to": ir.DataType.FLOAT}, name=f"{name}.cast")
        scales = ir.node("Mul", [input_scale, channel_scale], name=f"{name}.scales")
        output = ir.node("Mul", [total.outputs[0], scales.outputs[0]], name=f"{name}.rescale")
        nodes = [quantize, conv, total, scales, output]
        if bias is not None:
            channel_bias = _initializer(f"{bias.name}.channels", bias.const_value.numpy().reshape(-1, 1, 1))
            graph.register_initializer(channel_bias)
            nodes.append(ir.node("Add", [output.outputs[0], channel_bias], name=f"{name}.bias"))
        _replace_node(graph, node, nodes)
    if kept != len(fp32_weights):
        raise RuntimeError(f"expected {len(fp32_weights)} convolutions to keep fp32 in the vision graph, found {kept}")
    _save(model, destination)


def _file_bytes(graph: Path) -> int:
    weights = graph.with_name(graph.name + ".data")
    return graph.stat().st_size + (weights.stat().st_size if weights.exists() else 0)


def _too_big(model: onnx.ModelProto) -> bool:
    return sum(len(tensor.raw_data) for tensor in model.graph.initializer) > EXTERNAL_DATA_BYTES
