"""The export-friendly decoders compute what transformers' Qwen2 computes, step by step."""

import torch

from vera_mobile.models.kv_decoder import PastKeyValueDecoder, StaticCacheDecoder


def reference(tiny_planner, embeds):
    lm = tiny_planner.language_model
    with torch.no_grad():
        hidden = lm.model(inputs_embeds=embeds).last_hidden_state[0]
        return lm.lm_head(hidden), hidden


def test_static_cache_decoder_matches_transformers_over_prefill_and_steps(tiny_planner):
    lm = tiny_planner.language_model
    torch.manual_seed(0)
    embeds = lm.model.embed_tokens(torch.randint(0, 151_000, (1, 12))).detach()
    logits, hidden = reference(tiny_planner, embeds)
    decoder = StaticCacheDecoder(lm, max_seq_len=32)
    with torch.no_grad():
        for chunk in ((0, 7), (7, 8), (8, 12)):  # prefill, one step, a multi-token step
            out_logits, out_hidden = decoder(embeds[:, chunk[0]:chunk[1]], torch.arange(*chunk))
            torch.testing.assert_close(out_hidden[0], hidden[chunk[1] - 1], atol=1e-5, rtol=0)
            torch.testing.assert_close(out_logits[0], logits[chunk[1] - 1], atol=1e-5, rtol=0)
        decoder.reset()  # a new sequence must not see the old one
        _, again = decoder(embeds[:, :7], torch.arange(7))
    torch.testing.assert_close(again[0], hidden[6], atol=1e-5, rtol=0)


def test_past_key_value_decoder_matches_transformers(tiny_planner):
    lm = tiny_planner.language_model
    torch.manual_seed(1)
    embeds = lm.model.embed_tokens(torch.randint(0, 151_000, (1, 10))).detach()
    logits, hidden = reference(tiny_planner, embeds)
    decoder = PastKeyValueDecoder(lm, max_seq_len=32)
    core = decoder.core
    keys = values = torch.zeros(len(core.layers), core.num_kv_heads, 0, core.head_dim)
    with torch.no_grad():
        for start, end in ((0, 6), (6, 7), (7, 10)):
            out_logits, out_hidden, keys, values = decoder(embeds[:, start:end], keys, values)
            torch.testing.assert_close(out_hidden[0], hidden[end - 1], atol=1e-5, rtol=0)
            torch.testing.assert_close(out_logits[0], logits[end - 1], atol=1e-5, rtol=0)
    assert keys.shape == (len(core.layers), core.num_kv_heads, 10, core.head_dim)
