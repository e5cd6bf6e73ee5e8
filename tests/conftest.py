"""Shared fixtures: a tiny synthetic checkpoint in the exact upstream layout, and real photos."""

import importlib.util
from pathlib import Path

import pytest

SAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "vera_mobile" / "assets" / "sample_coffee.jpg"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from vera_mobile.testing.synthetic import write_synthetic_checkpoint

    return write_synthetic_checkpoint(tmp_path_factory.mktemp("tiny") / "VeraRetouch", size="tiny")


@pytest.fixture(scope="session")
def tiny_planner(tiny_checkpoint):
    from vera_mobile.models.checkpoint import load_planner

    model, _ = load_planner(tiny_checkpoint)
    return model


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    return SAMPLE_PHOTO


def skimage_photo(name: str) -> Path:
    """A real photo shipped inside the scikit-image wheel (CC0 / public domain), without importing skimage."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-image (which ships the sample photos) is not installed")
    return Path(spec.submodule_search_locations[0]) / "data" / name


def random_renderer(latent_dim: int, hidden_dims: tuple[int, ...], seed: int, spread: float = 0.3):
    """A seeded renderer whose LayerNorm affine is not the identity, so folding mistakes show."""
    import torch

    from vera_mobile.models.renderer import ConditionalMLPDecoder

    torch.manual_seed(seed)
    decoder = ConditionalMLPDecoder(latent_dim, hidden_dims).eval()
    with torch.no_grad():
        for norm in decoder.layer_norms:
            norm.weight.normal_(1.0, spread)
            norm.bias.normal_(0.0, spread)
    return decoder
