"""Export the planner as one ExecuTorch `.pte` that ExecuTorch's stock multimodal runner can drive.

Methods (ExecuTorch's multimodal names, `extension/llm/runner/constants.h`):

    vision_encoder(pixels [1,3,S,S] in [0,1])              -> image embeddings [1, N, H]
    token_embedding(ids [1,T] int64)                       -> embeddings [1, T, H]
    text_decoder(embeds [1,T,H], input_pos [T] int64)      -> logits [1, V] of the last position
    text_decoder_with_hidden(embeds, input_pos)            -> logits [1, V], final-norm hidden [1, H]
    retouch_head(hidden3 [1,3,H], mask [1,3])              -> latent [1, 3H]
    get_max_seq_len, get_max_context_len, get_bos_id, get_eos_ids, get_vocab_size,
    use_kv_cache, use_sdpa_with_kv_cache, enable_dynamic_shape   (constants the runner reads)

T is dynamic: up to `get_max_seq_len` tokens per decoder call (the image tokens or
vera_mobile.targets.MAX_CALL_TOKENS, whichever is more; longer prompts are prefilled in chunks,
as ExecuTorch's runners do) into a K/V cache of `get_max_context_len` positions. Why two decoder
methods: the stock runner's decode step aborts the process unless `text_decoder` returns exactly
one output (`MultimodalDecoderRunner::decode`:
"More then one output returned from executing LLM."), and our generation loop needs the hidden
state as well. Both methods are the same graph over the same K/V buffers, which are planned once
and shared between methods (`share_mutable_buffers`), so a sequence may mix them freely.

Recipes: `fp32`; `8da4w` (int8 dynamic activations x int4 grouped weights for every decoder
linear, lm_head included, with int8 per-row embeddings); `8da4w-emb4` (the same with int4 grouped
embeddings); `8da8w` (int8 per-channel weights, int8 embeddings); `8da4w-search` (as 8da4w-emb4,
with each group's scale searched against calibration activations instead of min/max:
export/weight_scales.py) and `8da4w-search-head8` (the same with an 8da8w lm_head). Weight-only
int8/int4 linears are not offered: this ExecuTorch lowers them without complaint and computes
garbage. Neither are int4 weights with zero points (torchao's asymmetric mapping: delegated
without complaint, output off by more than its own size) or negative scales (XNNPACK refuses the
method at load), which rules out llama.cpp's Q4_0 trick of a signed scale per block. The vision
encoder (FastViTHD + projector) is fp32 unless `vision="8da8w"`: int8 dynamic activations x int8
per-channel weights for every convolution and linear, through XNNPACK's PT2E quantizer (torchao's
linear configs would leave the convolutions, most of its weights, alone). The retouch head is fp32
with `fp32` and 8da8w with every quantized recipe. Quantized embeddings run on ExecuTorch's quantized kernels, which every runtime loading
such a program must register: `import executorch.kernels.quantized` in Python (the stock runner
included), the quantized ops library in an app's ExecuTorch build ("Missing operator:
quantized_decomposed::embedding_byte.out" otherwise). The decoder's K/V cache and attention run on
ExecuTorch's LLM kernels (`LlmKernelDecoder`), which a runtime registers the same way:
`import executorch.extension.llm.custom_ops.custom_ops` in Python, the LLM custom ops library in an
app's build (ExecuTorch's Android AAR has it).

With this `.pte` and `tokenizer.json`, the stock `MultimodalRunner` (executorch.extension.llm.runner)
generates our greedy text when given: inputs [text before `<image>`, the planner view as a float
[3,S,S] tensor in [0,1], text after]; `GenerationConfig(temperature=0.0, echo=False)` (defaults are
0.8 and True); `num_bos=0` (the default; Qwen2 has no BOS). It still differs from our loop in ways
an app must know: it emits the EOS token's text before stopping; its sampler only considers ids
below the tokenizer's vocabulary size (Qwen2 pads the embedding to 151936 rows: trained models
never pick the padding, random ones can); its `max_new_tokens` counts the EOS token; it prefills
each input separately (same positions, float rounding aside); it tokenizes text with its own C++
tokenizer (RE2 rejects the Qwen2 pattern's lookahead, so it falls back to PCRE2; the auto
prompt's ids still match ours); and it cannot gather the retouch hidden states, so the
latent needs our loop (or an app-side loop over `text_decoder_with_hidden`).

`export_text_decoder_executorch` writes the language model alone (`token_embedding`,
`text_decoder_with_hidden` and the runner constants) for any Qwen2/Llama-style causal LM, with the
same recipes; benchmarks/quant_fidelity.py uses it to measure the recipes on a pretrained model.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from vera_mobile.errors import InputError
from vera_mobile.models.kv_decoder import DecoderCore, rms_norm
from vera_mobile.models.planner import VeraPlanner
from vera_mobile.targets import CONTEXT_LENGTH, EXECUTORCH_GROUP_SIZE, MAX_CALL_TOKENS, ExecuTorchRecipe
from vera_mobile.targets import EXECUTORCH_RECIPES as RECIPES
from vera_mobile.targets import EXECUTORCH_VISION_RECIPES as VISION_RECIPES

from . import planner_methods
from .weight_scales import search_scales


@contextmanager
def _step(what: str, progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Report the export step, and name it in any exception from the (verbose, fast-changing) toolchains."""
    if progress is not None:
        progress(what)
    try:
        yield
    except Exception as exc:
        exc.add_note(f"vera-mobile: this happened while {what}")
        raise


# --- The programs --------------------------------------------------------------------------------


class LlmKernelDecoder(nn.Module):
    """The Qwen2 decoder on ExecuTorch's LLM kernels: forward(embeds [1,T,H], input_pos [T]) -> (logits, hidden).

    K/V live in buffers [1, max_seq_len, kv_heads, d] that `llama::update_cache` writes in place at
    `input_pos[0]`, and `llama::custom_sdpa` attends, causally, to the positions written so far
    only. The plain form (models/kv_decoder.py's `StaticCacheDecoder`) attends over every cache slot
    with a mask, outside XNNPACK: the kernels decode about twice as fast at full size
    (benchmarks/RESULTS.md, "ExecuTorch's LLM kernels for the decoder's cache and attention"). The
    positions of one call must be consecutive (ours and the stock runner's always are). A runtime
    must register the kernels (module docstring).
    """

    def __init__(self, language_model: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (defines llama:: ops for tracing)

        self.core = DecoderCore(language_model, max_seq_len)
        shape = (1, max_seq_len, self.core.num_kv_heads, self.core.head_dim)
        dtype = self.core.embed_tokens.weight.dtype
        for index in range(len(self.core.layers)):
            self.register_buffer(f"k_cache_{index}", torch.zeros(shape, dtype=dtype), persistent=False)
            self.register_buffer(f"v_cache_{index}", torch.zeros(shape, dtype=dtype), persistent=False)

    def forward(self, embeds: torch.Tensor, input_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        core = self.core
        x = embeds[0]
        length = x.shape[0]
        cos, sin = core.rope(input_pos)
        start = input_pos[0].item()
        torch._check(start >= 0)
        torch._check(start < core.max_seq_len)
        for index, layer in enumerate(core.layers):
            h = rms_norm(x, layer.input_layernorm.weight, core.eps)
            q, k, v = core.project_qkv(layer, h, cos, sin)  # [heads, T, d]; the kernels take [1, T, heads, d]
            k_cache, v_cache = getattr(self, f"k_cache_{index}"), getattr(self, f"v_cache_{index}")
            torch.ops.llama.update_cache(k.transpose(0, 1)[None], k_cache, start)
            torch.ops.llama.update_cache(v.transpose(0, 1)[None], v_cache, start)
            attention = torch.ops.llama.custom_sdpa(q.transpose(0, 1)[None], k_cache, v_cache, start, None, 0.0, True)
            x = core.block(layer, x, attention[0].reshape(length, -1))
        return core.finish(x)


class TextDecoderProgram(nn.Module):
    """The decoder, returning logits only or logits and hidden state.

    Both variants keep the decoder under the same attribute name, so their K/V buffers have the
    same fully qualified names: that is what lets ExecuTorch plan them as one shared state.
    """

    def __init__(self, decoder: LlmKernelDecoder, with_hidden: bool) -> None:
        super().__init__()
        self.decoder, self.with_hidden = decoder, with_hidden

    def forward(self, embeds: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        logits, hidden = self.decoder(embeds, input_pos)
        return (logits, hidden) if self.with_hidden else logits


class _Program(NamedTuple):
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]  # example inputs: they fix the static shapes
    dynamic_shapes: Any = None
    strict: bool = False


# --- Quantization --------------------------------------------------------------------------------


def _check_group_size(language_model: nn.Module, group_size: int | None) -> None:
    """Grouped int4 weights need every linear's input width to be a multiple of the group size."""
    if group_size is None:  # per channel: any width
        return
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size <= 0:
        raise InputError(f"group_size must be a positive integer, got {group_size!r}")
    widths = {m.in_features for m in language_model.modules() if isinstance(m, nn.Linear)}
    bad = sorted(w for w in widths if w % group_size)
    if bad:
        raise InputError(
            f"group_size {group_size} does not divide the input width(s) {bad} of the language model's "
            "linear layers; choose a divisor such as 32"
        )


def quantize_language_model(
    language_model: nn.Module,
    recipe: ExecuTorchRecipe,
    group_size: int | None,
    power: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """A quantized copy of the Qwen2 model (the caller's model is left untouched).

    `group_size` is the int4 group width; None stores int4 weights per channel (one scale per
    output row of a linear, per row of the embedding) instead of per group. `power` maps the
    linears' names in `language_model` to their inputs' mean squares (weight_scales.input_power
    over calibration inputs), which weight the scale search of a "search" recipe (see
    export/weight_scales.py); without it the search weighs every channel alike.
    """
    if recipe.linear is None and recipe.embedding_bits is None:
        return language_model
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import (
        Int8DynamicActivationIntxWeightConfig,
        IntxWeightOnlyConfig,
        quantize_,
    )

    if recipe.linear == "8da4w" or recipe.embedding_bits == 4:
        _check_group_size(language_model, group_size)
    int4_granularity = PerAxis(0) if group_size is None else PerGroup(group_size)
    quantized = copy.deepcopy(language_model)
    if recipe.embedding_bits is not None:
        for module in quantized.modules():
            if isinstance(module, nn.Embedding):
                # padding_idx only masks a row's gradient; left set (Llama configs name a pad token), the
                # embedding op keeps it and ExecuTorch's quantized-embedding fusion no longer matches.
                module.padding_idx = None
        # Weight-only is right for a lookup table: no matmul, the kernel dequantizes the rows it gathers.
        bits = recipe.embedding_bits
        is_embedding = lambda module, _: isinstance(module, nn.Embedding)  # noqa: E731
        if bits == 4 and recipe.scales == "search":
            quantize_int4_searched(quantized, is_embedding, group_size, {}, activations=False)
        else:
            config = IntxWeightOnlyConfig(
                weight_dtype=getattr(torch, f"int{bits}"),
                granularity=PerAxis(0) if bits == 8 else int4_granularity,
            )
            quantize_(quantized, config, filter_fn=is_embedding)
    head = quantized.get_output_embeddings()
    for linear, chosen in ((recipe.head, lambda m, _: m is head), (recipe.linear, lambda m, _: isinstance(m, nn.Linear))):
        if linear is None:
            continue
        unquantized = lambda m, fqn, chosen=chosen: chosen(m, fqn) and not _is_quantized(m)  # noqa: E731
        if linear == "8da4w" and recipe.scales == "search":
            quantize_int4_searched(quantized, unquantized, group_size, power or {}, activations=True)
            continue
        int4 = linear == "8da4w"
        config = Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4 if int4 else torch.int8,
            weight_granularity=int4_granularity if int4 else PerAxis(0),
        )
        quantize_(quantized, config, filter_fn=unquantized)
    return quantized


def _is_quantized(module: nn.Module) -> bool:
    return type(module.weight) is not nn.Parameter or type(module.weight.data) is not torch.Tensor


def quantize_int4_searched(
    model: nn.Module,
    chosen: Callable[[nn.Module, str], bool],
    group_size: int | None,
    power: Mapping[str, torch.Tensor],
    activations: bool,
) -> None:
    """Give each chosen module an int4 weight with searched group scales (in place).

    `activations`: the weight of an 8da4w linear (int8 dynamic activations); otherwise weight-only
    (the embedding). `power` maps linear names to their inputs' mean squares.
    """
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import IntxUnpackedToInt8Tensor

    for name, module in list(model.named_modules()):
        if not chosen(module, name):
            continue
        weight = module.weight.detach()
        group = group_size or weight.shape[1]
        scale = search_scales(weight, group, power.get(name)).to(weight.dtype)
        packed = IntxUnpackedToInt8Tensor.from_hp(
            weight, (1, group), torch.int4,
            activation_quantization="int8_asym_per_token" if activations else None,
            intx_choose_qparams_algorithm=None,
            custom_scale=scale,
            custom_zero_point=torch.zeros_like(scale, dtype=torch.int8),
        )
        module.weight = nn.Parameter(packed, requires_grad=False)


def quantize_retouch_head(head: nn.Module) -> nn.Module:
    """A copy of the retouch head with 8da8w linears (int8 per-channel weights, int8 dynamic
    activations): 9 M parameters, a quarter of their fp32 size, run once per photo."""
    from torchao.quantization.granularity import PerAxis
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig, quantize_

    quantized = copy.deepcopy(head)
    config = Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    quantize_(quantized, config, filter_fn=lambda module, _: isinstance(module, nn.Linear))
    return quantized


def quantize_vision_encoder(program: nn.Module, pixels: torch.Tensor) -> torch.fx.GraphModule:
    """The vision encoder with int8 dynamic activations x int8 per-channel weights (convs and linears)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    with torch.no_grad():
        graph = prepare_pt2e(torch.export.export(program, (pixels,)).module(), quantizer)
        graph(pixels)  # one pass lets the weight observers see the weights; activations are quantized at run time
        return convert_pt2e(graph)


# --- Export ----------------------------------------------------------------------------------------


def _metadata(model: VeraPlanner, max_seq_len: int, max_call_len: int) -> dict[str, object]:
    """The constant methods ExecuTorch's LLM runners read (`get_llm_metadata`, `get_eos_ids`).

    In ExecuTorch's convention `get_max_seq_len` bounds the tokens of one decoder call (runners
    prefill longer prompts in chunks) and `get_max_context_len` the K/V cache.
    """
    text = model.config.text
    eos = list(model.config.eos_token_ids)
    if not eos:
        raise InputError("the checkpoint's config names no eos_token_id; generation needs one to stop")
    return {
        "get_max_seq_len": max_call_len,
        "get_max_context_len": max_seq_len,
        # Read only when a runner is asked to prepend BOS (num_bos > 0); Qwen2 prompts start without one.
        "get_bos_id": int(text.get("bos_token_id", -1)),
        "get_eos_ids": eos,
        "get_vocab_size": int(text["vocab_size"]),
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": True,  # llama::custom_sdpa over llama::update_cache's buffers
        "enable_dynamic_shape": True,
    }


def _export_programs(
    model: VeraPlanner,
    language_model: nn.Module,
    vision: str,
    max_seq_len: int,
    max_call_len: int,
    head: nn.Module,
    progress: Callable[[str], None] | None,
) -> dict[str, torch.export.ExportedProgram]:
    vision_encoder = planner_methods.vision_encoder(model)
    if vision == "8da8w":
        with _step("quantizing the vision encoder (8da8w)", progress):
            quantized = quantize_vision_encoder(vision_encoder.module, *vision_encoder.inputs)
        vision_encoder = planner_methods.vision_encoder(model, quantized)
    retouch_head = planner_methods.retouch_head(model, head)
    text = _language_model_programs(
        language_model, max_seq_len, ("text_decoder", "text_decoder_with_hidden"), max_call_len
    )
    programs = {
        "vision_encoder": _Program(vision_encoder.module, vision_encoder.inputs),
        **text,
        "retouch_head": _Program(retouch_head.module, retouch_head.inputs),
    }
    return _run_torch_export(programs, "planner", progress)


def _language_model_programs(
    language_model: nn.Module, max_seq_len: int, decoders: tuple[str, ...], max_call_len: int
) -> dict[str, _Program]:
    """token_embedding and the named decoder methods ("text_decoder", "text_decoder_with_hidden").

    A decoder call takes at most `max_call_len` tokens: memory planning sizes the activations for
    the largest call, so this bound, not the cache length, sets most of the decoder's working memory.
    """
    from torch.export import Dim

    seq = Dim("seq", min=1, max=max_call_len)
    hidden = language_model.config.hidden_size
    decoder = LlmKernelDecoder(language_model, max_seq_len).eval()
    decoder_inputs = (torch.zeros(1, 2, hidden), torch.arange(2))
    decoder_shapes = ({1: seq}, {0: seq})
    embedding = planner_methods.token_embedding(language_model, max_seq_len)
    programs = {"token_embedding": _Program(embedding.module, embedding.inputs, embedding.dynamic_shapes)}
    for name in decoders:
        # strict=True for the K/V-cache decoder: the tracing mode this project validated for in-place buffer writes.
        programs[name] = _Program(
            TextDecoderProgram(decoder, name == "text_decoder_with_hidden").eval(),
            decoder_inputs,
            decoder_shapes,
            strict=True,
        )
    return programs


def _run_torch_export(
    programs: dict[str, _Program], what: str, progress: Callable[[str], None] | None
) -> dict[str, torch.export.ExportedProgram]:
    exported = {}
    for name, program in programs.items():
        with torch.no_grad(), _step(f"running torch.export on the {what}'s {name} method", progress):
            exported[name] = torch.export.export(
                program.module, program.inputs, dynamic_shapes=program.dynamic_shapes, strict=program.strict
            )
    return exported


def export_planner_executorch(
    model: VeraPlanner,
    path: str | os.PathLike,
    recipe: str = "fp32",
    max_seq_len: int = CONTEXT_LENGTH,
    group_size: int | None = EXECUTORCH_GROUP_SIZE,
    progress: Callable[[str], None] | None = None,
    vision: str = "fp32",
    max_call_len: int | None = None,
    power: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write the planner `.pte` (methods in the module docstring) lowered to XNNPACK; returns its path.

    `recipe` sets the language model's weights (and, for a quantized recipe, the retouch head's:
    8da8w), `vision` the vision encoder's ("fp32" or "8da8w"). `group_size` is the int4 group
    width (8da4w linears, 4-bit embeddings; None: per channel); int8 weights are per row.
    `max_seq_len` is the K/V cache length, `max_call_len` the most tokens one decoder call takes
    (default: the image tokens or MAX_CALL_TOKENS, whichever is more, so the stock runner can
    prefill an image in one call). `power` weights a "search" recipe's scales
    (`quantize_language_model`; planner_methods.PlannerCalibration measures the planner's own).
    `progress` receives a line per export step. The file is written only once complete.
    """
    _check_arguments(recipe, max_seq_len)
    if vision not in VISION_RECIPES:
        raise InputError(f"unknown vision recipe {vision!r}; choose one of: {', '.join(VISION_RECIPES)}")
    max_call_len = _call_length(max_call_len, max_seq_len, model.config.vision.num_patches)
    metadata = _metadata(model, max_seq_len, max_call_len)
    model = model.eval()
    with _step(f"quantizing the language model ({recipe})", progress):
        language_model = quantize_language_model(model.language_model, RECIPES[recipe], group_size, power)
        head = quantize_retouch_head(model.retouch_head) if RECIPES[recipe].linear else model.retouch_head
    exported = _export_programs(model, language_model, vision, max_seq_len, max_call_len, head, progress)
    return _lower_and_write(exported, metadata, path, "planner", progress)


def _call_length(max_call_len: int | None, max_seq_len: int, image_tokens: int = 0) -> int:
    if max_call_len is None:
        return min(max_seq_len, max(MAX_CALL_TOKENS, image_tokens))
    if not isinstance(max_call_len, int) or isinstance(max_call_len, bool) or not 2 <= max_call_len <= max_seq_len:
        raise InputError(f"max_call_len must be an integer from 2 to max_seq_len ({max_seq_len}), got {max_call_len!r}")
    return max_call_len


def export_text_decoder_executorch(
    language_model: nn.Module,
    path: str | os.PathLike,
    recipe: str = "fp32",
    max_seq_len: int = CONTEXT_LENGTH,
    group_size: int | None = EXECUTORCH_GROUP_SIZE,
    progress: Callable[[str], None] | None = None,
    power: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a causal LM's decoder alone as a `.pte` lowered to XNNPACK; returns its path.

    `language_model` is a transformers Qwen2/Llama-style `...ForCausalLM` (what
    models/kv_decoder.py reads: `model.embed_tokens`, `model.layers`, `model.norm`, `lm_head`).
    Methods: `token_embedding` and `text_decoder_with_hidden`, as in the planner program, and the
    runner constants `get_max_seq_len`, `get_max_context_len`, `get_vocab_size`, `get_bos_id`
    and `get_eos_ids` (the last two only where the model's config names them). `recipe` and
    `group_size` and `power` as in `export_planner_executorch`, except that `group_size=None` stores int4
    weights per channel. The caller's model is not modified.
    """
    _check_arguments(recipe, max_seq_len)
    config = language_model.config
    metadata: dict[str, object] = {
        "get_max_seq_len": _call_length(None, max_seq_len),
        "get_max_context_len": max_seq_len,
        "get_vocab_size": int(config.vocab_size),
    }
    if getattr(config, "bos_token_id", None) is not None:
        metadata["get_bos_id"] = int(config.bos_token_id)
    eos = getattr(config, "eos_token_id", None)
    if eos is not None:
        metadata["get_eos_ids"] = [int(token) for token in ([eos] if isinstance(eos, int) else eos)]
    language_model = language_model.eval()
    with _step(f"quantizing the language model ({recipe})", progress):
        quantized = quantize_language_model(language_model, RECIPES[recipe], group_size, power)
    programs = _language_model_programs(
        quantized, max_seq_len, ("text_decoder_with_hidden",), _call_length(None, max_seq_len)
    )
    exported = _run_torch_export(programs, "text decoder", progress)
    return _lower_and_write(exported, metadata, path, "text decoder", progress)


def _check_arguments(recipe: str, max_seq_len: int) -> None:
    if recipe not in RECIPES:
        raise InputError(f"unknown ExecuTorch recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    if not isinstance(max_seq_len, int) or isinstance(max_seq_len, bool) or max_seq_len < 2:
        raise InputError(f"max_seq_len must be an integer >= 2, got {max_seq_len!r}")


def _lower_and_write(
    exported: dict[str, torch.export.ExportedProgram],
    metadata: dict[str, object],
    path: str | os.PathLike,
    what: str,
    progress: Callable[[str], None] | None,
) -> Path:
    """Lower the exported methods to XNNPACK, plan memory (K/V buffers shared) and write the `.pte`."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass

    with torch.no_grad(), _step(f"lowering the {what} to ExecuTorch with XNNPACK", progress):
        edge = to_edge_transform_and_lower(
            exported,
            partitioner=[XnnpackPartitioner()],
            # torchao's quantized graphs keep aten._to_copy, which the dim-order IR check rejects.
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
            constant_methods=metadata,
        )
    with torch.no_grad(), _step(f"planning memory and serializing the {what} program", progress):
        program = edge.to_executorch(
            ExecutorchBackendConfig(
                memory_planning_pass=MemoryPlanningPass(share_mutable_buffers=True),
                # Keeps in-place buffer writes in place instead of copying the buffer.
                run_reinplace_pass=True,
                # Fuses torchao's dequantize + embedding into ExecuTorch's quantized embedding kernels
                # (torchao::dequantize_affine itself has no ExecuTorch kernel).
                do_quant_fusion_and_const_prop=True,
            )
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(program.buffer)
    partial.replace(path)  # no half-written .pte under the real name
    return path
