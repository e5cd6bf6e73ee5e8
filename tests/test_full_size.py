"""Full FastVLM-0.5B-sized checkpoint in the upstream layout (slow: ~1.3 GB file, ~3 GB RAM)."""

import pytest

from vera_mobile.describe import describe
from vera_mobile.models.checkpoint import load_planner
from vera_mobile.runtime.generation import SamplingOptions
from vera_mobile.runtime.retoucher import Retoucher
from vera_mobile.testing.synthetic import write_synthetic_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory):
    return write_synthetic_checkpoint(tmp_path_factory.mktemp("full") / "VeraRetouch", size="full", dtype="bfloat16")


def test_full_size_checkpoint_loads_with_zero_unexplained_keys(full_checkpoint):
    report = describe(full_checkpoint)
    assert report["key_check"] == "ok"
    assert report["tensors"] == 953 and report["tied_lm_head"] is True  # 629 + 290 + 4 + 10 + 20
    assert report["components"]["vision_tower"]["tensors"] == 629
    model, load = load_planner(full_checkpoint)
    assert load.parameters == 634_283_619
    assert load.stored_dtypes == {"BF16": 909, "I64": 44}


def test_full_size_auto_retouch(full_checkpoint, sample_photo):
    result = Retoucher.load(full_checkpoint).retouch(sample_photo, sampling=SamplingOptions(max_new_tokens=4))
    assert result.latent.shape == (2688,)
    assert result.image.shape == (400, 600, 3)


def test_full_size_int4_bundle_reproduces_its_golden_vectors(full_checkpoint, tmp_path, sample_photo):
    """The int4 bundle at full size (ExecuTorch 8da4w-search-head8, Core ML int4-block32-head8): every artifact
    written, ExecuTorch replays its golden vectors and retouches end to end (~15 min, ~8 GB RAM)."""
    from vera_mobile.export.bundle import export_bundle
    from vera_mobile.export.planner_coreml import inspect_planner_coreml
    from vera_mobile.runtime.selfcheck import check_bundle

    out = export_bundle(full_checkpoint, tmp_path / "bundle", ("executorch", "coreml"), quant="int4")
    assert check_bundle(out, "executorch") == {"renderer": [], "planner": []}
    decoder = inspect_planner_coreml(out / "planner_language_model.mlpackage", "text_decoder")
    assert len(decoder["states"]) == 48 and decoder["compression"]["constexpr_blockwise_shift_scale"] == 24 * 7 + 1
    # The tied 151,936 x 896 matrix is stored once, int8 with a scale per row, for both functions.
    assert decoder["shared_weight_elements"] == 151_936 * 896 + 151_936
    result = Retoucher.load(out, "executorch").retouch(sample_photo, sampling=SamplingOptions(max_new_tokens=8))
    assert result.latent.shape == (2688,) and result.image.shape == (400, 600, 3)
