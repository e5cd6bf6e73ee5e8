"""The planner's Core ML packages: structure per recipe (read from the spec: Core ML cannot run on
Linux), and the torch decoder program that is converted, against the reference."""

import pytest
import torch

pytest.importorskip("coremltools")

from vera_mobile.export.planner_coreml import (  # noqa: E402
    METHODS,
    PACKAGES,
    RECIPES,
    CoreMLTextDecoder,
    export_planner_coreml,
    exported_programs,
    inspect_planner_coreml,
)
from vera_mobile.errors import CheckpointError, InputError  # noqa: E402
from vera_mobile.models.kv_decoder import StaticCacheDecoder  # noqa: E402

# Minutes of Core ML / bundle export; CI runs this module in its slow list (.ci/run).
pytestmark = pytest.mark.slow

MAX_SEQ_LEN = 64
WEIGHT_THRESHOLD = 2048  # coremltools.optimize leaves weights of at most this many elements alone


@pytest.fixture(scope="module")
def packages(tiny_planner, tmp_path_factory):
    """{recipe: {method: package path}}, each recipe exported once for the module."""
    lines: list[str] = []
    out = {}
    for recipe in RECIPES:
        out[recipe] = export_planner_coreml(
            tiny_planner, tmp_path_factory.mktemp(recipe), recipe, MAX_SEQ_LEN, progress=lines.append
        )
    assert any("converting the planner's text_decoder program" in line for line in lines)
    return out


def facts_of(paths, method: str) -> dict:
    """inspect_planner_coreml of the function that runs `method` (its own name in a multifunction package)."""
    package = paths[method]
    shared = sum(package == paths[other] for other in METHODS) > 1
    return inspect_planner_coreml(package, method if shared else None)


def expected_io(model) -> dict[str, tuple[list, list]]:
    config = model.config
    size, hidden, vocab = config.vision.image_size, config.hidden_size, int(config.text["vocab_size"])
    tokens = {"range": [[1, 1], [1, MAX_SEQ_LEN]]}
    return {
        "vision_encoder": (
            [{"name": "pixels", "shape": [1, 3, size, size], "dtype": "float32"}],
            [{"name": "image_embeds", "shape": [1, config.vision.num_patches, hidden], "dtype": "float32"}],
        ),
        # A flexible output's shape is only known at run time: the spec leaves it empty.
        "token_embedding": (
            [{"name": "input_ids", "shape": [1, 1], "dtype": "int32", **tokens}],
            [{"name": "inputs_embeds", "shape": [], "dtype": "float32"}],
        ),
        "text_decoder": (
            [
                {"name": "inputs_embeds", "shape": [1, 1, hidden], "dtype": "float32",
                 "range": [[1, 1], [1, MAX_SEQ_LEN], [hidden, hidden]]},
                {"name": "input_pos", "shape": [1], "dtype": "int32", "range": [[1, MAX_SEQ_LEN]]},
            ],
            [{"name": "logits", "shape": [1, vocab], "dtype": "float32"},
             {"name": "hidden", "shape": [1, hidden], "dtype": "float32"}],
        ),
        "retouch_head": (
            [{"name": "hidden3", "shape": [1, 3, hidden], "dtype": "float32"},
             {"name": "mask", "shape": [1, 3], "dtype": "float32"}],
            [{"name": "latent", "shape": [1, 3 * config.latent_dim], "dtype": "float32"}],
        ),
    }


@pytest.mark.parametrize("recipe", RECIPES)
def test_packages_have_the_methods_io_and_states(recipe, packages, tiny_planner):
    paths = packages[recipe]
    assert list(paths) == list(METHODS)
    assert sorted(p.name for p in paths["text_decoder"].parent.iterdir()) == sorted(
        f"{stem}.mlpackage" for stem in PACKAGES
    )  # and no scratch folder left behind
    assert paths["token_embedding"] == paths["text_decoder"] == paths["text_decoder"].parent / "planner_language_model.mlpackage"
    text = tiny_planner.config.text
    kv_heads, layers = text["num_key_value_heads"], text["num_hidden_layers"]
    head_dim = tiny_planner.config.hidden_size // text["num_attention_heads"]
    for method, (inputs, outputs) in expected_io(tiny_planner).items():
        facts = facts_of(paths, method)
        assert facts["deployment_target"] == "iOS18" and facts["spec_version"] == 9
        assert (facts["inputs"], facts["outputs"]) == (inputs, outputs), method
        states = [
            {"name": f"{kind}_cache_{layer}", "shape": [kv_heads, MAX_SEQ_LEN, head_dim], "dtype": "float16"}
            for layer in range(layers) for kind in ("k", "v")
        ] if method == "text_decoder" else []
        assert facts["states"] == states, method
    # The decoder, called once per token, is what an app gets when it names no function.
    language_model = inspect_planner_coreml(paths["text_decoder"])
    assert language_model["functions"] == ["token_embedding", "text_decoder"]
    assert language_model["inputs"] == expected_io(tiny_planner)["text_decoder"][0]
    decoder = language_model["ops"]
    assert decoder["read_state"] >= 2 * layers and decoder["write_state"] == 2 * layers


def test_the_tied_embedding_and_output_matrix_is_stored_once(packages, tiny_planner):
    """Both functions of the language model package read one stored copy of the tied matrix,
    compressed alike: its values (V x H) and each recipe's scales or tables, nothing else."""
    language_model = tiny_planner.language_model
    assert language_model.get_input_embeddings().weight is language_model.get_output_embeddings().weight
    vocab, hidden = language_model.get_output_embeddings().weight.shape
    scales = {"fp16": 0, "int4-block32": vocab * hidden // 32, "int4-block32-head8": vocab, "int8-channel": vocab,
              "palettize4": vocab}  # one fp16 scale per block of 32 / per row; a 16-entry table per 16 rows
    parameters = sum(p.numel() for p in language_model.parameters())  # the tied matrix counted once
    for recipe in RECIPES:
        facts = inspect_planner_coreml(packages[recipe]["text_decoder"])
        assert facts["shared_weight_elements"] == vocab * hidden + scales[recipe], recipe
    # fp16: every parameter once (2 bytes), lm_head's zero bias (coremltools adds one) and a few KiB
    # of RoPE tables and blob headers; a second copy of the matrix would add 2 x vocab x hidden bytes.
    fp16 = inspect_planner_coreml(packages["fp16"]["text_decoder"])["weight_bytes"]
    assert 2 * (parameters + vocab) < fp16 < 2 * (parameters + vocab) + 16 * 1024


@pytest.mark.parametrize(("recipe", "op", "ratio"), [
    ("int4-block32", "constexpr_blockwise_shift_scale", 0.6),
    ("int4-block32-head8", "constexpr_blockwise_shift_scale", 0.75),
    ("palettize4", "constexpr_lut_to_dense", 0.6),
    ("int8-channel", "constexpr_blockwise_shift_scale", 0.75),
])
def test_quantized_recipes_compress_the_language_model_only(recipe, op, ratio, packages, tiny_planner):
    linears = [m for m in tiny_planner.language_model.modules() if isinstance(m, torch.nn.Linear)]
    expected = {
        "vision_encoder": 0,
        "token_embedding": 1,
        "text_decoder": sum(m.weight.numel() > WEIGHT_THRESHOLD for m in linears),  # lm_head included
        "retouch_head": 0,
    }
    for method, count in expected.items():
        facts = facts_of(packages[recipe], method)
        fp16 = facts_of(packages["fp16"], method)
        assert not any(fp16["compression"].values()), method
        assert facts["compression"] == {**dict.fromkeys(fp16["compression"], 0), op: count}, method
        if count:
            assert facts["weight_bytes"] < ratio * fp16["weight_bytes"], method
        else:
            assert facts["weight_bytes"] == fp16["weight_bytes"], method
        assert facts["weights"].get("float32", 0) == fp16["weights"].get("float32", 0)  # no fp32 weights appear


def test_converted_decoder_program_matches_static_cache_decoder_and_reference(tiny_planner):
    """What Core ML converts (the exported CoreMLTextDecoder) against StaticCacheDecoder and the
    transformers reference, over a prefill and two decode steps; Core ML's own numerics need a Mac."""
    torch.manual_seed(0)
    hidden = tiny_planner.config.hidden_size
    steps = [torch.randn(1, 5, hidden), torch.randn(1, 1, hidden), torch.randn(1, 1, hidden)]
    converted = exported_programs(tiny_planner, MAX_SEQ_LEN)["text_decoder"].module()
    wrapper = CoreMLTextDecoder(tiny_planner.language_model, MAX_SEQ_LEN).eval()
    static = StaticCacheDecoder(tiny_planner.language_model, MAX_SEQ_LEN).eval()
    cache, start = None, 0
    with torch.no_grad():
        for embeds in steps:
            positions = torch.arange(start, start + embeds.shape[1])
            logits, hidden_state, cache = tiny_planner.decode(embeds, positions[None], cache)
            want = (logits[0, -1:], hidden_state[0, -1:])
            for program in (converted, wrapper):
                got = program(embeds, positions.to(torch.int32))
                for a, b in zip(got, want):
                    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
            for a, b in zip(static(embeds, positions), want):
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
            start += embeds.shape[1]
    for name, buffer in static.named_buffers():
        if "_cache_" in name:
            torch.testing.assert_close(getattr(wrapper, name), buffer)
            assert buffer[:, start:].abs().sum() == 0 and buffer[:, :start].abs().sum() > 0


def test_bad_arguments_are_input_errors_and_write_nothing(tiny_planner, tmp_path):
    out = tmp_path / "out"
    choices = "choose one of: fp16, int4-block32, int4-block32-head8, palettize4, int8-channel"
    with pytest.raises(InputError, match=f"unknown Core ML recipe 'int8'; {choices}"):
        export_planner_coreml(tiny_planner, out, "int8")
    for bad in (1, 0, 2.5, True, "64", 10**6):
        with pytest.raises(InputError, match="max_seq_len must be an integer from 2 to"):
            export_planner_coreml(tiny_planner, out, "fp16", max_seq_len=bad)
    assert not out.exists()


def test_inspect_refuses_a_missing_package_or_function(tmp_path, packages):
    with pytest.raises(CheckpointError, match="Core ML package .* does not exist"):
        inspect_planner_coreml(tmp_path / "missing.mlpackage")
    choices = "it has: token_embedding, text_decoder"
    with pytest.raises(InputError, match=f"planner_language_model.mlpackage has no function 'main'; {choices}"):
        inspect_planner_coreml(packages["fp16"]["text_decoder"], "main")


def test_int8_head_recipe_keeps_the_output_projection_at_eight_bits(packages):
    # Only lm_head (and the table tied to it) differs from int4-block32: more bytes than it, fewer
    # than int8 everywhere.
    size = lambda recipe: inspect_planner_coreml(packages[recipe]["text_decoder"])["weight_bytes"]  # noqa: E731
    assert size("int4-block32") < size("int4-block32-head8") < size("int8-channel")
