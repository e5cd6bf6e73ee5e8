"""The language-model-only exports (`export_text_decoder_executorch`, `export_text_decoder_onnx`) on
the tiny synthetic Qwen2: the fp32 artifacts compute what transformers computes, on their runtimes."""

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("executorch")
pytest.importorskip("onnxruntime")

from vera_mobile.export.planner_executorch import (  # noqa: E402
    RECIPES,
    export_text_decoder_executorch,
    quantize_language_model,
)
from vera_mobile.export.planner_onnx import export_text_decoder_onnx  # noqa: E402
from vera_mobile.errors import InputError  # noqa: E402

MAX_SEQ_LEN = 32
IDS = np.array([3, 141, 59, 2653, 589, 7932, 38, 4626, 43, 383, 279, 502], dtype=np.int64)
CHUNKS = ((0, 7), (7, 8), (8, 12))  # prefill, one step, a multi-token step


@pytest.fixture(scope="module")
def language_model(tiny_planner):
    return tiny_planner.language_model.eval()


@pytest.fixture(scope="module")
def reference(language_model):
    """transformers' logits and final-norm hidden states at every position of IDS."""
    with torch.no_grad():
        out = language_model(torch.from_numpy(IDS)[None], output_hidden_states=True)
    return out.logits[0].numpy(), out.hidden_states[-1][0].numpy()


@pytest.fixture(scope="module")
def power(language_model):
    """Input power of each linear for the searched-scale recipes, measured on other ids than the
    checks': the searched scales come from activations, not the answer."""
    from vera_mobile.export.weight_scales import input_power

    return input_power(language_model, [language_model.model.embed_tokens(torch.arange(5, 29)).detach()])


def _load_pte(path):
    import executorch.kernels.quantized  # noqa: F401
    from executorch.runtime import Runtime

    return Runtime.get().load_program(path)


def _pte_decode(program, ids):
    """Run IDS through a .pte in CHUNKS; yields (end, logits, hidden) per chunk."""
    embeds = program.load_method("token_embedding").execute([torch.from_numpy(ids)[None]])[0]
    decoder = program.load_method("text_decoder_with_hidden")
    for start, end in CHUNKS:
        logits, hidden = decoder.execute([embeds[:, start:end].contiguous(), torch.arange(start, end)])
        yield end, logits.numpy()[0], hidden.numpy()[0]


def test_executorch_fp32_text_decoder_matches_transformers(language_model, reference, tmp_path):
    messages = []
    path = export_text_decoder_executorch(
        language_model, tmp_path / "lm.pte", max_seq_len=MAX_SEQ_LEN, progress=messages.append
    )
    assert path == tmp_path / "lm.pte" and messages
    program = _load_pte(path)
    assert {"token_embedding", "text_decoder_with_hidden", "get_max_seq_len", "get_vocab_size"} <= program.method_names
    assert program.load_method("get_max_seq_len").execute([]) == [MAX_SEQ_LEN]
    assert program.load_method("get_vocab_size").execute([]) == [language_model.config.vocab_size]

    embeds = program.load_method("token_embedding").execute([torch.from_numpy(IDS)[None]])[0].numpy()[0]
    with torch.no_grad():
        expected_embeds = language_model.model.embed_tokens(torch.from_numpy(IDS)).numpy()
    np.testing.assert_allclose(embeds, expected_embeds, atol=1e-6, rtol=0)
    logits, hidden = reference
    for end, out_logits, out_hidden in _pte_decode(program, IDS):
        np.testing.assert_allclose(out_logits, logits[end - 1], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out_hidden, hidden[end - 1], atol=1e-4, rtol=0)


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_executorch_per_channel_int4_matches_its_eager_model(language_model, tmp_path):
    # group_size=None: one int4 scale per output channel (any width), lowered to XNNPACK. The embedding
    # names a padding row, as Llama checkpoints' do: the quantized-embedding fusion must still apply.
    language_model = copy.deepcopy(language_model)
    language_model.model.embed_tokens.padding_idx = 0
    path = export_text_decoder_executorch(
        language_model, tmp_path / "lm_pc.pte", recipe="8da4w", max_seq_len=MAX_SEQ_LEN, group_size=None
    )
    eager = quantize_language_model(language_model, RECIPES["8da4w"], group_size=None)
    assert type(language_model.lm_head.weight) is torch.nn.Parameter  # the caller's model is untouched
    assert language_model.model.embed_tokens.padding_idx == 0
    with torch.no_grad():
        expected = eager(torch.from_numpy(IDS)[None]).logits[0].numpy()
    for end, out_logits, _ in _pte_decode(_load_pte(path), IDS):
        cosine = out_logits @ expected[end - 1] / np.linalg.norm(out_logits) / np.linalg.norm(expected[end - 1])
        assert cosine > 0.9999


def test_onnx_fp32_text_decoder_matches_transformers(language_model, reference, tmp_path):
    import onnxruntime as ort

    paths = export_text_decoder_onnx(language_model, tmp_path / "onnx", max_seq_len=MAX_SEQ_LEN)
    assert set(paths) == {"token_embedding", "text_decoder"}
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["text_decoder.onnx", "token_embedding.onnx"]
    embed = ort.InferenceSession(str(paths["token_embedding"]), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(paths["text_decoder"]), providers=["CPUExecutionProvider"])
    embeds = embed.run(None, {"input_ids": IDS[None]})[0]
    layers, heads, _, head_dim = decoder.get_inputs()[1].shape
    keys = values = np.zeros((layers, heads, 0, head_dim), np.float32)
    logits, hidden = reference
    for start, end in CHUNKS:
        feeds = {"inputs_embeds": embeds[:, start:end], "past_keys": keys, "past_values": values}
        out_logits, out_hidden, keys, values = decoder.run(None, feeds)
        np.testing.assert_allclose(out_logits[0], logits[end - 1], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out_hidden[0], hidden[end - 1], atol=1e-4, rtol=0)
    assert keys.shape[2] == len(IDS)


def test_bad_text_decoder_export_arguments_are_input_errors(language_model, tmp_path):
    with pytest.raises(InputError, match="recipe"):
        export_text_decoder_executorch(language_model, tmp_path / "lm.pte", recipe="int4-weight-only")
    with pytest.raises(InputError, match="max_seq_len"):
        export_text_decoder_executorch(language_model, tmp_path / "lm.pte", max_seq_len=1)
    with pytest.raises(InputError, match="group_size 48"):
        export_text_decoder_executorch(language_model, tmp_path / "lm.pte", recipe="8da4w", group_size=48)
    with pytest.raises(InputError, match="recipe"):
        export_text_decoder_onnx(language_model, tmp_path / "onnx", quant="int2")
    assert not (tmp_path / "lm.pte").exists()


@pytest.mark.parametrize("recipe", [pytest.param("8da4w-search", marks=pytest.mark.slow), "8da4w-search-head8"])
def test_executorch_searched_scales_lower_like_their_eager_model(language_model, power, tmp_path, recipe):
    path = export_text_decoder_executorch(
        language_model, tmp_path / "lm.pte", recipe=recipe, max_seq_len=MAX_SEQ_LEN, power=power
    )
    eager = quantize_language_model(language_model, RECIPES[recipe], 32, power)
    minmax = quantize_language_model(language_model, RECIPES["8da4w-emb4"], 32)
    down = ("model", "layers", "0", "mlp", "down_proj")
    searched_scale, minmax_scale = (eager.get_submodule(".".join(down)).weight.scale,
                                    minmax.get_submodule(".".join(down)).weight.scale)
    assert not torch.equal(searched_scale, minmax_scale)  # the search chose other scales
    head_bits = 8 if recipe.endswith("head8") else 4
    assert eager.lm_head.weight.target_dtype == getattr(torch, f"int{head_bits}")
    with torch.no_grad():
        expected = eager(torch.from_numpy(IDS)[None]).logits[0].numpy()
    for end, out_logits, _ in _pte_decode(_load_pte(path), IDS):
        cosine = out_logits @ expected[end - 1] / np.linalg.norm(out_logits) / np.linalg.norm(expected[end - 1])
        assert cosine > 0.9999


def test_onnx_int4_search_packs_the_searched_grid_into_matmul_nbits(language_model, power, tmp_path):
    import onnx
    import onnxruntime as ort

    from vera_mobile.export.weight_scales import search_scales

    paths = export_text_decoder_onnx(language_model, tmp_path / "onnx", max_seq_len=MAX_SEQ_LEN, quant="int4-search",
                                     power=power)
    graph = onnx.load(str(paths["text_decoder"])).graph
    bits = sorted(next(a.i for a in node.attribute if a.name == "bits") for node in graph.node
                  if node.op_type == "MatMulNBits")
    linears = [m for m in language_model.modules() if isinstance(m, torch.nn.Linear)]
    assert bits == [4] * (len(linears) - 1) + [8]  # every linear; lm_head at 8 bits
    assert not [node for node in graph.node if node.op_type == "MatMul" and node.input[1] in
                {init.name for init in graph.initializer}]  # no float weight matrix left

    # The same grid in float (searched int4 scales; lm_head 8-bit, largest / 127 per block of 32) in
    # transformers must give ONNX Runtime's logits: the packing and the nibble order are right.
    expected_model = copy.deepcopy(language_model)
    expected_model.lm_head.weight = torch.nn.Parameter(expected_model.lm_head.weight.detach().clone())
    for name, module in expected_model.named_modules():
        if isinstance(module, torch.nn.Linear):
            w = module.weight.detach().reshape(module.out_features, -1, 32)
            if name == "lm_head":
                scales, low, high = w.abs().amax(-1) / 127, -128, 127
            else:
                scales, low, high = search_scales(module.weight.detach(), 32, power[name]), -8, 7
            module.weight.data = (torch.clamp(torch.round(w / scales[..., None]), low, high) * scales[..., None]).reshape(
                module.weight.shape)
    with torch.no_grad():
        out = expected_model(torch.from_numpy(IDS)[None], output_hidden_states=True)
    expected, expected_hidden = out.logits[0, -1].numpy(), out.hidden_states[-1][0, -1].numpy()
    embed = ort.InferenceSession(str(paths["token_embedding"]), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(paths["text_decoder"]), providers=["CPUExecutionProvider"])
    layers, heads, _, head_dim = decoder.get_inputs()[1].shape
    empty = np.zeros((layers, heads, 0, head_dim), np.float32)
    embeds = language_model.model.embed_tokens(torch.from_numpy(IDS)[None]).detach().numpy()  # fp32 rows: only the grid differs
    logits, hidden = decoder.run(None, {"inputs_embeds": embeds, "past_keys": empty, "past_values": empty})[:2]
    # The int4 layers compute in fp32: the hidden state matches the float grid closely. The 8-bit head
    # runs ORT's int8-activation kernel (accuracy level 4), which rounds its input too.
    np.testing.assert_allclose(hidden[0], expected_hidden, atol=2e-3 * np.abs(expected_hidden).max(), rtol=0)
    assert logits[0] @ expected / np.linalg.norm(logits[0]) / np.linalg.norm(expected) > 0.999


def _external_sections(path):
    """{initializer name: (file, offset, length)} of a graph's external initializers, and its inline ones."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    external, inline = {}, {}
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            info = {entry.key: entry.value for entry in init.external_data}
            external[init.name] = (info["location"], int(info["offset"]), int(info["length"]))
        else:
            inline[init.name] = tuple(init.dims)
    return external, inline


def test_onnx_int4_search_stores_the_tied_matrix_once(language_model, tmp_path):
    import onnxruntime as ort

    from vera_mobile.export.planner_onnx import TIED_TABLE_FILE, weight_files

    paths = export_text_decoder_onnx(language_model, tmp_path, max_seq_len=MAX_SEQ_LEN, quant="int4-search")
    table = language_model.model.embed_tokens.weight.detach()
    rows, columns = table.shape
    assert weight_files(tmp_path) == {"tied embedding": tmp_path / TIED_TABLE_FILE}
    sections = {}
    for name in ("token_embedding", "text_decoder"):
        external, inline = _external_sections(paths[name])
        sections[name] = sorted(external.values())
        assert all(np.prod(dims) < rows * columns // 8 for dims in inline.values())  # no other copy of the table
    # Both graphs read the same two sections (8-bit levels, scales) of the one tied file.
    assert sections["token_embedding"] == sections["text_decoder"]
    assert [(location, length) for location, _, length in sections["text_decoder"]] == [
        (TIED_TABLE_FILE, rows * columns), (TIED_TABLE_FILE, rows * columns // 32 * 4)]
    assert (tmp_path / TIED_TABLE_FILE).stat().st_size < rows * columns * 1.2  # one 8-bit copy and its scales

    # The embedding's rows are the 8-bit grid the head uses (largest / 127 per block of 32).
    blocks = table.reshape(rows, -1, 32)
    scales = blocks.abs().amax(-1, keepdim=True) / 127
    grid = (torch.clamp(torch.round(blocks / scales), -128, 127) * scales).reshape(rows, columns).numpy()
    embed = ort.InferenceSession(str(paths["token_embedding"]), providers=["CPUExecutionProvider"])
    rows_out = embed.run(None, {"input_ids": IDS[None]})[0][0]
    np.testing.assert_allclose(rows_out, grid[IDS], rtol=0, atol=1e-6 * np.abs(grid).max())


def test_onnx_int4_search_quantizes_an_untied_embedding_on_its_own(language_model, tmp_path):
    from vera_mobile.export.planner_onnx import weight_files

    untied = copy.deepcopy(language_model)
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight.detach() * 1.5)
    paths = export_text_decoder_onnx(untied, tmp_path, max_seq_len=MAX_SEQ_LEN, quant="int4-search")
    assert weight_files(tmp_path) == {}
    for path in paths.values():
        assert _external_sections(path)[0] == {}
    import onnx

    graph = onnx.load(str(paths["token_embedding"])).graph
    types = {init.name: init.data_type for init in graph.initializer}
    gathers = [node for node in graph.node if node.op_type == "GatherBlockQuantized"]
    assert [types[node.input[0]] for node in gathers] == [onnx.TensorProto.UINT4]  # int4's asymmetric table


def test_onnx_int4_search_of_a_decoder_exported_with_external_weights(language_model, tmp_path, monkeypatch):
    """At the full size the fp32 decoder is over EXTERNAL_DATA_BYTES, so its weights sit in a scratch
    `.data` file while it is quantized; the int4 graph must not point into that file."""
    import onnxruntime as ort

    from vera_mobile.export import planner_onnx

    monkeypatch.setattr(planner_onnx, "EXTERNAL_DATA_BYTES", 1 << 20)  # the fp32 tiny decoder is ~40 MB
    paths = export_text_decoder_onnx(language_model, tmp_path, max_seq_len=MAX_SEQ_LEN, quant="int4-search")
    assert sorted(planner_onnx.weight_files(tmp_path)) == ["tied embedding"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [planner_onnx.TIED_TABLE_FILE, "text_decoder.onnx", "token_embedding.onnx"])
    decoder = ort.InferenceSession(str(paths["text_decoder"]), providers=["CPUExecutionProvider"])
    layers, heads, _, head_dim = decoder.get_inputs()[1].shape
    empty = np.zeros((layers, heads, 0, head_dim), np.float32)
    embeds = language_model.model.embed_tokens(torch.from_numpy(IDS)[None]).detach().numpy()
    logits = decoder.run(None, {"inputs_embeds": embeds, "past_keys": empty, "past_values": empty})[0]
    assert np.isfinite(logits).all()
