"""Regenerate the Encoder-Renderer fixtures from upstream's own code. Not run by CI.

Needs torch plus an upstream checkout (github.com/OpenVeraTeam/VeraRetouch) and the packages its
model modules import at load time (torchvision, transformers, peft, diffusers, attrdict3):

    python tests/data/make_encoder_renderer_golden.py --upstream /path/to/VeraRetouch

Writes, next to this script:
- `upstream_encoder_renderer_keys.json`: upstream's state-dict keys, shapes and dtypes, in order.
- `encoder_renderer_golden.safetensors`: inputs and upstream's outputs for the full-size model
  with the deterministic weights of `golden_state_dict` below. The ~60 MB of weights are not
  stored: the test regenerates them, which relies on CPU `torch.randn` with a seeded generator
  giving the same numbers across torch versions (checked for 2.13.0 and 2.14.1).

The tests import `golden_state_dict` from this file, so it must stay importable with torch alone.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import zlib
from pathlib import Path

import torch

MODEL_NAME = "RetouchRenderer_Resnet18Encoder_InputCatMixedCBAM"
HERE = Path(__file__).resolve().parent
KEYS_FILE = HERE / "upstream_encoder_renderer_keys.json"
GOLDEN_FILE = HERE / "encoder_renderer_golden.safetensors"
CHUNK = 100  # a chunk size that does not divide the golden image's 24·32 pixels


def golden_tensor(name: str, like: torch.Tensor) -> torch.Tensor:
    """A deterministic weight for state-dict entry `name`, scaled so activations stay in a useful range.

    Seeded by the CRC-32 of the name, so the value does not depend on which other keys exist.
    """
    if not like.is_floating_point():
        return torch.zeros(like.shape, dtype=like.dtype)  # BatchNorm's num_batches_tracked
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("running_var"):
        return 0.5 + torch.rand(like.shape, generator=generator)  # a valid (positive) variance
    noise = torch.randn(like.shape, generator=generator)
    if like.dim() > 1:  # conv / linear weight: unit gain for unit-variance inputs
        return noise / math.sqrt(like[0].numel())
    if name.endswith("weight"):  # 1-D weights are BatchNorm / LayerNorm scales
        return 1.0 + 0.1 * noise
    return 0.1 * noise  # biases and running means


def golden_state_dict(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`golden_tensor` for every entry of a state dict (only names, shapes and dtypes are used)."""
    return {name: golden_tensor(name, tensor) for name, tensor in reference.items()}


def golden_inputs() -> dict[str, torch.Tensor]:
    """A small photo and 64² references: the encoder ends in a global average pool, so any size works."""
    generator = torch.Generator().manual_seed(2024)
    return {
        "image": torch.rand(1, 3, 24, 32, generator=generator) * 2 - 1,
        "ref_before": torch.rand(1, 3, 64, 64, generator=generator) * 2 - 1,
        "ref_after": torch.rand(1, 3, 64, 64, generator=generator) * 2 - 1,
        # The middle group off, so the fixture also covers masking.
        "mask": torch.tensor([[1.0, 0.0, 1.0]]),
    }


def _upstream_model(upstream: Path) -> torch.nn.Module:
    sys.path.insert(0, str(upstream))
    import utils  # upstream's root utils.py: get_model builds a RetouchRenderer from configs/

    return utils.get_model(MODEL_NAME).eval()


def _upstream_commit(upstream: Path) -> str:
    result = subprocess.run(["git", "-C", str(upstream), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def _write_keys(state: dict[str, torch.Tensor], commit: str) -> None:
    entries = [
        json.dumps({"key": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")})
        for name, t in state.items()
    ]
    header = json.dumps({"upstream_commit": commit, "model_name": MODEL_NAME})[:-1]
    KEYS_FILE.write_text(header + ', "entries": [\n' + ",\n".join(entries) + "\n]}\n")


def main() -> None:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="checkout of OpenVeraTeam/VeraRetouch")
    args = parser.parse_args()

    model = _upstream_model(args.upstream.resolve())
    commit = _upstream_commit(args.upstream)
    _write_keys(model.state_dict(), commit)
    model.load_state_dict(golden_state_dict(model.state_dict()))

    inputs = golden_inputs()
    with torch.no_grad():
        latent = model.encoder(inputs["ref_before"], inputs["ref_after"])
        # Masked exactly as upstream's RetouchRenderer.forward does before calling its decoder.
        mask = inputs["mask"]
        latent = latent * mask.unsqueeze(-1).expand(-1, -1, model.decoder.latent_dim).reshape(mask.shape[0], -1)
        output = model(inputs["image"], inputs["ref_before"], inputs["ref_after"], inputs["mask"])
        chunked = model(inputs["image"], inputs["ref_before"], inputs["ref_after"], inputs["mask"], CHUNK)
    print(f"upstream chunked vs unchunked max abs diff: {(chunked - output).abs().max().item():.3g}")
    print(f"output range [{output.min().item():.4f}, {output.max().item():.4f}], std {output.std().item():.4f}")

    tensors = {**inputs, "latent": latent, "output": output}
    metadata = {"upstream_commit": commit, "model_name": MODEL_NAME, "torch": torch.__version__}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(GOLDEN_FILE), metadata=metadata)
    print(f"wrote {KEYS_FILE.name} and {GOLDEN_FILE.name}")


if __name__ == "__main__":
    main()
