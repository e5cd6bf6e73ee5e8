"""Export targets, quantization recipes and sequence lengths: the facts every exporter, the
manifest writer, the CLI and the docs share, written once.

Plain data and no imports beyond the standard library, so the runtime may read it too without
pulling in the toolchain.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPORT_TARGETS = ("executorch", "onnx", "coreml")  # the default set
# Opt-in: the Core ML packages upstream's own iOS/macOS app loads, under its names and shapes
# (docs/upstream-compatibility.md, "Upstream's iOS app").
UPSTREAM_APP_TARGET = "coreml-upstream-app"
OPTIONAL_EXPORT_TARGETS = (UPSTREAM_APP_TARGET,)

# The planner's methods with their input and output names, the same on every target (ONNX's
# decoder adds past/present K/V tensors, Core ML's keeps its cache in states).
PLANNER_METHOD_IO = {
    "vision_encoder": (("pixels",), ("image_embeds",)),
    "token_embedding": (("input_ids",), ("inputs_embeds",)),
    "text_decoder": (("inputs_embeds", "input_pos"), ("logits", "hidden")),
    "retouch_head": (("hidden3", "mask"), ("latent",)),
}

# The renderer's two programs with their input and output names, the same on every target:
# `condition` once per photo, `render_points` once per tile of pixels.
RENDERER_METHOD_IO = {
    "condition": (("latent", "mask"), ("biases",)),
    "render_points": (("points", "biases"), ("colors",)),
}

# --- Sequence lengths ------------------------------------------------------------------------------

# K/V cache slots of every exported planner (ExecuTorch, ONNX, Core ML): 256 image tokens, a
# ~150-token prompt and up to 1024 new tokens, with room to spare. ExecuTorch calls it
# get_max_context_len.
CONTEXT_LENGTH = 2048
# The most tokens one ExecuTorch decoder call takes (get_max_seq_len in ExecuTorch's runners), at
# least the image tokens: longer prompts are prefilled in chunks. It bounds the decoder's working
# memory. ONNX and Core ML decoders take any call length up to CONTEXT_LENGTH.
MAX_CALL_TOKENS = 256

# --- Bundle precision ------------------------------------------------------------------------------

# `vera-mobile export --quant`: the planner's weights. The renderer and reference encoder stay float.
PRECISIONS = ("fp32", "int4", "int8")
DEFAULT_PRECISION = "int8"
# The one measured claim behind the default (benchmarks/RESULTS.md, "Quantization fidelity").
INT8_FIDELITY_CLAIM = (
    "int8 stays within 10 % of fp32 perplexity on a real pretrained LM on every runtime (SmolLM2-135M: "
    "ExecuTorch 8da8w +0.3 %, ONNX dynamic int8 +3.6 %); int4, searched scales with an int8 lm_head, "
    "costs +11.7 % on ExecuTorch and +7.8 % on ONNX"
)

# How each precision is realised per target. ExecuTorch needs dynamic-activation recipes (its
# weight-only int4/int8 lowering computes garbage); ONNX Runtime has int4 MatMulNBits; Core ML
# computes in fp16 (its states are fp16 only).
PLANNER_RECIPES = {
    "executorch": {"fp32": "fp32", "int4": "8da4w-search-head8", "int8": "8da8w"},
    "onnx": {"fp32": "fp32", "int4": "int4-search", "int8": "int8"},
    "coreml": {"fp32": "fp16", "int4": "int4-block32-head8", "int8": "int8-channel"},
}

# --- ExecuTorch (XNNPACK) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecuTorchRecipe:
    """How an ExecuTorch planner stores its language model (None: fp32).

    `linear` covers every linear of the decoder, lm_head included unless `head` says otherwise:
    "8da4w" / "8da8w" = int8 dynamic activations with int4 (grouped) / int8 (per channel) weights.
    `embedding_bits` is the token embedding, weight-only: 8 per row or 4 per group. `scales` is how
    the int4 groups get their scales: "minmax" (largest weight / 7.5) or "search" (the scale with
    the least squared error, weighted by calibration inputs: export/weight_scales.py). Whenever
    `linear` is set, the retouch head's linears are 8da8w too; the vision encoder has its own
    choice (EXECUTORCH_VISION_RECIPES).
    """

    linear: str | None
    embedding_bits: int | None
    scales: str = "minmax"
    head: str | None = None  # lm_head's own linear recipe; None: as `linear`

    def layer_types(self) -> dict[str, str]:
        """The recipe per layer type, as the manifest records it."""
        if self.linear is None and self.embedding_bits is None:
            return {"decoder_linears": "fp32", "lm_head": "fp32", "token_embedding": "fp32", "retouch_head": "fp32"}
        int4_scales = f", {self.scales} scales"
        linear = self.linear + (int4_scales if self.linear == "8da4w" else "")
        head = self.head or self.linear
        embedding = f"int{self.embedding_bits} weight-only" + (int4_scales if self.embedding_bits == 4 else "")
        return {
            "decoder_linears": linear,
            "lm_head": head + (int4_scales if head == "8da4w" else ""),
            "token_embedding": embedding,
            "retouch_head": "8da8w",
        }


EXECUTORCH_RECIPES = {
    "fp32": ExecuTorchRecipe(linear=None, embedding_bits=None),
    "8da4w": ExecuTorchRecipe(linear="8da4w", embedding_bits=8),
    "8da4w-emb4": ExecuTorchRecipe(linear="8da4w", embedding_bits=4),
    "8da8w": ExecuTorchRecipe(linear="8da8w", embedding_bits=8),
    # Searched int4 scales (benchmarks/RESULTS.md, "4-bit scales"): everything 4-bit, or lm_head at int8.
    "8da4w-search": ExecuTorchRecipe(linear="8da4w", embedding_bits=4, scales="search"),
    "8da4w-search-head8": ExecuTorchRecipe(linear="8da4w", embedding_bits=4, scales="search", head="8da8w"),
}
SCALE_RULES = ("minmax", "search")
EXECUTORCH_VISION_RECIPES = ("fp32", "8da8w")  # 8da8w: int8 dynamic activations x int8 per-channel convs/linears
# Group 32: on SmolLM2-135M it matched group 64's perplexity with a closer eager twin (benchmarks/RESULTS.md).
EXECUTORCH_GROUP_SIZE = 32
# The ExecuTorch export options of each bundle precision.
EXECUTORCH_OPTIONS: dict[str, dict[str, object]] = {
    "fp32": {},
    "int4": {"group_size": EXECUTORCH_GROUP_SIZE, "vision": "8da8w"},
    "int8": {"vision": "8da8w"},
}

# --- ONNX Runtime ----------------------------------------------------------------------------------

ONNX_INT4_BLOCK_SIZE = 32
# Dynamic int8 as ONNX Runtime's quantize_dynamic writes it: weights per output channel, 7 bits wide
# (no int16 saturation on x86 CPUs without VNNI), activations quantized to uint8 at each call.
ONNX_DYNAMIC_INT8 = "dynamic int8 (per-channel QInt8 weights, 7-bit range)"
# Every quantized recipe's vision encoder (export/planner_onnx.py's docstring says why).
ONNX_VISION_INT8 = ("dynamic int8: convs as ConvInteger with per-output-channel uint8 weights (zero point 128), "
                    "but the stem's and the depthwise ones fp32; MatMuls " + ONNX_DYNAMIC_INT8)
_ONNX_INT4 = f"uint4 MatMulNBits, block {ONNX_INT4_BLOCK_SIZE}, asymmetric"
# Recipe -> what it does to each layer type of the planner (the manifest's `quantization.planner_layers`).
ONNX_RECIPES = {
    "fp32": {"vision_encoder": "fp32", "decoder_linears": "fp32", "lm_head": "fp32", "token_embedding": "fp32",
             "retouch_head": "fp32"},
    "int4": {"vision_encoder": ONNX_VISION_INT8, "decoder_linears": _ONNX_INT4, "lm_head": _ONNX_INT4,
             "token_embedding": f"uint4 GatherBlockQuantized, block {ONNX_INT4_BLOCK_SIZE}, asymmetric",
             "retouch_head": ONNX_DYNAMIC_INT8},
    "int8": {"vision_encoder": ONNX_VISION_INT8, "decoder_linears": ONNX_DYNAMIC_INT8, "lm_head": ONNX_DYNAMIC_INT8,
             "token_embedding": "fp32", "retouch_head": ONNX_DYNAMIC_INT8},
    "int4-search": {
        "vision_encoder": ONNX_VISION_INT8,
        "decoder_linears": f"symmetric uint4 MatMulNBits, block {ONNX_INT4_BLOCK_SIZE}, scales searched as "
                           "ExecuTorch's 8da4w-search",
        "lm_head": f"8-bit MatMulNBits, block {ONNX_INT4_BLOCK_SIZE}, int8 activations",
        "token_embedding": "tied to lm_head: its 8-bit table, stored once (GatherBlockQuantized); untied: as in int4",
        "retouch_head": ONNX_DYNAMIC_INT8,
    },
}

# The planner recipes whose int4 scales are searched against calibration activations
# (export/weight_scales.py): exporting them needs the calibration prompts.
SEARCHED_SCALE_RECIPES = {
    "executorch": frozenset(name for name, recipe in EXECUTORCH_RECIPES.items() if recipe.scales == "search"),
    "onnx": frozenset({"int4-search"}),
    "coreml": frozenset(),
}

# --- Core ML ---------------------------------------------------------------------------------------

COREML_BLOCK_SIZE = 32  # int4-block32: input channels per scale
COREML_PALETTE_GROUP = 16  # palettize4: output channels per look-up table
_COREML_INT4 = f"symmetric int4, one fp16 scale per block of {COREML_BLOCK_SIZE} input channels"
_COREML_INT8 = "symmetric int8, one fp16 scale per output channel"
_COREML_PALETTE = f"4-bit look-up tables, one 16-entry table per group of {COREML_PALETTE_GROUP} output channels"
# A token embedding tied to lm_head is the head's matrix, stored once in the language-model package.
_COREML_TIED = "tied to lm_head: the head's stored weights; untied: "


def _coreml_layers(linears: str, head: str | None = None) -> dict[str, str]:
    """Recipe per layer type: weights only; the vision encoder and retouch head stay fp16."""
    return {"vision_encoder": "fp16", "decoder_linears": linears, "lm_head": head or linears,
            "token_embedding": _COREML_TIED + linears, "retouch_head": "fp16"}


# Recipe -> what it does to each layer type (the manifest's `quantization.planner_layers`). Norms and
# RoPE tables stay fp16; compute is fp16 throughout.
COREML_RECIPES = {
    "fp16": _coreml_layers("fp16"),
    "int4-block32": _coreml_layers(_COREML_INT4),
    "int4-block32-head8": _coreml_layers(_COREML_INT4, head=_COREML_INT8),
    "palettize4": _coreml_layers(_COREML_PALETTE),
    "int8-channel": _coreml_layers(_COREML_INT8),
}
# Precisions of the Core ML renderer packages; inputs and outputs stay float32 at either.
COREML_RENDERER_PRECISIONS = ("float16", "float32")

# --- Upstream's app (ml-veraretouch) --------------------------------------------------------------

# Package (file stem) -> (input names, output names), as upstream's Swift code looks them up.
# Every input and output is a float32 multi-array.
UPSTREAM_APP_PACKAGES = {
    "fastvithd": (("images",), ("image_features",)),
    "retouch_head": (("input",), ("output",)),
    "retouch_decoder": (("input_img", "retouch_latent"), ("output",)),
}
UPSTREAM_APP_TILE = 512  # the decoder's fixed square tile, in pixels per side

# What the manifest says about the float components.
RENDERER_PRECISION_NOTE = "fp32 (ExecuTorch, ONNX); fp16 and fp32 (Core ML)"
REFERENCE_PRECISION_NOTE = "fp32 (ExecuTorch, ONNX); fp16 (Core ML)"

# --- Loading a checkpoint in PyTorch -----------------------------------------------------------------

CHECKPOINT_DTYPES = ("float32", "bfloat16", "float16")
