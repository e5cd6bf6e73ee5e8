"""Load an upstream-layout planner checkpoint directory (`Gyh68/VeraRetouch`, docs/upstream-compatibility.md#checkpoint-layout).

Every tensor in the file is accounted for: a tensor we do not know, or one we need and do not
find, is an error that names it. The only tolerated absence is `lm_head.weight`, which tied
checkpoints do not store (the output projection then reuses the token embeddings).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError, InputError
from ..jsonfile import read_json_object
from ..targets import CHECKPOINT_DTYPES
from .config import PlannerConfig
from .planner import VeraPlanner

# Upstream key prefix → our module's prefix. Order matters: the first matching prefix wins.
KEY_PREFIX_MAP = (
    ("model.vision_tower.vision_tower.model.", "vision_tower."),
    ("model.mm_projector.", "projector."),
    ("model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("retouch_head.", "retouch_head."),
    ("retouch_decoder.", "renderer."),
)
TIED_KEY = "language_model.lm_head.weight"
_SHOW = 10  # how many key names an error message lists before summarising


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a `CHECKPOINT_DTYPES` name ("float32", "bfloat16", "float16")."""
    if name not in CHECKPOINT_DTYPES:
        raise InputError(f"dtype must be one of {', '.join(CHECKPOINT_DTYPES)}, got {name!r}")
    return getattr(torch, name)


def to_our_key(upstream_key: str) -> str | None:
    """Our parameter name for an upstream tensor name, or None if the name is not ours to load."""
    for theirs, ours in KEY_PREFIX_MAP:
        if upstream_key.startswith(theirs):
            return ours + upstream_key[len(theirs):]
    return None


def to_upstream_key(our_key: str) -> str:
    """Inverse of `to_our_key` (used to write checkpoints in the upstream layout)."""
    for theirs, ours in reversed(KEY_PREFIX_MAP):
        if our_key.startswith(ours):
            return theirs + our_key[len(ours):]
    raise KeyError(our_key)


def _name_keys(keys: list[str]) -> str:
    shown = ", ".join(sorted(keys)[:_SHOW])
    return shown + (f" (and {len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def safetensors_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint: one `model.safetensors` or the shards of an index."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        shards = _index_shards(index)
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            raise CheckpointError(f"{directory}: shard(s) named in the index are missing: {', '.join(missing)}")
        return [directory / s for s in shards]
    raise CheckpointError(f"{directory}: no model.safetensors (or model.safetensors.index.json) found")


def _index_shards(index: Path) -> list[str]:
    """The shard file names of a sharded checkpoint's index, each a plain name in its folder."""
    weight_map = read_json_object(index, CheckpointError, "index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: expected a non-empty 'weight_map' object of tensor name -> shard file")
    shards = sorted(set(weight_map.values()), key=str)
    bad = [s for s in shards if not isinstance(s, str) or Path(s).name != s or s in ("", ".", "..")]
    if bad:
        raise CheckpointError(f"{index}: shard names must be file names in the checkpoint folder, got {bad[:3]!r}")
    return shards


def read_header(directory: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name → (shape, dtype) of every stored tensor, without reading any tensor data."""
    from safetensors import SafetensorError, safe_open

    header: dict[str, tuple[tuple[int, ...], str]] = {}
    for file in safetensors_files(directory):
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    view = handle.get_slice(name)
                    header[name] = (tuple(view.get_shape()), view.get_dtype())
        except SafetensorError as err:
            raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from None
    return header


def expected_shapes(config: PlannerConfig) -> dict[str, tuple[int, ...]]:
    """Our parameter name → shape for a config, computed on the meta device (no memory used)."""
    try:
        with torch.device("meta"):
            model = VeraPlanner(config)
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError) as err:  # sizes that do not fit together
        raise CheckpointError(f"config.json: cannot build a planner from these sizes ({err})") from None
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


@dataclass
class KeyCheck:
    """How a checkpoint's tensor names and shapes compare with what the config needs."""

    unexpected: list[str]
    missing: list[str]
    mismatched: list[str]  # "name: stored [..] vs expected [..]"
    tied_lm_head: bool

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.missing or self.mismatched)

    def raise_if_bad(self, where: Path) -> None:
        if self.unexpected:
            raise CheckpointError(f"{where}: unexpected tensor(s) in the checkpoint: {_name_keys(self.unexpected)}")
        if self.missing:
            raise CheckpointError(f"{where}: tensor(s) missing from the checkpoint: {_name_keys(self.missing)}")
        if self.mismatched:
            raise CheckpointError(f"{where}: tensor shape(s) disagree with config.json: {_name_keys(self.mismatched)}")


def check_keys(config: PlannerConfig, stored: dict[str, tuple[int, ...]]) -> KeyCheck:
    """Account for every stored tensor (upstream names) against the config's expectations."""
    expected = expected_shapes(config)
    ours = {name: to_our_key(name) for name in stored}
    unexpected = [name for name, mapped in ours.items() if mapped is None or mapped not in expected]
    present = {mapped for mapped in ours.values() if mapped is not None}
    missing = [to_upstream_key(k) for k in expected if k not in present and k != TIED_KEY]
    mismatched = [
        f"{name}: stored {list(stored[name])} vs expected {list(expected[mapped])}"
        for name, mapped in ours.items()
        if mapped in expected and tuple(stored[name]) != expected[mapped]
    ]
    return KeyCheck(unexpected, missing, mismatched, tied_lm_head=TIED_KEY not in present)


@dataclass
class LoadReport:
    """What loading found, for `vera-mobile inspect` and the issue notes."""

    directory: Path
    num_tensors: int
    stored_dtypes: dict[str, int]
    tied_lm_head: bool
    seconds: float
    parameters: int = 0
    notes: list[str] = field(default_factory=list)


def load_planner(directory: str | Path, dtype: torch.dtype = torch.float32) -> tuple[VeraPlanner, LoadReport]:
    """Build the planner from `config.json` and load `model.safetensors` with strict key accounting."""
    from safetensors.torch import load_file

    start = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    config = PlannerConfig.from_file(directory / "config.json")
    header = read_header(directory)
    check = check_keys(config, {name: shape for name, (shape, _) in header.items()})
    check.raise_if_bad(directory)  # before reading gigabytes of tensors

    # Build without allocating or initialising weights: every one of them comes from the file.
    with torch.device("meta"):
        model = VeraPlanner(config)
    state: dict[str, torch.Tensor] = {}
    for file in safetensors_files(directory):
        for name, tensor in load_file(str(file)).items():
            state[to_our_key(name)] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    model.load_state_dict(state, strict=False, assign=True)
    del state
    lm = model.language_model
    if check.tied_lm_head:
        lm.lm_head.weight = lm.model.embed_tokens.weight
    # Non-persistent buffers (RoPE frequencies) are not in any file: compute them for real.
    lm.model.rotary_emb = type(lm.model.rotary_emb)(config=lm.config)
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:
        raise CheckpointError(f"{directory}: internal error, tensors left unloaded: {_name_keys(still_meta)}")
    model.eval()

    dtypes: dict[str, int] = {}
    for _, stored_dtype in header.values():
        dtypes[stored_dtype] = dtypes.get(stored_dtype, 0) + 1
    report = LoadReport(
        directory=directory,
        num_tensors=len(header),
        stored_dtypes=dtypes,
        tied_lm_head=check.tied_lm_head,
        seconds=time.perf_counter() - start,
        parameters=sum(p.numel() for p in model.parameters()),
    )
    if check.tied_lm_head and not config.text.get("tie_word_embeddings", False):
        report.notes.append("lm_head.weight is absent although tie_word_embeddings is false; tied it to embed_tokens")
    return model, report
