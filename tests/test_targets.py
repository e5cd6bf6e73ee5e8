"""vera_mobile.targets: the export facts in one torch-free place, consistent with what uses them."""

import re
import subprocess
import sys
from pathlib import Path

from vera_mobile import targets

ROOT = Path(__file__).resolve().parents[1]


def test_importing_targets_pulls_in_nothing_heavy():
    code = ("import sys, vera_mobile.targets; "
            "print(sorted(m for m in ('torch', 'numpy', 'export', 'executorch', 'onnx', 'coremltools') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_every_bundle_precision_names_a_recipe_of_every_target():
    recipes = {"executorch": targets.EXECUTORCH_RECIPES, "onnx": targets.ONNX_RECIPES, "coreml": targets.COREML_RECIPES}
    assert set(targets.PLANNER_RECIPES) == set(targets.EXPORT_TARGETS) == set(recipes)
    for target, by_precision in targets.PLANNER_RECIPES.items():
        assert set(by_precision) == set(targets.PRECISIONS)
        assert set(by_precision.values()) <= set(recipes[target]), target
    assert set(targets.EXECUTORCH_OPTIONS) == set(targets.PRECISIONS)
    assert targets.DEFAULT_PRECISION in targets.PRECISIONS
    assert all(o.get("vision", "fp32") in targets.EXECUTORCH_VISION_RECIPES for o in targets.EXECUTORCH_OPTIONS.values())
    assert targets.MAX_CALL_TOKENS <= targets.CONTEXT_LENGTH


def test_every_executorch_recipe_says_what_each_layer_type_gets():
    for name, recipe in targets.EXECUTORCH_RECIPES.items():
        assert recipe.scales in targets.SCALE_RULES, name
        layers = recipe.layer_types()
        assert set(layers) == {"decoder_linears", "lm_head", "token_embedding", "retouch_head"}, name
        assert ("search scales" in layers["decoder_linears"]) == (recipe.scales == "search" and recipe.linear == "8da4w")
    head8 = targets.EXECUTORCH_RECIPES["8da4w-search-head8"].layer_types()
    assert head8["lm_head"] == "8da8w" and head8["decoder_linears"] == "8da4w, search scales"


def test_every_onnx_recipe_says_what_each_layer_type_gets():
    executorch_layers = set(targets.EXECUTORCH_RECIPES["fp32"].layer_types()) | {"vision_encoder"}
    for name, layers in targets.ONNX_RECIPES.items():
        assert set(layers) == executorch_layers, name  # the manifest's planner_layers, the same keys per target
        quantized = name != "fp32"
        assert layers["vision_encoder"] == (targets.ONNX_VISION_INT8 if quantized else "fp32"), name
        assert layers["retouch_head"] == (targets.ONNX_DYNAMIC_INT8 if quantized else "fp32"), name
    assert set(targets.ONNX_RECIPES["fp32"].values()) == {"fp32"}


def test_onnx_runtime_names_agree_with_the_method_table():
    from vera_mobile.runtime.onnx_planner import GRAPH_IO

    assert set(GRAPH_IO) == set(targets.PLANNER_METHOD_IO)
    for name in ("vision_encoder", "token_embedding", "retouch_head"):
        assert GRAPH_IO[name] == targets.PLANNER_METHOD_IO[name]
    inputs, outputs = targets.PLANNER_METHOD_IO["text_decoder"]
    assert GRAPH_IO["text_decoder"][0][0] == inputs[0] and GRAPH_IO["text_decoder"][1][:2] == outputs


def test_the_int8_claim_is_the_measured_one():
    """Every percentage the claim states is a row of the quantization-fidelity table in RESULTS.md."""
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    rows = {"8da8w": r"\| ExecuTorch 8da8w \|[^\n]*\| \+0\.3 % \|", "dynamic int8": r"\| ONNX Runtime int8[^|]*\|[^\n]*\| \+3\.6 % \|"}
    for recipe, row in rows.items():
        assert recipe in targets.INT8_FIDELITY_CLAIM
        assert re.search(row, results), recipe
    assert "within 10 %" in targets.INT8_FIDELITY_CLAIM and "+0.3 %" in targets.INT8_FIDELITY_CLAIM
    assert "+3.6 %" in targets.INT8_FIDELITY_CLAIM and "+11.7 %" in targets.INT8_FIDELITY_CLAIM
    assert "+7.8 %" in targets.INT8_FIDELITY_CLAIM
    assert re.search(r"\| ExecuTorch 8da4w-search-head8[^\n]*\| \+11\.7 % \|", results)  # int4 on ExecuTorch
    assert re.search(r"\| ONNX Runtime int4-search[^\n]*\| \+7\.8 % \|", results)  # int4 on ONNX (tied matrix once)
