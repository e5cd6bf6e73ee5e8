"""The int4 scale search (export/weight_scales.py): never worse than min/max rounding on the error it
minimises, and weighted by what the calibration inputs measure."""

import pytest
import torch

pytest.importorskip("torchao")

from vera_mobile.export.weight_scales import (  # noqa: E402
    INT4_MAX,
    INT4_MIN,
    MINMAX_DIVISOR,
    input_power,
    search_scales,
)


def _rounded(weight: torch.Tensor, scales: torch.Tensor, group: int) -> torch.Tensor:
    w = weight.reshape(weight.shape[0], -1, group)
    return (torch.clamp(torch.round(w / scales[..., None]), INT4_MIN, INT4_MAX) * scales[..., None]).reshape(weight.shape)


def test_searched_scales_beat_min_max_on_the_weighted_error_of_every_group():
    torch.manual_seed(0)
    weight = torch.distributions.StudentT(3.0).sample((96, 128))  # heavy tails: outliers set min/max scales
    power = torch.rand(128) ** 4  # a few input channels carry most of the signal
    scales = search_scales(weight, 32, power)
    assert scales.shape == (96, 4) and bool((scales > 0).all())  # positive: XNNPACK rejects negative scales
    minmax = weight.reshape(96, 4, 32).abs().amax(-1) / MINMAX_DIVISOR
    per_group = lambda s: (power * (_rounded(weight, s, 32) - weight) ** 2).reshape(96, 4, 32).sum(-1)  # noqa: E731
    searched_error, minmax_error = per_group(scales), per_group(minmax)
    assert bool((searched_error <= minmax_error + 1e-6).all())
    assert searched_error.sum() < 0.9 * minmax_error.sum()  # 0.80 with this seed


def test_unweighted_search_covers_many_rows_in_chunks():
    weight = torch.randn(20_000, 64)  # more rows than one chunk of the search
    scales = search_scales(weight, 32)
    assert scales.shape == (20_000, 2) and torch.isfinite(scales).all()
    assert torch.equal(scales[:3], search_scales(weight[:3], 32))  # chunking changes nothing


def test_input_power_is_the_mean_square_of_each_linears_input(tiny_planner):
    language_model = tiny_planner.language_model.eval()
    embeds = [language_model.model.embed_tokens(torch.arange(3, 3 + n)).detach() for n in (5, 11)]
    hooks = lambda: sum(len(m._forward_hooks) for m in language_model.modules())  # noqa: E731
    before = hooks()
    power = input_power(language_model, embeds)
    assert hooks() == before  # ours are removed
    linears = {name for name, m in language_model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(power) == linears
    # lm_head's input is the final-norm hidden state: check it against transformers' own.
    hidden = [language_model(inputs_embeds=e[None], output_hidden_states=True).hidden_states[-1][0] for e in embeds]
    expected = (torch.cat(hidden) ** 2).mean(0)
    torch.testing.assert_close(power["lm_head"], expected.detach(), rtol=1e-4, atol=1e-6)
