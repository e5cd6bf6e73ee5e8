"""Make the FastViTHD test fixtures from upstream's own code. Not run by CI.

Needs an environment with torch, timm (1.0.x, hence torchvision), safetensors and numpy, plus a
copy of upstream's `llava/model/multimodal_encoder/mobileclip/` package (its `__init__.py`,
`mci.py`, `configs/`). Pass the folder that contains that `mobileclip/` folder:

    python tests/data/make_fastvit_golden.py --upstream /tmp/vt            # write the fixtures
    python tests/data/make_fastvit_golden.py --upstream /tmp/vt --check    # also compare at full size

Writes, next to this script:
  upstream_fastvithd_keys.json     [name, shape, dtype] of every tensor in upstream's
                                   `MCi("fastvithd", projection_dim=768)` state dict, i.e. the
                                   checkpoint's `model.vision_tower.vision_tower.model.*` names with
                                   that prefix removed (629 entries, 44 of them num_batches_tracked).
  fastvit_small_golden.safetensors a small upstream FastViT (SMALL_CONFIG) with every tensor filled
                                   with deterministic values: its weights under upstream names,
                                   `golden.pixels_u8` (input = pixels_u8 / 255) and
                                   `golden.embeddings` (upstream's image_embeddings, flattened to
                                   [B, H*W, C] as upstream's feature_select does); metadata
                                   "config" = the FastViTConfig overrides as JSON.

`--check` runs upstream, vera_mobile's FastViTHD and timm's re-parameterized `fastvit_mci3`
(weights remapped with `to_timm_name`) on one random 1024x1024 image with the full-size tower
filled as above, and prints the max abs differences. Last run (torch 2.14.1 CPU, timm 1.0.31),
output [1,256,3072] with max |ref| 8.15: vera_mobile 2.9e-6, timm 4.8e-6 (float32).
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
from functools import partial
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SEED = 1234

# Small but structurally complete: every block type, two blocks in the first stage, attention
# with 1 head (width 32) and 2 heads (width 64), RepCPE before both attention stages.
SMALL_CONFIG = {
    "layers": [2, 1, 1, 1, 1],
    "embed_dims": [8, 16, 32, 32, 64],
    "image_size": 128,
    "projection_dim": 16,
}
# Not square, so a transposed flatten (W before H) would be caught: 128x192 -> 2x3 embeddings.
SMALL_INPUT_SHAPE = (2, 3, 128, 192)


def build_upstream(mobileclip, layers, embed_dims, projection_dim):
    """Upstream's FastViT exactly as `fastvithd()` + `MCi(projection_dim=...)` build it."""
    mci = mobileclip.mci
    rep_cpe = partial(mci.RepCPE, spatial_shape=(7, 7))
    model = mci.FastViT(
        list(layers),
        token_mixers=("repmixer", "repmixer", "repmixer", "attention", "attention"),
        embed_dims=list(embed_dims),
        pos_embs=[None, None, None, rep_cpe, rep_cpe],
        mlp_ratios=[4] * 5,
        downsamples=[True] * 5,
        norm_layer=mci.LayerNormChannel,
        stem_scale_branch=False,
        inference_mode=True,
    )
    model.head = mobileclip.MCi._update_image_classifier(model.head, projection_dim=projection_dim)
    return model.eval()


def fill_deterministic(model: torch.nn.Module, seed: int = SEED) -> None:
    """Overwrite every tensor with seeded values that keep activations O(1) through the network.

    Random init alone would leave layer scales at 1e-5 (blocks ~ identity) and BN at unit stats,
    which would hide mistakes in those paths.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g)

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    with torch.no_grad():
        for i, (name, t) in enumerate(sorted(model.state_dict().items())):
            shape = t.shape
            if name.endswith("num_batches_tracked"):
                value = torch.tensor(1000 + i)
            elif name.endswith("running_var"):
                value = uniform(shape, 0.5, 2.0)
            elif name.endswith(("running_mean", "bn.bias", "norm.bias")):
                value = 0.2 * randn(shape)
            elif name.endswith(("bn.weight", "norm.weight")):
                value = 1.0 + 0.2 * randn(shape)
            elif "layer_scale" in name:
                value = uniform(shape, 0.2, 0.8)
            elif name.endswith("bias"):
                value = 0.1 * randn(shape)
            else:  # conv / linear weight, or head.proj [in, out]
                fan_in = shape[0] if name == "head.proj" else shape[1:].numel()
                value = randn(shape) / fan_in**0.5
                # Folded RepMixer / RepCPE convs contain their residual: identity centre tap plus a
                # small learned part (a full-size random part would compound over 42 blocks).
                if "token_mixer.reparam_conv" in name or re.fullmatch(r"network\.\d+\.reparam_conv\.weight", name):
                    value *= 0.2
                    value[:, 0, shape[2] // 2, shape[3] // 2] += 1.0
            t.copy_(value.to(t.dtype))


def upstream_embeddings(model, pixels):
    """What upstream's MobileCLIPVisionTower returns: conv_exp output as [B, H*W, C]."""
    x = model(pixels, return_image_embeddings=True)["image_embeddings"]
    B, C, H, W = x.shape
    return x.reshape(B, C, H * W).transpose(1, 2)


def to_timm_name(name: str, stage_of_network_index: list[int]) -> str:
    """Upstream FastViTHD tensor name -> timm `fastvit_mci3` (re-parameterized) tensor name."""
    name = name.replace("patch_embed.", "stem.").replace("conv_exp.", "final_conv.")
    name = name.replace("se.reduce.", "se.fc1.").replace("se.expand.", "se.fc2.")
    name = name.replace(".convffn.", ".mlp.")
    name = re.sub(r"(layer_scale(_\d)?)$", r"\1.gamma", name)
    m = re.match(r"network\.(\d+)\.(.*)", name)
    if m:
        stage, rest = stage_of_network_index[int(m.group(1))], m.group(2)
        if rest.startswith("proj."):
            rest = "downsample." + rest.replace("lkb_reparam", "reparam_conv")
        elif rest.startswith("reparam_conv."):
            rest = "pos_emb." + rest
        else:
            rest = "blocks." + rest
        name = f"stages.{stage}.{rest}"
    return name


def upstream_to_timm(state_dict: dict) -> dict:
    # Downsamples (`network.n.proj.*`) open stages 1..4; everything else belongs to the stage opened last.
    ends = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"network\.(\d+)\.proj\.", k))})
    count = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"network\.(\d+)\.", k)))
    stage_of = [bisect.bisect_right(ends, n) for n in range(count)]
    out = {}
    for k, v in state_dict.items():
        if k == "head.proj":
            out["head.fc.weight"] = v.T.contiguous()
            out["head.fc.bias"] = torch.zeros(v.shape[1])
        else:
            out[to_timm_name(k, stage_of)] = v
    return out


def write_keys(mobileclip) -> None:
    model = mobileclip.MCi(model_name="fastvithd", projection_dim=768).model
    items = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    path = HERE / "upstream_fastvithd_keys.json"
    path.write_text("[\n" + ",\n".join(json.dumps(item) for item in items) + "\n]\n")
    print(f"{path.name}: {len(items)} tensors")


def write_small_golden(mobileclip) -> None:
    from safetensors.torch import save_file

    model = build_upstream(mobileclip, SMALL_CONFIG["layers"], SMALL_CONFIG["embed_dims"], SMALL_CONFIG["projection_dim"])
    fill_deterministic(model)
    g = torch.Generator().manual_seed(SEED + 1)
    pixels_u8 = torch.randint(0, 256, SMALL_INPUT_SHAPE, generator=g, dtype=torch.uint8)
    with torch.no_grad():
        embeddings = upstream_embeddings(model, pixels_u8.float() / 255)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["golden.pixels_u8"] = pixels_u8
    tensors["golden.embeddings"] = embeddings.contiguous()
    path = HERE / "fastvit_small_golden.safetensors"
    save_file(tensors, path, metadata={"config": json.dumps(SMALL_CONFIG)})
    print(f"{path.name}: {len(tensors) - 2} weights, embeddings {list(embeddings.shape)}, "
          f"std {embeddings.std():.3f}, {path.stat().st_size} bytes")


def check_full_size(mobileclip) -> None:
    """Upstream vs vera_mobile vs timm on one random 1024x1024 image, full-size tower."""
    import timm
    from timm.utils.model import reparameterize_model

    sys.path.insert(0, str(HERE.parents[1]))
    from vera_mobile.models.fastvit import FastViTConfig, FastViTHD

    torch.manual_seed(0)
    upstream = mobileclip.MCi(model_name="fastvithd", projection_dim=768).model.eval()
    fill_deterministic(upstream)
    sd = upstream.state_dict()
    pixels = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(SEED + 2))

    ours = FastViTHD(FastViTConfig.from_upstream("mobileclip_l_1024"))
    ours.load_state_dict(sd, strict=True)

    tm = reparameterize_model(timm.create_model("fastvit_mci3", num_classes=768)).eval()
    tm.load_state_dict(upstream_to_timm(sd), strict=True)

    with torch.no_grad():
        ref = upstream_embeddings(upstream, pixels)
        mine = ours(pixels)
        t = tm.forward_features(pixels)
        t = t.flatten(2).transpose(1, 2)
    scale = ref.abs().max().item()
    print(f"full size: output {list(ref.shape)}, max |ref| {scale:.4f}, std {ref.std().item():.4f}")
    for label, out in (("vera_mobile", mine), ("timm fastvit_mci3", t)):
        err = (out - ref).abs().max().item()
        print(f"  {label} vs upstream: max abs diff {err:.3e} ({err / scale:.1e} of max |ref|)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="folder containing upstream's mobileclip/ package")
    parser.add_argument("--check", action="store_true", help="also compare upstream, ours and timm at full size")
    args = parser.parse_args()
    sys.path.insert(0, args.upstream)
    import mobileclip  # upstream's package; registers timm model "fastvithd"
    import mobileclip.mci  # noqa: F401

    write_keys(mobileclip)
    write_small_golden(mobileclip)
    if args.check:
        check_full_size(mobileclip)


if __name__ == "__main__":
    main()
