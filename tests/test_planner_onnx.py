"""Planner ONNX export (export/planner_onnx.py) and its runtime backend (runtime/onnx_planner.py).

The checkpoint is the tiny synthetic one with an untied lm_head: with random weights a tied head
keeps predicting the input token, an untied one produces varied text. fp32 graphs must match the
torch reference (TorchPlanner) to 1e-4 and generate the same greedy tokens; the int4 and int8
recipes must run, and their latent is compared with fp32's on the same token sequence. Their int8
vision encoder is checked for its weights and, on a real photo, against fp32's, here and on the
shipped nano tower (trained weights, where quantization shows).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

import vera_mobile.export.planner_onnx as planner_onnx  # noqa: E402
from vera_mobile.export.planner_onnx import export_planner_onnx, graph_files  # noqa: E402
from vera_mobile.errors import CheckpointError, InputError  # noqa: E402
from vera_mobile.builtin import resolve_model  # noqa: E402
from vera_mobile.models.checkpoint import load_planner  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.prompts import Request  # noqa: E402
from vera_mobile.runtime.generation import SamplingOptions, generate, prompt_embeddings  # noqa: E402
from vera_mobile.runtime.onnx_planner import OnnxPlanner  # noqa: E402
from vera_mobile.runtime.torch_backend import TorchPlanner  # noqa: E402
from vera_mobile.testing.synthetic import write_synthetic_checkpoint  # noqa: E402
from vera_mobile.tokenizer import Tokenizer  # noqa: E402
from vera_mobile.views import planner_view  # noqa: E402

from conftest import skimage_photo  # noqa: E402

MAX_SEQ_LEN = 256
NEW_TOKENS = 24
MASK = np.array([1.0, 0.0, 1.0], np.float32)  # one group off, so the head's masking is checked too


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_synthetic_checkpoint(tmp_path_factory.mktemp("untied") / "ckpt", size="tiny", tie_word_embeddings=False)


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_planner(checkpoint)[0]


@pytest.fixture(scope="module")
def tokenizer(checkpoint):
    return Tokenizer.from_dir(checkpoint)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """{recipe: {graph name: file}} for fp32, int4 and int8."""
    return {quant: export_planner_onnx(model, tmp_path_factory.mktemp(quant), MAX_SEQ_LEN, quant)
            for quant in ("fp32", "int4", "int8")}


def copied(graphs, folder):
    """A copy of one export's folder, and its graphs by name there."""
    shutil.copytree(graphs["text_decoder"].parent, folder)
    return folder, graph_files(folder)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).random((3, 256, 256), dtype=np.float32)


class Scripted:
    """Any planner backend whose token choice is forced to a script (teacher forcing)."""

    def __init__(self, backend, script):
        self.backend, self.script, self.step = backend, list(script), 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def decode(self, embeds):
        logits, hidden = self.backend.decode(embeds)
        forced = np.full_like(logits, -1e9)
        forced[self.script[min(self.step, len(self.script) - 1)]] = 0.0
        self.step += 1
        return forced, hidden


def run_auto(backend, tokenizer, pixels, script=None):
    """Greedy auto-mode generation of NEW_TOKENS tokens (no EOS), then the latent."""
    prompt = prompt_embeddings(backend, tokenizer.encode_prompt(Request("auto").full_prompt()), backend.encode_image(pixels))
    runner = backend if script is None else Scripted(backend, script)
    result = generate(runner, tokenizer, prompt, eos_ids=(), options=SamplingOptions(max_new_tokens=NEW_TOKENS))
    return result, backend.latent(result.retouch_hidden, MASK)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- Graph I/O -----------------------------------------------------------------------------------


def test_vision_session_lives_only_for_its_call_unless_resident(exported, tokenizer, pixels, monkeypatch):
    import gc
    import weakref

    from vera_mobile.runtime import onnx_planner

    resident = OnnxPlanner(exported["fp32"], resident=True)
    expected, expected_latent = run_auto(resident, tokenizer, pixels)
    opened = []
    real_session = onnx_planner._session
    monkeypatch.setattr(onnx_planner, "_session", lambda path, name, **options: opened.append(
        (name, weakref.ref(session := real_session(path, name, **options)))) or session)

    backend = OnnxPlanner(exported["fp32"])
    gc.collect()
    assert [name for name, alive in opened if alive() is None] == ["vision_encoder"]  # checked at load, then closed
    for photo in range(2):
        result, latent = run_auto(backend, tokenizer, pixels)
        assert result.token_ids == expected.token_ids
        np.testing.assert_array_equal(latent, expected_latent)
        gc.collect()
        alive = sorted(name for name, ref in opened if ref() is not None)
        assert alive == ["retouch_head", "text_decoder", "token_embedding"]  # never next to the vision encoder
    assert [name for name, _ in opened].count("vision_encoder") == 3 and len(opened) == 4 + 2 * 4


def test_graphs_have_the_documented_inputs_and_outputs(exported, model):
    backend = OnnxPlanner(exported["fp32"], resident=True)
    config, core = model.config, model.language_model.config
    hidden, layers, kv_heads = config.hidden_size, core.num_hidden_layers, core.num_key_value_heads
    head_dim = hidden // core.num_attention_heads
    shapes = {
        name: ([tuple(a.shape) for a in s.get_inputs()], [tuple(a.shape) for a in s.get_outputs()])
        for name, s in backend.sessions.items()
    }
    size, patches = config.vision.image_size, config.vision.num_patches
    assert shapes["vision_encoder"] == ([(1, 3, size, size)], [(1, patches, hidden)])
    assert shapes["token_embedding"] == ([(1, "tokens")], [(1, "tokens", hidden)])
    cache = (layers, kv_heads, "past", head_dim)
    grown = (layers, kv_heads, "past + tokens", head_dim)
    assert shapes["text_decoder"] == (
        [(1, "tokens", hidden), cache, cache],
        [(1, core.vocab_size), (1, hidden), grown, grown],
    )
    assert shapes["retouch_head"] == ([(1, 3, hidden), (1, 3)], [(1, 3 * hidden)])
    assert backend.max_seq_len == MAX_SEQ_LEN


def test_quantized_graphs_use_the_recipes_ops(exported):
    def ops(quant, name):
        return {node.op_type for node in onnx.load(exported[quant][name]).graph.node}

    assert "MatMulNBits" in ops("int4", "text_decoder")
    assert "GatherBlockQuantized" in ops("int4", "token_embedding")
    assert "MatMulInteger" in ops("int8", "text_decoder")
    assert "Gather" in ops("int8", "token_embedding")  # the int8 recipe keeps the embedding fp32
    assert {"Conv", "MatMul"} <= ops("fp32", "vision_encoder") and "ConvInteger" not in ops("fp32", "vision_encoder")
    assert "Gemm" not in ops("fp32", "retouch_head")  # MatMul + Add, which the quantizers take
    for quant in ("int4", "int8"):  # int4-search's: test_bundle.py
        assert {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"} <= ops(quant, "vision_encoder")
        assert "MatMulInteger" in ops(quant, "retouch_head")


# --- fp32 parity with the torch reference ---------------------------------------------------------


def test_fp32_graphs_match_the_torch_reference(exported, model, pixels):
    onnx_backend, torch_backend = OnnxPlanner(exported["fp32"]), TorchPlanner(model)
    for method, args in (
        ("encode_image", (pixels,)),
        ("embed", (np.array([9707, 151644, 151665, 3], np.int64),)),
        ("latent", (np.random.default_rng(1).normal(size=(3, model.config.hidden_size)).astype(np.float32), MASK)),
    ):
        got, want = getattr(onnx_backend, method)(*args), getattr(torch_backend, method)(*args)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=method)


def test_fp32_decoder_matches_the_torch_reference_over_prefill_and_steps(exported, model):
    onnx_backend, torch_backend = OnnxPlanner(exported["fp32"]), TorchPlanner(model)
    embeds = torch_backend.embed(np.random.default_rng(2).integers(0, 151_000, 20))
    for backend in (onnx_backend, torch_backend):
        backend.reset()
    for start, end in ((0, 12), (12, 13), (13, 17), (17, 18)):  # prefill, one step, several, one
        (logits, hidden), (ref_logits, ref_hidden) = (b.decode(embeds[start:end]) for b in (onnx_backend, torch_backend))
        np.testing.assert_allclose(hidden, ref_hidden, atol=1e-4, rtol=0)
        np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=0)
    onnx_backend.reset()  # a new sequence must not see the old one
    torch_backend.reset()
    np.testing.assert_allclose(onnx_backend.decode(embeds[:5])[1], torch_backend.decode(embeds[:5])[1], atol=1e-4, rtol=0)


def test_fp32_greedy_generation_equals_the_torch_reference(exported, model, tokenizer, pixels):
    onnx_result, onnx_latent = run_auto(OnnxPlanner(exported["fp32"]), tokenizer, pixels)
    torch_result, torch_latent = run_auto(TorchPlanner(model), tokenizer, pixels)
    assert len(torch_result.token_ids) >= 16
    assert len(set(torch_result.token_ids)) > 4  # varied text, not one token repeated
    assert onnx_result.token_ids == torch_result.token_ids
    np.testing.assert_allclose(onnx_result.retouch_hidden, torch_result.retouch_hidden, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_latent, torch_latent, atol=1e-4, rtol=0)


# --- Quantized recipes ------------------------------------------------------------------------------


@pytest.mark.parametrize("quant", ["int4", "int8"])
def test_quantized_latent_stays_close_to_fp32(exported, tokenizer, pixels, quant, record_property):
    fp32_result, fp32_latent = run_auto(OnnxPlanner(exported["fp32"]), tokenizer, pixels)
    quantized = OnnxPlanner(exported[quant])
    free_result, _ = run_auto(quantized, tokenizer, pixels)
    # Teacher-forced on fp32's tokens, so the latent compares the same positions.
    _, forced_latent = run_auto(quantized, tokenizer, pixels, script=fp32_result.token_ids)
    agreement = np.mean(np.array(free_result.token_ids) == np.array(fp32_result.token_ids))
    similarity = cosine(forced_latent, fp32_latent)
    record_property(f"{quant}_latent_cosine", similarity)
    record_property(f"{quant}_greedy_token_agreement", float(agreement))
    print(f"{quant}: latent cosine vs fp32 {similarity:.5f}, greedy token agreement {agreement:.2f}")
    assert similarity > 0.9


# --- The int8 vision encoder and retouch head of every quantized recipe --------------------------------


def weights(path):
    """{initializer name: array} of a graph."""
    return {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def float_weights(path, op_type):
    """[(weight shape, group)] of the `op_type` nodes of a graph whose constant weight is still float32."""
    graph, arrays = onnx.load(path).graph, weights(path)
    return [(arrays[node.input[1]].shape, next((a.i for a in node.attribute if a.name == "group"), 1))
            for node in graph.node if node.op_type == op_type and node.input[1] in arrays
            and arrays[node.input[1]].dtype == np.float32]


def photo_view(model):
    return planner_view(load_photo(skimage_photo("astronaut.png")), model.config.vision.image_size)


def closeness(got, want):
    """(cosine, largest error / largest fp32 value)."""
    return cosine(got.ravel(), want.ravel()), float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("quant", ["int4", "int8"])
def test_quantized_vision_encoder_has_int8_weights(exported, model, quant):
    path = exported[quant]["vision_encoder"]
    stem = [tuple(conv.weight.shape) for conv in model.vision_tower.patch_embed.modules()
            if isinstance(conv, torch.nn.Conv2d) and conv.groups == 1]
    # Only the stem's convs keep fp32 weights among the one-group ones (432 and 256 values here);
    # depthwise convs stay fp32 by design (1 % of the weights at the full size).
    assert sorted(shape for shape, group in float_weights(path, "Conv") if group == 1) == sorted(stem)
    assert float_weights(path, "MatMul") == [] and float_weights(exported[quant]["retouch_head"], "MatMul") == []
    def shrinks(name):
        return sum(a.nbytes for a in weights(exported["fp32"][name]).values()) / sum(
            a.nbytes for a in weights(exported[quant][name]).values())

    # 2.92x measured: the fp32 depthwise convs are 11 % of this tiny tower's weights (1 % at the full
    # size, where about 3.9x is expected). The head: 3.71x.
    assert shrinks("vision_encoder") > 2.8 and shrinks("retouch_head") > 3.5


def test_quantized_vision_encoder_stays_close_to_fp32_on_a_real_photo(exported, model):
    view = photo_view(model)
    want = OnnxPlanner(exported["fp32"]).encode_image(view)
    similarity, error = closeness(OnnxPlanner(exported["int8"]).encode_image(view), want)
    print(f"tiny int8 vision encoder: cosine {similarity:.6f}, max relative error {error:.4f}")
    assert similarity > 0.9999 and error < 0.02  # this photo: 0.999997, 0.0044; five photos: > 0.99999, <= 0.0067


@pytest.fixture(scope="module")
def nano_vision(tmp_path_factory):
    """The nano planner and its vision encoder graph alone, {recipe: file} for fp32 and int8: a
    trained tower, where quantization shows (the tiny random one passes every candidate)."""
    nano = load_planner(resolve_model("nano"))[0]
    graph = {"vision_encoder": planner_onnx._graphs(nano, MAX_SEQ_LEN)["vision_encoder"]}
    return nano, {quant: planner_onnx._write_graphs(graph, tmp_path_factory.mktemp(f"nano-{quant}"), MAX_SEQ_LEN,
                                                    quant, None, None)["vision_encoder"]
                  for quant in ("fp32", "int8")}


def test_nano_int8_vision_encoder_stays_close_to_fp32_on_a_real_photo(nano_vision):
    nano, paths = nano_vision
    view = photo_view(nano)
    got, want = (onnxruntime.InferenceSession(paths[quant], providers=["CPUExecutionProvider"])
                 .run(None, {"pixels": view[None]})[0] for quant in ("int8", "fp32"))
    similarity, error = closeness(got, want)
    print(f"nano int8 vision encoder: cosine {similarity:.6f}, max relative error {error:.4f}")
    # Measured on five photos: worst cosine 0.9992, largest error 0.057. With the stem quantized as
    # well 0.9946 / 0.13; static QDQ 0.9968 / 0.14; quantize_dynamic's per-tensor convs 0.66 / 2.2.
    assert similarity > 0.998 and error < 0.1
    fp32, quantized = (sum(a.nbytes for a in weights(paths[q]).values()) for q in ("fp32", "int8"))
    assert fp32 / quantized > 3  # 3.33 measured


# --- Errors -----------------------------------------------------------------------------------------


def test_missing_graph_is_a_checkpoint_error(exported, tmp_path):
    broken, graphs = copied(exported["fp32"], tmp_path / "bundle")
    (broken / "text_decoder.onnx").unlink()
    with pytest.raises(CheckpointError, match="text_decoder.onnx does not exist"):
        OnnxPlanner(graphs)
    with pytest.raises(CheckpointError, match="needs the graph.s. retouch_head"):
        OnnxPlanner({name: path for name, path in graphs.items() if name != "retouch_head"})


def test_graphs_of_different_widths_are_refused(exported, tmp_path):
    from onnx import TensorProto, helper

    broken, graphs = copied(exported["fp32"], tmp_path / "bundle")
    graph = helper.make_graph(  # a "head" for hidden size 32: the right names, the wrong width
        [helper.make_node("Reshape", ["hidden3", "shape"], ["latent"])],
        "retouch_head",
        [helper.make_tensor_value_info("hidden3", TensorProto.FLOAT, [1, 3, 32]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, [1, 96])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, 96])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), broken / "retouch_head.onnx")
    with pytest.raises(CheckpointError, match="disagree on the hidden size"):
        OnnxPlanner(graphs)


def test_wrong_graph_in_a_slot_is_a_checkpoint_error(exported, tmp_path):
    broken, graphs = copied(exported["fp32"], tmp_path / "bundle")
    shutil.copy(broken / "retouch_head.onnx", broken / "vision_encoder.onnx")
    with pytest.raises(CheckpointError, match="not the planner's vision_encoder graph"):
        OnnxPlanner(graphs)


def test_bad_inputs_are_input_errors(exported, model):
    backend = OnnxPlanner(exported["fp32"])
    hidden = model.config.hidden_size
    with pytest.raises(InputError, match="at most 256"):
        backend.decode(np.zeros((MAX_SEQ_LEN + 1, hidden), np.float32))
    with pytest.raises(InputError, match="pixels"):
        backend.encode_image(np.zeros((3, 128, 128), np.float32))
    with pytest.raises(InputError, match="recipe"):
        export_planner_onnx(model, "unused", quant="int2")


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_large_graphs_keep_weights_in_external_data(model, tmp_path, monkeypatch, pixels):
    monkeypatch.setattr(planner_onnx, "EXTERNAL_DATA_BYTES", 4 << 20)  # the tiny decoder is ~39 MB
    paths = export_planner_onnx(model, tmp_path, MAX_SEQ_LEN, "fp32")
    assert (tmp_path / "text_decoder.onnx.data").is_file() and (tmp_path / "token_embedding.onnx.data").is_file()
    assert paths["text_decoder"].stat().st_size < 1 << 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # no scratch files left behind
        [f"{name}.onnx" for name in paths] + ["text_decoder.onnx.data", "token_embedding.onnx.data"]
    )
    backend, reference = OnnxPlanner(paths), TorchPlanner(model)
    embeds = reference.embed(np.arange(100, 108))
    np.testing.assert_allclose(backend.decode(embeds)[1], reference.decode(embeds)[1], atol=1e-4, rtol=0)
    (tmp_path / "text_decoder.onnx.data").unlink()
    with pytest.raises(CheckpointError, match="could not load .*text_decoder.onnx"):
        OnnxPlanner(paths)


def test_a_failed_export_leaves_no_partial_set(model, tmp_path, monkeypatch):
    quantize_int8 = planner_onnx._quantize_int8

    def broken_quantizer(source, destination):
        if source.name.startswith("text_decoder"):
            raise RuntimeError("quantizer crashed")
        quantize_int8(source, destination)  # the vision encoder's MatMuls

    monkeypatch.setattr(planner_onnx, "_quantize_int8", broken_quantizer)
    with pytest.raises(RuntimeError, match="quantizer crashed") as failure:
        export_planner_onnx(model, tmp_path, MAX_SEQ_LEN, "int8")
    assert "while quantizing the planner's text_decoder graph" in "".join(failure.value.__notes__)
    assert list(tmp_path.iterdir()) == []  # vision_encoder and token_embedding were done, and are gone too


# --- Full size (slow: ~4 GB of artifacts, ~10 GB RAM, a few minutes) --------------------------------


@pytest.mark.slow
def test_full_size_export_fits_in_protobuf_and_matches_the_reference(tmp_path):
    checkpoint = write_synthetic_checkpoint(tmp_path / "full", size="full", dtype="bfloat16")
    model = load_planner(checkpoint)[0]
    reference = TorchPlanner(model)
    embeds = reference.embed(np.random.default_rng(3).integers(0, 151_000, 24))
    want = [reference.decode(embeds[:16]), *(reference.decode(embeds[i : i + 1]) for i in range(16, 24))]
    for quant in ("fp32", "int4"):
        paths = export_planner_onnx(model, tmp_path / quant, quant=quant)
        assert (paths["text_decoder"].with_name("text_decoder.onnx.data").exists()) == (quant == "fp32")
        backend = OnnxPlanner(paths)
        got = [backend.decode(embeds[:16]), *(backend.decode(embeds[i : i + 1]) for i in range(16, 24))]
        similarity = min(cosine(g[1], w[1]) for g, w in zip(got, want))
        print(f"full size {quant}: min hidden-state cosine vs torch {similarity:.5f}")
        if quant == "fp32":
            for (logits, hidden), (ref_logits, ref_hidden) in zip(got, want):
                np.testing.assert_allclose(hidden, ref_hidden, atol=1e-4, rtol=0)
                np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=0)
        else:  # random full-width weights are hard on 4-bit blocks (0.86 measured); trained ones fare better
            assert similarity > 0.7
