"""The shared generation loop: latent gathering as upstream, forced retouch tokens, sampling, streaming."""

import dataclasses

import numpy as np
import pytest
import torch

from vera_mobile.errors import InputError
from vera_mobile.photo_io import load_photo
from vera_mobile.prompts import RETOUCH_TOKENS, Request
from vera_mobile.runtime.generation import SamplingOptions, generate, prompt_embeddings
from vera_mobile.runtime.torch_backend import TorchPlanner
from vera_mobile.tokenizer import Tokenizer
from vera_mobile.views import planner_view


class ScriptedPlanner(TorchPlanner):
    """The real torch planner, except that the next token is chosen by a script.

    The model computes every hidden state for real; only the choice of token is scripted, so we
    can place retouch tokens where we want and check which states the loop gathers.
    """

    def __init__(self, model, script):
        super().__init__(model)
        self.script, self.step = list(script), 0

    def decode(self, embeds):
        logits, hidden = super().decode(embeds)
        if self.step < len(self.script):
            logits = np.full_like(logits, -1e9)
            logits[self.script[self.step]] = 0.0
        self.step += 1
        return logits, hidden


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return Tokenizer.from_dir(tiny_checkpoint)


@pytest.fixture(scope="module")
def auto_prompt(tiny_planner, tokenizer, sample_photo):
    backend = TorchPlanner(tiny_planner)
    features = backend.encode_image(planner_view(load_photo(sample_photo), backend.image_size))
    return prompt_embeddings(backend, tokenizer.encode_prompt(Request("auto").full_prompt()), features)


def test_an_image_prompt_without_features_is_an_input_error(tiny_planner, tokenizer):
    ids = tokenizer.encode_prompt(Request("auto").full_prompt())
    with pytest.raises(InputError, match="<image> placeholder but no image features"):
        prompt_embeddings(TorchPlanner(tiny_planner), ids, None)


def full_forward_hidden(model, prompt_embeds, generated):
    """Final-norm hidden states of one non-cached forward pass over prompt + generated tokens."""
    with torch.no_grad():
        gen = model.embed_tokens(torch.tensor(generated))
        embeds = torch.cat([torch.from_numpy(prompt_embeds), gen])[None]
        return model.language_model.model(inputs_embeds=embeds).last_hidden_state[0].numpy()


def test_prompt_splices_image_features(auto_prompt, tokenizer, tiny_planner):
    ids = tokenizer.encode_prompt(Request("auto").full_prompt())
    assert ids.count(-200) == 1
    assert auto_prompt.shape == (len(ids) - 1 + tiny_planner.config.vision.num_patches, tiny_planner.config.hidden_size)


def test_latent_states_equal_full_forward_at_position_before_each_retouch_token(tiny_planner, tokenizer, auto_prompt):
    light, colortemp, colormixer = tokenizer.retouch_ids
    words = tokenizer.encode(" the photo is dark. raise exposure")
    script = [*words, light, *words[:2], colortemp, colormixer, light, 151645]  # second <retouch_light> ignored
    backend = ScriptedPlanner(tiny_planner, script)
    result = generate(backend, tokenizer, auto_prompt, eos_ids=[151645], options=SamplingOptions())

    assert result.stop_reason == "eos" and result.forced_tokens == []
    assert result.token_ids == script[:-1]
    hidden = full_forward_hidden(tiny_planner, auto_prompt, result.token_ids)
    prompt_length = auto_prompt.shape[0]
    for row, token in enumerate((light, colortemp, colormixer)):
        t = result.token_ids.index(token)  # first occurrence, as upstream
        np.testing.assert_allclose(result.retouch_hidden[row], hidden[prompt_length + t - 1], atol=2e-5)
        # and it is NOT the state at the retouch token's own position
        assert not np.allclose(result.retouch_hidden[row], hidden[prompt_length + t], atol=1e-3)


def test_retouch_token_as_first_generated_token_uses_last_prompt_state(tiny_planner, tokenizer, auto_prompt):
    # Upstream crashes on t = 0; here the state is the last prompt position's.
    script = [*tokenizer.retouch_ids, 151645]
    result = generate(ScriptedPlanner(tiny_planner, script), tokenizer, auto_prompt, [151645], SamplingOptions())
    hidden = full_forward_hidden(tiny_planner, auto_prompt, result.token_ids)
    np.testing.assert_allclose(result.retouch_hidden[0], hidden[auto_prompt.shape[0] - 1], atol=2e-5)


def test_missing_retouch_tokens_are_forced_at_eos(tiny_planner, tokenizer, auto_prompt):
    light, colortemp, colormixer = tokenizer.retouch_ids
    words = tokenizer.encode(" fine as is")
    script = [*words, colortemp, *words, 151645]
    result = generate(ScriptedPlanner(tiny_planner, script), tokenizer, auto_prompt, [151645], SamplingOptions())

    assert result.forced_tokens == [RETOUCH_TOKENS[0], RETOUCH_TOKENS[2]]
    assert result.token_ids == [*words, colortemp, *words, light, colormixer]
    # Forced tokens follow the same rule: the state before each, in the completed sequence.
    hidden = full_forward_hidden(tiny_planner, auto_prompt, result.token_ids)
    p = auto_prompt.shape[0]
    for row, token in enumerate((light, colortemp, colormixer)):
        np.testing.assert_allclose(result.retouch_hidden[row], hidden[p + result.token_ids.index(token) - 1], atol=2e-5)


def test_missing_retouch_tokens_are_forced_at_max_new_tokens(tiny_planner, tokenizer, auto_prompt):
    words = tokenizer.encode(" a b c d e f g h")
    result = generate(
        ScriptedPlanner(tiny_planner, words), tokenizer, auto_prompt, [151645], SamplingOptions(max_new_tokens=5)
    )
    assert result.stop_reason == "max_new_tokens"
    assert result.token_ids == [*words[:5], *tokenizer.retouch_ids]
    assert result.forced_tokens == list(RETOUCH_TOKENS)
    hidden = full_forward_hidden(tiny_planner, auto_prompt, result.token_ids)
    p = auto_prompt.shape[0]
    np.testing.assert_allclose(result.retouch_hidden[0], hidden[p + 5 - 1], atol=2e-5)
    np.testing.assert_allclose(result.retouch_hidden[2], hidden[p + 7 - 1], atol=2e-5)


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(tiny_planner, tokenizer, auto_prompt):
    backend = TorchPlanner(tiny_planner)
    run = lambda options: generate(backend, tokenizer, auto_prompt, [151645], options).token_ids  # noqa: E731
    assert run(SamplingOptions(max_new_tokens=12)) == run(SamplingOptions(max_new_tokens=12))
    sampled = SamplingOptions(max_new_tokens=12, temperature=1.5, top_p=0.95, seed=7)
    assert run(sampled) == run(SamplingOptions(max_new_tokens=12, temperature=1.5, top_p=0.95, seed=7))
    assert run(sampled) != run(SamplingOptions(max_new_tokens=12, temperature=1.5, top_p=0.95, seed=8))


@pytest.mark.parametrize(("options", "message"), [
    (dict(temperature=-0.5), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(top_p=1.5), r"top_p must lie in \(0, 1\]"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be a whole number"),
    (dict(seed=-1), "seed must be a whole number"),
])
def test_sampling_options_check_themselves_once_and_stay_checked(options, message):
    with pytest.raises(InputError, match=message):
        SamplingOptions(**options)
    checked = SamplingOptions(max_new_tokens=4)
    with pytest.raises(dataclasses.FrozenInstanceError):  # so no later change can skip the check
        checked.top_p = 0  # type: ignore[misc]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    sampler = SamplingOptions(temperature=1.0, top_p=0.75, seed=0).make_sampler()
    assert {sampler(logits) for _ in range(300)} == {0, 1}


def test_streamed_pieces_add_up_to_the_text(tiny_planner, tokenizer, auto_prompt):
    words = tokenizer.encode(" café ✨ 温暖的色调 and more")  # multi-byte characters split over tokens
    pieces = []
    result = generate(
        ScriptedPlanner(tiny_planner, [*words, 151645]), tokenizer, auto_prompt, [151645], SamplingOptions(),
        on_token=pieces.append,
    )
    assert "".join(pieces) == tokenizer.decode(result.token_ids, skip_special_tokens=True)
    assert all("\ufffd" not in piece for piece in pieces)
