"""Folding: condition() + render_points() compute the reference renderer within fp32 rounding."""

import pytest
import torch

from vera_mobile.models.folded_renderer import FoldedRenderer
from conftest import random_renderer

from vera_mobile.models.renderer import ConditionalMLPDecoder, expand_mask


@pytest.mark.parametrize("latent_dim, hidden_dims", [(896, (128, 256, 512)), (16, (8, 16, 32)), (4, (5, 7))])
def test_folded_equals_reference(latent_dim, hidden_dims):
    decoder = random_renderer(latent_dim, hidden_dims, seed=latent_dim)
    folded = FoldedRenderer(decoder)
    points = torch.rand(20_000, 3) * 2 - 1
    points[:8] = torch.tensor([[-1, -1, -1], [1, 1, 1], [-1, 1, -1], [1, -1, 1], [0, 0, 0], [1, 0, -1], [-1, 0, 1], [0.5, 0.5, 0.5]])
    for mask in ([1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]):
        latent = torch.randn(1, 3 * latent_dim) * 2
        mask_t = torch.tensor([mask])
        with torch.no_grad():
            reference = decoder(points[None], latent * expand_mask(mask_t, latent_dim))[0]
            biases = folded.condition(latent, mask_t)
            out = folded.render_points(points, biases[0])
        assert biases.shape == (1, folded.bias_size) == (1, sum(hidden_dims[1:]) + 3)
        torch.testing.assert_close(out, reference, atol=2e-6, rtol=0)


def test_masked_groups_do_not_affect_the_biases():
    folded = FoldedRenderer(random_renderer(16, (8, 16, 32), seed=1))
    latent = torch.randn(1, 48)
    changed = latent.clone()
    changed[:, 16:32] = torch.randn(1, 16)  # only the masked-off colour&temp slice differs
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    with torch.no_grad():
        assert torch.equal(folded.condition(latent, mask), folded.condition(changed, mask))
        assert not torch.equal(folded.condition(latent, torch.ones(1, 3)), folded.condition(changed, torch.ones(1, 3)))


def test_upstream_bias_vector_size():
    assert FoldedRenderer(ConditionalMLPDecoder()).bias_size == 771
