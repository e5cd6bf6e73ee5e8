"""The exported reference encoder on desktop runtimes (ExecuTorch `.pte`, ONNX Runtime `.onnx`).

Same contract as torch_backend.TorchReferenceEncoder: two [3, 512, 512] reference views (BGR,
[-1, 1]) and a [3] mask → the [3L] control latent.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CheckpointError
from ..quiet import native_noise_filtered
from .onnx_session import open_onnx
from .renderer_backends import _existing


def _batch(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(a, dtype=np.float32)[None] for a in (before, after, mask))


class ExecuTorchReferenceEncoder:
    def __init__(self, pte_path: str | os.PathLike) -> None:
        from executorch.runtime import Runtime

        path = _existing(pte_path, "ExecuTorch reference encoder program")
        try:
            program = Runtime.get().load_program(path)
        except RuntimeError as exc:
            raise CheckpointError(f"ExecuTorch could not load {path}: {exc}") from exc
        if "encode" not in program.method_names:
            raise CheckpointError(f"{path} has no method encode (it has {', '.join(sorted(program.method_names))})")
        with native_noise_filtered():  # XNNPACK's first load prints CPU probing lines
            self._encode = program.load_method("encode")

    def encode(self, before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch  # the ExecuTorch Python runtime takes and returns torch tensors

        inputs = tuple(torch.from_numpy(a) for a in _batch(before, after, mask))
        return self._encode.execute(inputs)[0][0].numpy()


class OnnxReferenceEncoder:
    def __init__(self, path: str | os.PathLike) -> None:
        self._session = open_onnx(path, "reference encoder", ("ref_before", "ref_after", "mask"), ("latent",))

    def encode(self, before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ref_before, ref_after, mask = _batch(before, after, mask)
        return self._session.run(None, {"ref_before": ref_before, "ref_after": ref_after, "mask": mask})[0][0]
