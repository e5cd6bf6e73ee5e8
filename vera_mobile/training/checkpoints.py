"""Stage checkpoints in the work folder as data only: one safetensors file, never a pickle.

`WORK/<stage>.safetensors` holds the model's tensors (`model.<name>`; a tied weight once), the optimiser's per-
parameter tensors (`optimizer.<index>.<name>`) and torch's random state (`torch_rng`); its
header metadata holds one JSON document with everything else (step, seconds, the optimiser's
parameter groups and scalar state, numpy's generator state). Loading it cannot run code:
safetensors reads raw tensors and `json` reads plain values. The file is written to a temporary
name and renamed, so a checkpoint is always complete.

Checkpoints of older versions (`WORK/<stage>.pt`, pickles) are refused, never opened.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError

SUFFIX = ".safetensors"
_STATE_KEY = "vera_training_state"


@dataclass
class StageState:
    model: dict[str, torch.Tensor]
    optimizer: dict
    step: int
    seconds: float
    numpy_rng: dict
    torch_rng: torch.Tensor


def checkpoint_path(work: Path, stage: str) -> Path:
    return Path(work) / f"{stage}{SUFFIX}"


def refuse_pickles(work: Path, stage: str) -> None:
    legacy = Path(work) / f"{stage}.pt"
    if legacy.exists():
        raise InputError(f"{legacy} is a pickled checkpoint of an older vera-mobile; it is never loaded "
                         f"(it could run code). Delete it or use a new --work folder")


def save_stage(path: Path, state: StageState) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}  # tied weights (one tensor, two names) are stored once
    seen: dict[tuple, str] = {}
    for name, value in state.model.items():
        key = (value.data_ptr(), value.shape, value.stride())
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[f"model.{name}"] = value.detach().contiguous()
    scalars: dict[str, dict] = {}
    for index, values in state.optimizer["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = float(value)
    tensors["torch_rng"] = state.torch_rng
    meta = {"step": state.step, "aliases": aliases, "seconds": state.seconds, "numpy_rng": state.numpy_rng,
            "param_groups": state.optimizer["param_groups"], "optimizer_scalars": scalars}
    temp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(temp), metadata={_STATE_KEY: json.dumps(meta)})
    os.replace(temp, path)


def load_stage(path: Path) -> StageState:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_STATE_KEY)
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        meta = json.loads(raw) if raw else None
    except (OSError, ValueError, SafetensorError) as err:
        raise InputError(f"{path}: not a readable training checkpoint ({err}); delete it to start the stage again") from None
    if not isinstance(meta, dict) or "torch_rng" not in tensors:
        raise InputError(f"{path}: not a vera-mobile training checkpoint; delete it to start the stage again")
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["optimizer_scalars"].items():
        for name, value in values.items():
            state.setdefault(int(index), {})[name] = torch.tensor(value)
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    for name, original in meta.get("aliases", {}).items():
        model[name] = model[original]
    return StageState(model=model, optimizer={"state": state, "param_groups": meta["param_groups"]},
                      step=int(meta["step"]), seconds=float(meta["seconds"]), numpy_rng=meta["numpy_rng"],
                      torch_rng=tensors["torch_rng"])
