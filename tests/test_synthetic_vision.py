"""Synthetic checkpoints exercise the vision path: two photos give different image features and latents.

With PyTorch's default init the synthetic tower's output ignored the photo, so no test on a
synthetic checkpoint could see a preprocessing, orientation or image-splice bug. The features are
caught where the retoucher hands them to the planner (a spy on `encode_image`).
"""

import numpy as np
import pytest
from PIL import Image, ImageOps

from vera_mobile.runtime.generation import SamplingOptions
from vera_mobile.runtime.retoucher import Retoucher
from vera_mobile.testing.synthetic import write_synthetic_checkpoint


@pytest.fixture(scope="module")
def other_photo(sample_photo, tmp_path_factory):
    """Another real photo: the sample mirrored, with its colour channels rotated."""
    with Image.open(sample_photo) as image:
        red, green, blue = ImageOps.mirror(image.convert("RGB")).split()
    path = tmp_path_factory.mktemp("photos") / "other.png"
    Image.merge("RGB", (blue, red, green)).save(path)
    return path


def features_and_latent(retoucher: Retoucher, photo) -> tuple[np.ndarray, np.ndarray]:
    seen = []
    encode = retoucher.planner.encode_image
    retoucher.planner.encode_image = lambda pixels: seen.append(encode(pixels)) or seen[-1]
    try:
        result = retoucher.retouch(photo, sampling=SamplingOptions(max_new_tokens=4))
    finally:
        del retoucher.planner.encode_image
    assert len(seen) == 1
    return seen[0], result.latent


def assert_photo_dependent(retoucher: Retoucher, sample_photo, other_photo) -> None:
    features_a, latent_a = features_and_latent(retoucher, sample_photo)
    features_b, latent_b = features_and_latent(retoucher, other_photo)
    again, _ = features_and_latent(retoucher, sample_photo)
    np.testing.assert_array_equal(features_a, again)  # deterministic, so a difference is the photo's
    # "Clearly": the features differ by a good fraction of their own spread across the image's patches.
    assert np.abs(features_a - features_b).max() > 0.1 * features_a.std(axis=0).max()
    assert np.abs(features_a - features_b).mean() > 1e-3
    assert np.abs(latent_a - latent_b).max() > 1e-3


def test_tiny_synthetic_features_and_latent_follow_the_photo(tiny_checkpoint, sample_photo, other_photo):
    assert_photo_dependent(Retoucher.from_pretrained(tiny_checkpoint), sample_photo, other_photo)


@pytest.mark.slow
def test_full_size_synthetic_features_and_latent_follow_the_photo(tmp_path, sample_photo, other_photo):
    checkpoint = write_synthetic_checkpoint(tmp_path / "VeraRetouch", size="full", dtype="bfloat16")
    assert_photo_dependent(Retoucher.from_pretrained(checkpoint), sample_photo, other_photo)
