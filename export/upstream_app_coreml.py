"""Export the three Core ML packages that upstream's own iOS/macOS app loads, in its names and shapes.

Upstream's app (`ml-veraretouch`, docs/upstream-compatibility.md, "Upstream's iOS app") runs the
language model and the projector in MLX, and three Core ML models that it finds by file name and
feeds by feature name (vera_mobile.targets.UPSTREAM_APP_PACKAGES):

    fastvithd        images [1, 3, S, S] RGB in [0, 1]         -> image_features [1, N, mm_hidden]
    retouch_head     input [1, 3H] (three hidden states)       -> output [1, 3L] (the latent, unmasked)
    retouch_decoder  input_img [1, 3, 512, 512] RGB in [-1, 1],
                     retouch_latent [1, 3L] (masked by the app) -> output [1, 3, 512, 512] RGB in [0, 1]

Every input and output is a float32 multi-array (the app builds and reads them as Float32); the
programs compute in fp16. `fastvithd` is the vision tower alone: the app applies the projector
itself. The app multiplies each third of the latent by its group's mask flag before the decoder,
so the decoder conditions on the latent it is given, with no mask input of its own.

Recipes are the Core ML planner's (vera_mobile.targets.COREML_RECIPES), applied to every weight
of `fastvithd` and `retouch_head`; coremltools leaves a weight alone when the recipe does not fit
it (int4-block32 on the depthwise convolutions, whose input width is 1, and on anything of at
most 2048 elements). The decoder, the renderer, stays fp16 as in every bundle.

Core ML cannot run on Linux: the packages are converted, saved and inspected here
(`planner_coreml.inspect_planner_coreml` reads any single-function package), and the torch
programs that are converted are checked against the reference modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vera_mobile.errors import InputError
from vera_mobile.models.config import PlannerConfig
from vera_mobile.models.folded_renderer import FoldedRenderer
from vera_mobile.models.planner import VeraPlanner
from vera_mobile.targets import COREML_RECIPES as RECIPES
from vera_mobile.targets import UPSTREAM_APP_PACKAGES, UPSTREAM_APP_TILE

from .planner_coreml import _compress, save_packages
from .planner_executorch import _step
from .renderer import ConditionProgram, RenderPointsProgram

# The packages whose weights a recipe compresses (all of their weights).
COMPRESSED = ("fastvithd", "retouch_head")


class RetouchDecoderProgram(nn.Module):
    """input_img [1, 3, tile, tile] in [-1, 1] + retouch_latent [1, 3L] -> output [1, 3, tile, tile] in [0, 1].

    The folded renderer on every pixel of one NCHW tile. The latent arrives masked, so the
    condition program's mask is a constant of ones.
    """

    def __init__(self, folded: FoldedRenderer, tile: int) -> None:
        super().__init__()
        self.tile = tile
        self.condition = ConditionProgram(folded)
        self.render_points = RenderPointsProgram(folded)
        self.register_buffer("all_groups", torch.ones(1, 3))

    def forward(self, input_img: torch.Tensor, retouch_latent: torch.Tensor) -> torch.Tensor:
        biases = self.condition(retouch_latent, self.all_groups)[0]
        points = input_img.reshape(3, self.tile * self.tile).transpose(0, 1)  # [pixels, RGB]
        colors = self.render_points(points, biases)
        return colors.transpose(0, 1).reshape(1, 3, self.tile, self.tile)


def upstream_app_io(config: PlannerConfig) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{package: {"inputs": [...], "outputs": [...]}} with each tensor's name, shape and dtype (float32)."""
    size, tile = config.vision.image_size, UPSTREAM_APP_TILE
    latent = 3 * config.latent_dim
    shapes = {  # per package: the input shapes, then the output shapes
        "fastvithd": ([[1, 3, size, size]], [[1, config.vision.num_patches, config.mm_hidden_size]]),
        "retouch_head": ([[1, 3 * config.hidden_size]], [[1, latent]]),
        "retouch_decoder": ([[1, 3, tile, tile], [1, latent]], [[1, 3, tile, tile]]),
    }
    io = {}
    for name, (input_names, output_names) in UPSTREAM_APP_PACKAGES.items():
        inputs, outputs = shapes[name]
        io[name] = {
            "inputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in zip(input_names, inputs, strict=True)],
            "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in zip(output_names, outputs, strict=True)],
        }
    return io


def upstream_app_programs(model: VeraPlanner) -> dict[str, tuple[nn.Module, tuple[torch.Tensor, ...]]]:
    """{package: (torch module, example inputs)}: what is converted, with the shapes of `upstream_app_io`.

    fastvithd is the vision tower (images -> features before the projector), retouch_head the
    head on the three concatenated hidden states (no mask), retouch_decoder `RetouchDecoderProgram`.
    """
    io = upstream_app_io(model.config)
    # The tower and the head are converted as they are: Core ML names inputs and outputs by position.
    modules = {
        "fastvithd": model.vision_tower,
        "retouch_head": model.retouch_head,
        "retouch_decoder": RetouchDecoderProgram(FoldedRenderer(model.renderer), UPSTREAM_APP_TILE),
    }
    return {
        name: (module.eval(), tuple(torch.zeros(tensor["shape"]) for tensor in io[name]["inputs"]))
        for name, module in modules.items()
    }


def _convert(name: str, module: nn.Module, examples: tuple[torch.Tensor, ...]) -> Any:
    import coremltools as ct

    with torch.no_grad():
        program = torch.export.export(module, examples, strict=False).run_decompositions({})
    input_names, output_names = UPSTREAM_APP_PACKAGES[name]
    return ct.convert(
        program,
        inputs=[ct.TensorType(name=input_name, dtype=np.float32) for input_name in input_names],
        outputs=[ct.TensorType(name=output_name, dtype=np.float32) for output_name in output_names],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,  # upstream's app targets iOS 18.6 / macOS 15
        compute_precision=ct.precision.FLOAT16,
        skip_model_load=True,  # nothing can load it on Linux
    )


def export_upstream_app_coreml(
    model: VeraPlanner,
    out_dir: str | os.PathLike,
    recipe: str = "fp16",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write `fastvithd.mlpackage`, `retouch_head.mlpackage` and `retouch_decoder.mlpackage`.

    Returns {package: path}. `recipe` is one of `RECIPES`; it compresses the packages in
    `COMPRESSED`. All three are moved into `out_dir` only once all are complete.
    """
    if recipe not in RECIPES:
        raise InputError(f"unknown Core ML recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    programs = upstream_app_programs(model.eval())

    def convert(name: str) -> Any:
        with _step(f"converting upstream's {name} package to Core ML (fp16)", progress):
            converted = _convert(name, *programs[name])
        if recipe != "fp16" and name in COMPRESSED:
            with _step(f"compressing {name} ({recipe})", progress):
                converted = _compress(converted, recipe, None)
        return converted

    return save_packages({name: (name,) for name in programs}, convert, out_dir, progress)
