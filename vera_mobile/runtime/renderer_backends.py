"""The exported renderer on desktop runtimes: ExecuTorch (`.pte`) and ONNX Runtime (`.onnx`).

Both implement render.RendererBackend over the artifacts written by export/renderer.py. Exported
programs have fixed shapes, so `tile`, the latent length and the bias size are read from the
artifact, and inputs that do not fit are refused with a message instead of a runtime crash.
Core ML packages are not here: Core ML runs only on Apple platforms.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from ..quiet import native_noise_filtered
from ..targets import RENDERER_METHOD_IO
from .onnx_session import open_onnx

Shape = tuple[int, ...]


def _existing(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    return path


def _renderer_shapes(
    source: Path, condition: Sequence[Shape], biases_out: Shape, render: Sequence[Shape]
) -> tuple[int, int, int]:
    """Check the two programs' fixed shapes fit each other; return (latent size, bias size, tile)."""
    if len(condition) != 2 or len(render) != 2:
        raise CheckpointError(f"{source}: condition must take (latent, mask) and render_points (points, biases)")
    (latent, mask), (points, biases) = condition, render
    condition_ok = len(latent) == 2 and latent[0] == 1 and tuple(mask) == (1, 3)
    render_ok = len(points) == 2 and points[1] == 3 and len(biases) == 1
    if not (condition_ok and render_ok):
        raise CheckpointError(
            f"{source}: unexpected renderer shapes condition{list(condition)} render_points{list(render)}; "
            "expected condition[(1, 3L), (1, 3)] and render_points[(T, 3), (bias_size,)]"
        )
    if tuple(biases_out) != (1, biases[0]):
        raise CheckpointError(
            f"{source}: condition produces biases of shape {tuple(biases_out)} but render_points takes {biases[0]}"
        )
    return latent[1], biases[0], points[0]


class _FixedShapes:
    """Input checks shared by the fixed-shape backends."""

    latent_size: int
    bias_size: int
    tile: int

    def _condition_inputs(self, latent: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        latent, mask = np.asarray(latent, np.float32), np.asarray(mask, np.float32)
        if latent.shape != (self.latent_size,):
            raise CheckpointError(
                f"renderer artifact expects a {self.latent_size}-long latent, got {latent.size} "
                "(was it exported from a different checkpoint?)"
            )
        if mask.shape != (3,):
            raise InputError(f"the renderer mask must have 3 entries (one per control group), got shape {mask.shape}")
        return latent.reshape(1, -1), mask.reshape(1, 3)

    def _render_inputs(self, points: np.ndarray, biases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points, biases = np.ascontiguousarray(points, np.float32), np.ascontiguousarray(biases, np.float32)
        if biases.shape != (self.bias_size,):
            raise CheckpointError(f"renderer artifact expects {self.bias_size} biases, got shape {biases.shape}")
        if points.shape != (self.tile, 3):
            raise InputError(
                f"this renderer takes exactly {self.tile} points per call ([{self.tile}, 3]), got shape "
                f"{points.shape}; pad the last tile (render.render_flat does)"
            )
        return points, biases


class ExecuTorchRenderer(_FixedShapes):
    """Runs a renderer `.pte` (methods `condition` and `render_points`) with the ExecuTorch Python runtime."""

    def __init__(self, pte_path: str | os.PathLike) -> None:
        from executorch.runtime import Runtime

        path = _existing(pte_path, "ExecuTorch renderer program")
        try:
            self._program = Runtime.get().load_program(path)
        except RuntimeError as exc:
            raise CheckpointError(f"ExecuTorch could not load {path}: {exc}") from exc
        missing = set(RENDERER_METHOD_IO) - self._program.method_names
        if missing:
            present = ", ".join(sorted(self._program.method_names))
            raise CheckpointError(f"{path} has no method {', '.join(sorted(missing))} (it has {present})")
        condition, render = self._program.metadata("condition"), self._program.metadata("render_points")
        self.latent_size, self.bias_size, self.tile = _renderer_shapes(
            path,
            [tuple(condition.input_tensor_meta(i).sizes()) for i in range(condition.num_inputs())],
            tuple(condition.output_tensor_meta(0).sizes()),
            [tuple(render.input_tensor_meta(i).sizes()) for i in range(render.num_inputs())],
        )
        with native_noise_filtered():  # XNNPACK's first load prints CPU probing lines
            self._condition = self._program.load_method("condition")
            self._render_points = self._program.load_method("render_points")

    def condition(self, latent: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[3L] latent + [3] mask → [bias_size] biases."""
        import torch  # the ExecuTorch Python runtime takes and returns torch tensors

        latent, mask = self._condition_inputs(latent, mask)
        return self._condition.execute((torch.from_numpy(latent), torch.from_numpy(mask)))[0][0].numpy()

    def render_points(self, points: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """[tile, 3] RGB in [-1, 1] → [tile, 3] RGB in [0, 1]."""
        import torch

        points, biases = self._render_inputs(points, biases)
        return self._render_points.execute((torch.from_numpy(points), torch.from_numpy(biases)))[0].numpy()


class OnnxRenderer(_FixedShapes):
    """Runs a renderer's two ONNX programs (`condition`, `render_points`; files the manifest names) on the CPU."""

    def __init__(self, condition_path: str | os.PathLike, render_points_path: str | os.PathLike) -> None:
        self._condition = _onnx_session(condition_path, "condition")
        self._render_points = _onnx_session(render_points_path, "render_points")
        self.latent_size, self.bias_size, self.tile = _renderer_shapes(
            Path(condition_path),
            [_fixed_shape(arg, condition_path) for arg in self._condition.get_inputs()],
            _fixed_shape(self._condition.get_outputs()[0], condition_path),
            [_fixed_shape(arg, render_points_path) for arg in self._render_points.get_inputs()],
        )

    def condition(self, latent: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[3L] latent + [3] mask → [bias_size] biases."""
        latent, mask = self._condition_inputs(latent, mask)
        return self._condition.run(None, {"latent": latent, "mask": mask})[0][0]

    def render_points(self, points: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """[tile, 3] RGB in [-1, 1] → [tile, 3] RGB in [0, 1]."""
        points, biases = self._render_inputs(points, biases)
        return self._render_points.run(None, {"points": points, "biases": biases})[0]


def _onnx_session(path: str | os.PathLike, program: str) -> Any:
    return open_onnx(path, f"renderer's {program} program", *RENDERER_METHOD_IO[program])


def _fixed_shape(arg: Any, path: str | os.PathLike) -> Shape:
    if not all(isinstance(dim, int) for dim in arg.shape):
        raise CheckpointError(f"{path}: {arg.name} has the dynamic shape {arg.shape}; the renderer needs fixed shapes")
    return tuple(arg.shape)
