"""Export the reference encoder (reference mode): an example before/after pair → control latent.

    encode(ref_before [1,3,512,512], ref_after [1,3,512,512], mask [1,3]) -> latent [1, 3L]

Both views are upstream's reference view (BGR, squashed to 512², [-1, 1]; views.reference_view).
The reference model's own renderer is exported with export/renderer.py under the prefix
`reference_renderer`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vera_mobile.models.reference_encoder import EncoderRenderer
from vera_mobile.views import REFERENCE_SIZE

from .renderer import _step


class EncodeProgram(nn.Module):
    def __init__(self, model: EncoderRenderer) -> None:
        super().__init__()
        self.model = model

    def forward(self, ref_before: torch.Tensor, ref_after: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode(ref_before, ref_after, mask)


def _example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    view = torch.zeros(1, 3, REFERENCE_SIZE, REFERENCE_SIZE)
    return view, view.clone(), torch.ones(1, 3)


def _exported(model: EncoderRenderer) -> torch.export.ExportedProgram:
    with torch.no_grad(), _step("running torch.export on the reference encoder"):
        return torch.export.export(EncodeProgram(model.eval()), _example())


def export_reference_executorch(model: EncoderRenderer, path: str | os.PathLike) -> Path:
    """One `.pte` with method `encode`, lowered to XNNPACK fp32."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = _exported(model)
    with torch.no_grad(), _step("lowering the reference encoder to ExecuTorch with XNNPACK"):
        buffer = to_edge_transform_and_lower({"encode": exported}, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    path = Path(path)
    path.write_bytes(buffer)
    return path


def export_reference_onnx(model: EncoderRenderer, path: str | os.PathLike) -> Path:
    path = Path(path)
    with torch.no_grad(), _step("exporting the reference encoder to ONNX"):
        torch.onnx.export(
            EncodeProgram(model.eval()), _example(), path, dynamo=True,
            input_names=["ref_before", "ref_after", "mask"], output_names=["latent"],
            opset_version=18, external_data=False, verbose=False,
        )
    return path


def export_reference_coreml(model: EncoderRenderer, path: str | os.PathLike, precision: str = "float16") -> Path:
    """An ML program (iOS 18) with one function; structure only can be checked on Linux."""
    import coremltools as ct

    exported = _exported(model).run_decompositions({})
    compute = ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32
    with _step(f"converting the reference encoder to Core ML ({precision})"):
        mlmodel = ct.convert(
            exported, outputs=[ct.TensorType(name="latent", dtype=np.float32)], convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS18, compute_precision=compute,
        )
    path = Path(path)
    mlmodel.save(str(path))
    return path
