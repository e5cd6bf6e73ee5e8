"""The planner `.pte`: each method against the torch reference, greedy generation, the quantized
recipes, and ExecuTorch's own multimodal runner driving the same artifact."""

import numpy as np
import pytest
import torch

pytest.importorskip("executorch")

from vera_mobile.export.planner_executorch import (  # noqa: E402
    RECIPES,
    export_planner_executorch,
    quantize_language_model,
    quantize_vision_encoder,
)
from vera_mobile.export.planner_methods import VisionEncoder  # noqa: E402
from vera_mobile.errors import CheckpointError, InputError  # noqa: E402
from vera_mobile.models.checkpoint import load_planner  # noqa: E402
from vera_mobile.models.kv_decoder import StaticCacheDecoder  # noqa: E402
from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.prompts import IMAGE_TOKEN, Request  # noqa: E402
from vera_mobile.runtime.executorch_planner import ExecuTorchPlanner  # noqa: E402
from vera_mobile.runtime.generation import SamplingOptions, generate, prompt_embeddings  # noqa: E402
from vera_mobile.runtime.torch_backend import TorchPlanner  # noqa: E402
from vera_mobile.tokenizer import Tokenizer  # noqa: E402
from vera_mobile.views import planner_view  # noqa: E402

MAX_SEQ_LEN = 128  # the tiny auto prompt is 86 positions (16 image patches)
EOS_IDS = (151645,)  # <|im_end|>, the synthetic checkpoint's eos_token_id
PROGRAM_METHODS = {"vision_encoder", "token_embedding", "text_decoder", "text_decoder_with_hidden", "retouch_head"}
RUNNER_METADATA = {
    "get_max_seq_len", "get_max_context_len", "get_bos_id", "get_eos_ids", "get_vocab_size",
    "use_kv_cache", "use_sdpa_with_kv_cache", "enable_dynamic_shape",
}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def untied_checkpoint(tmp_path_factory):
    # Untied input/output embeddings make the random model generate varied text, not one token repeated.
    from vera_mobile.testing.synthetic import write_synthetic_checkpoint

    return write_synthetic_checkpoint(tmp_path_factory.mktemp("untied") / "VeraRetouch", tie_word_embeddings=False)


@pytest.fixture(scope="module")
def planner(untied_checkpoint):
    model, _ = load_planner(untied_checkpoint)
    return model


@pytest.fixture(scope="module")
def tokenizer(untied_checkpoint):
    return Tokenizer.from_dir(untied_checkpoint)


@pytest.fixture(scope="module")
def fp32_pte(planner, tmp_path_factory):
    path = tmp_path_factory.mktemp("pte") / "planner_fp32.pte"
    return export_planner_executorch(planner, path, max_seq_len=MAX_SEQ_LEN)


@pytest.fixture(scope="module")
def pixels(planner, sample_photo):
    return planner_view(load_photo(sample_photo), planner.config.vision.image_size)


@pytest.fixture(scope="module")
def prompt_ids(tokenizer):
    return tokenizer.encode_prompt(Request("auto").full_prompt())


def auto_prompt(backend, prompt_ids, pixels):
    return prompt_embeddings(backend, prompt_ids, backend.encode_image(pixels))


def greedy(backend, tokenizer, prompt, max_new_tokens):
    return generate(backend, tokenizer, prompt, EOS_IDS, SamplingOptions(max_new_tokens=max_new_tokens))


# --- structure -------------------------------------------------------------------------------------


def test_program_has_multimodal_methods_and_runner_metadata(fp32_pte, planner):
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(fp32_pte)
    assert PROGRAM_METHODS | RUNNER_METADATA <= program.method_names
    constant = lambda name: program.load_method(name).execute([])  # noqa: E731
    assert constant("get_max_seq_len") == [MAX_SEQ_LEN] and constant("get_max_context_len") == [MAX_SEQ_LEN]
    assert constant("get_eos_ids") == list(EOS_IDS) == list(planner.config.eos_token_ids)
    assert constant("get_vocab_size") == [planner.config.text["vocab_size"]]
    assert constant("use_kv_cache") == [True] and constant("enable_dynamic_shape") == [True]
    # The stock runner's decode step requires exactly one output from text_decoder.
    assert program.metadata("text_decoder").num_outputs() == 1
    assert program.metadata("text_decoder_with_hidden").num_outputs() == 2


def test_the_decoder_runs_on_executorch_llm_kernels(fp32_pte):
    """K/V writes and attention are ExecuTorch's LLM kernels, in both decoder methods."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(fp32_pte.read_bytes()).program
    operators = {plan.name: {op.name for op in plan.operators} for plan in program.execution_plan}
    for method in ("text_decoder", "text_decoder_with_hidden"):
        assert {"llama::update_cache", "llama::custom_sdpa"} <= operators[method], operators[method]


def test_a_fresh_runtime_process_registers_the_llm_kernels_itself(fp32_pte, planner):
    """The runtime loads and runs the decoder with no exporter (which defines the kernels' ops) imported."""
    import subprocess
    import sys

    embeds = torch.randn(3, planner.config.text["hidden_size"])
    ours = ExecuTorchPlanner(fp32_pte)
    expected = ours.decode(embeds.numpy())[0]
    script = (
        "import sys, numpy as np\n"
        "from vera_mobile.runtime.executorch_planner import ExecuTorchPlanner\n"
        "logits = ExecuTorchPlanner(sys.argv[1]).decode(np.load(sys.argv[2]))[0]\n"
        "assert not any(m.startswith(('export', 'vera_mobile.export')) for m in sys.modules)\n"
        "np.save(sys.argv[3], logits)\n"
    )
    folder = fp32_pte.parent
    np.save(folder / "embeds.npy", embeds.numpy())
    subprocess.run([sys.executable, "-c", script, str(fp32_pte), str(folder / "embeds.npy"), str(folder / "out.npy")],
                   check=True, capture_output=True)
    np.testing.assert_allclose(np.load(folder / "out.npy"), expected, atol=1e-5)


def test_vision_and_language_model_are_never_loaded_together_unless_resident(fp32_pte, tokenizer, pixels,
                                                                             prompt_ids, monkeypatch):
    import gc
    import weakref

    from executorch.runtime import Runtime

    resident = ExecuTorchPlanner(fp32_pte, resident=True)
    expected = greedy(resident, tokenizer, auto_prompt(resident, prompt_ids, pixels), 8)
    programs = []
    real_load = Runtime.load_program
    monkeypatch.setattr(Runtime, "load_program", lambda self, *a, **k: programs.append(
        weakref.ref(program := real_load(self, *a, **k))) or program)

    planner = ExecuTorchPlanner(fp32_pte)
    gc.collect()
    assert len(programs) == 1 and programs[0]() is None  # read for its sizes, then freed
    for photo in range(2):
        features = planner.encode_image(pixels)
        gc.collect()
        assert programs[-1]() is None and planner.position == 0  # the vision program is gone after one call
        result = greedy(planner, tokenizer, prompt_embeddings(planner, prompt_ids, features), 8)
        assert result.token_ids == expected.token_ids
        np.testing.assert_array_equal(result.retouch_hidden, expected.retouch_hidden)
        assert programs[-1]() is not None  # the language model stays for the rest of the photo ...
    language = programs[-1]
    planner.encode_image(pixels)
    gc.collect()
    assert language() is None  # ... and is freed before the next photo's vision encoder loads
    assert len(programs) == 1 + 2 * 2 + 1  # sizes; two photos of vision + language model; a third vision


# --- fp32 parity with the torch reference ------------------------------------------------------------


def test_each_method_matches_torch_reference(fp32_pte, planner, tokenizer, pixels, prompt_ids):
    reference, program = TorchPlanner(planner), ExecuTorchPlanner(fp32_pte)
    features = program.encode_image(pixels)
    np.testing.assert_allclose(features, reference.encode_image(pixels), atol=1e-4, rtol=0)
    ids = np.asarray(tokenizer.encode(" raise the exposure"), dtype=np.int64)
    np.testing.assert_allclose(program.embed(ids), reference.embed(ids), atol=1e-4, rtol=0)

    prompt = prompt_embeddings(reference, prompt_ids, reference.encode_image(pixels))
    reference.reset(), program.reset()
    chunks = [prompt, reference.embed(ids[:1]), reference.embed(ids[1:])]  # prefill, one step, a multi-token step
    for chunk in chunks:
        (ref_logits, ref_hidden), (logits, hidden) = reference.decode(chunk), program.decode(chunk)
        np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=0)
        np.testing.assert_allclose(hidden, ref_hidden, atol=1e-4, rtol=0)

    hidden3 = np.random.default_rng(0).standard_normal((3, planner.config.hidden_size)).astype(np.float32)
    for mask in ([1, 1, 1], [1, 0, 1], [0, 0, 0]):
        mask = np.asarray(mask, dtype=np.float32)
        np.testing.assert_allclose(program.latent(hidden3, mask), reference.latent(hidden3, mask), atol=1e-4, rtol=0)


def test_greedy_generation_identical_to_torch(fp32_pte, planner, tokenizer, pixels, prompt_ids):
    reference, program = TorchPlanner(planner), ExecuTorchPlanner(fp32_pte)
    expected = greedy(reference, tokenizer, auto_prompt(reference, prompt_ids, pixels), 24)
    result = greedy(program, tokenizer, auto_prompt(program, prompt_ids, pixels), 24)
    assert len(result.token_ids) >= 16
    assert result.token_ids == expected.token_ids
    np.testing.assert_allclose(result.retouch_hidden, expected.retouch_hidden, atol=1e-4, rtol=0)
    # A second sequence on the same program starts clean (reset only rewinds the position).
    again = greedy(program, tokenizer, auto_prompt(program, prompt_ids, pixels), 24)
    assert again.token_ids == expected.token_ids


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_prefill_in_chunks_generates_the_same_tokens(planner, tokenizer, pixels, prompt_ids, tmp_path):
    """A program taking at most 16 tokens per decoder call: the 86-position prompt goes in chunks."""
    path = export_planner_executorch(planner, tmp_path / "chunked.pte", max_seq_len=MAX_SEQ_LEN, max_call_len=16)
    program, reference = ExecuTorchPlanner(path), TorchPlanner(planner)
    assert (program.max_call_len, program.max_seq_len) == (16, MAX_SEQ_LEN)
    expected = greedy(reference, tokenizer, auto_prompt(reference, prompt_ids, pixels), 12)
    result = greedy(program, tokenizer, auto_prompt(program, prompt_ids, pixels), 12)
    assert result.token_ids == expected.token_ids
    np.testing.assert_allclose(result.retouch_hidden, expected.retouch_hidden, atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="max_call_len must be an integer from 2 to max_seq_len"):
        export_planner_executorch(planner, tmp_path / "bad.pte", max_seq_len=MAX_SEQ_LEN, max_call_len=MAX_SEQ_LEN + 1)


# --- ExecuTorch's stock multimodal runner ------------------------------------------------------------


def test_stock_multimodal_runner_generates_our_text(
    fp32_pte, untied_checkpoint, tokenizer, pixels, prompt_ids, tmp_path
):
    from executorch.extension.llm.runner import GenerationConfig, MultimodalRunner, make_image_input, make_text_input

    program = ExecuTorchPlanner(fp32_pte)
    ours = greedy(program, tokenizer, auto_prompt(program, prompt_ids, pixels), 32)
    # Preconditions of a like-for-like comparison on this random model: no EOS (the stock runner would
    # also print it), and only ids inside the tokenizer's vocabulary (the stock sampler's range).
    assert ours.stop_reason == "max_new_tokens"
    generated = ours.token_ids[:32]  # the rest are our loop's forced retouch tokens
    assert max(generated) < tokenizer.vocab_size
    # The runner hands each token's text to Python as a str, so compare up to the first token that is
    # only part of a UTF-8 character (random byte-level tokens can be).
    partial = [i for i, token in enumerate(generated) if "\ufffd" in tokenizer.decode([token])]
    new_tokens = partial[0] if partial else len(generated)
    assert new_tokens >= 8
    generated = generated[:new_tokens]

    tokenizer_file = tmp_path / "tokenizer.json"
    Tokenizer.from_dir(untied_checkpoint).save(tokenizer_file)
    runner = MultimodalRunner(str(fp32_pte), str(tokenizer_file))
    before, after = Request("auto").full_prompt().split(IMAGE_TOKEN)
    inputs = [make_text_input(before), make_image_input(torch.from_numpy(pixels)), make_text_input(after)]
    pieces: list[str] = []
    # Greedy, no prompt echo; the stock count includes the token sampled from the prefill, as ours does.
    runner.generate(inputs, GenerationConfig(echo=False, max_new_tokens=new_tokens, temperature=0.0), pieces.append)

    assert pieces == [tokenizer.decode([token]) for token in generated]
    assert "".join(pieces) == tokenizer.decode(generated)


# --- quantized recipes -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["8da4w", "8da4w-emb4", "8da8w", "8da4w-search-head8"])
def test_quantized_recipe_matches_its_eager_model_and_stays_close_to_fp32(
    recipe, planner, fp32_pte, tokenizer, pixels, prompt_ids, tmp_path
):
    path = tmp_path / f"planner_{recipe}.pte"
    export_planner_executorch(planner, path, recipe=recipe, max_seq_len=MAX_SEQ_LEN)
    assert path.stat().st_size < 0.5 * fp32_pte.stat().st_size
    assert type(planner.language_model.lm_head.weight) is torch.nn.Parameter  # quantized a copy, not the caller's model
    program, fp32 = ExecuTorchPlanner(path), ExecuTorchPlanner(fp32_pte)
    np.testing.assert_allclose(program.encode_image(pixels), fp32.encode_image(pixels), atol=1e-5)  # vision stays fp32

    # Teacher-forced over the fp32 greedy text, so both see the same tokens; each embeds them itself.
    reference = greedy(fp32, tokenizer, auto_prompt(fp32, prompt_ids, pixels), 16)
    ids = np.asarray(reference.token_ids[:16], dtype=np.int64)
    fp32_embeds = np.concatenate([auto_prompt(fp32, prompt_ids, pixels), fp32.embed(ids)])
    embeds = np.concatenate([auto_prompt(program, prompt_ids, pixels), program.embed(ids)])

    # 1. The lowering is right: the .pte computes what the eager torchao-quantized model computes.
    quantized_lm = quantize_language_model(planner.language_model, RECIPES[recipe], group_size=32)
    with torch.no_grad():
        eager_embeds = quantized_lm.model.embed_tokens(torch.from_numpy(ids)).numpy()
        np.testing.assert_allclose(program.embed(ids), eager_embeds, atol=1e-6)
        decoder = StaticCacheDecoder(quantized_lm, MAX_SEQ_LEN)
        eager_logits, eager_hidden = decoder(torch.from_numpy(embeds)[None], torch.arange(len(embeds)))
    logits, hidden = _fresh_decode(program, embeds)
    assert cosine(hidden, eager_hidden.numpy()) > 0.9999
    assert cosine(logits, eager_logits.numpy()) > 0.9999

    # 2. Quantization error against fp32 is small: hidden states and the control latent.
    cuts = (len(embeds) - 8, len(embeds) - 4, len(embeds))  # three positions stand in for the retouch tokens'
    fp32_states = np.stack([_fresh_decode(fp32, fp32_embeds[:cut])[1] for cut in cuts])
    quant_states = np.stack([_fresh_decode(program, embeds[:cut])[1] for cut in cuts])
    mask = np.ones(3, dtype=np.float32)
    latent_cosine = cosine(program.latent(quant_states, mask), fp32.latent(fp32_states, mask))
    print(f"{recipe}: {path.stat().st_size} bytes, hidden cosine {cosine(quant_states, fp32_states):.5f}, "
          f"latent cosine {latent_cosine:.5f}")
    assert latent_cosine > 0.9


@pytest.mark.slow
def test_int8_vision_encoder_matches_its_eager_model_and_stays_close_to_fp32(planner, fp32_pte, pixels, tmp_path):
    path = tmp_path / "planner_vision8.pte"
    export_planner_executorch(planner, path, max_seq_len=MAX_SEQ_LEN, vision="8da8w")
    features = ExecuTorchPlanner(path).encode_image(pixels)
    batch = torch.from_numpy(pixels)[None]
    with torch.no_grad():
        eager = quantize_vision_encoder(VisionEncoder(planner).eval(), batch)(batch)[0].numpy()
    assert cosine(features, eager) > 0.9999
    fp32_cosine = cosine(features, ExecuTorchPlanner(fp32_pte).encode_image(pixels))
    print(f"vision 8da8w: {path.stat().st_size} bytes, image-feature cosine to fp32 {fp32_cosine:.5f}")
    assert fp32_cosine > 0.99
    assert path.stat().st_size < fp32_pte.stat().st_size


def _fresh_decode(program: ExecuTorchPlanner, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    program.reset()
    return program.decode(embeds)


# --- bad input -----------------------------------------------------------------------------------------


def test_missing_or_foreign_program_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ExecuTorchPlanner(tmp_path / "nowhere.pte")
    junk = tmp_path / "junk.pte"
    junk.write_bytes(b"not a program")
    with pytest.raises(CheckpointError, match="not a loadable ExecuTorch program"):
        ExecuTorchPlanner(junk)

    from executorch.exir import to_edge

    foreign = tmp_path / "foreign.pte"
    exported = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    foreign.write_bytes(to_edge(exported).to_executorch().buffer)
    with pytest.raises(CheckpointError, match="vision_encoder.*token_embedding"):
        ExecuTorchPlanner(foreign)


def test_bad_method_inputs_are_input_errors(fp32_pte, planner):
    program = ExecuTorchPlanner(fp32_pte)
    hidden_size = planner.config.hidden_size
    with pytest.raises(InputError, match="pixels"):
        program.encode_image(np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(InputError, match="token ids"):
        program.embed(np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(InputError, match="embeddings"):
        program.decode(np.zeros((2, hidden_size + 1), dtype=np.float32))
    with pytest.raises(InputError, match="retouch head"):
        program.latent(np.zeros((2, hidden_size), dtype=np.float32), np.ones(3, dtype=np.float32))
    program.reset()
    program.decode(np.zeros((MAX_SEQ_LEN - 1, hidden_size), dtype=np.float32))
    with pytest.raises(InputError, match="max_seq_len"):
        program.decode(np.zeros((2, hidden_size), dtype=np.float32))


def test_bad_export_arguments_are_input_errors(planner, tmp_path):
    target = tmp_path / "planner.pte"
    with pytest.raises(InputError, match="recipe"):
        export_planner_executorch(planner, target, recipe="int4-weight-only")
    with pytest.raises(InputError, match="max_seq_len"):
        export_planner_executorch(planner, target, max_seq_len=1)
    with pytest.raises(InputError, match="vision recipe"):
        export_planner_executorch(planner, target, vision="int4")
    with pytest.raises(InputError, match="group_size 48"):
        export_planner_executorch(planner, target, recipe="8da4w", group_size=48)
    assert not target.exists()
