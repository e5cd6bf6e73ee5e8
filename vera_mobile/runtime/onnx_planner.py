"""The planner on ONNX Runtime (CPU): runs the four graphs written by export/planner_onnx.py.

Implements generation.PlannerBackend. The decoder graph takes the keys and values of earlier
positions as inputs and returns them grown by the new positions, so this backend holds them
between `decode` calls and `reset` drops them. Fixed sizes (image size, hidden size, cache
layout, `max_seq_len`) are read from the graphs, and graphs that do not fit each other are
refused at load time with a message instead of failing mid-generation.

Memory, as in runtime/executorch_planner.py: by default the vision encoder's session exists only
for its call (ONNX Runtime's arena keeps the largest activations a session ever ran until the
session goes), and the language model's sessions are closed while it runs; `resident=True` keeps
all four sessions open. The K/V cache lives here, not in a session, so closing them loses nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import CheckpointError, InputError
from ..targets import PLANNER_METHOD_IO
from .onnx_session import open_onnx, release_freed_memory

# graph name -> (input names, output names): the planner's methods (targets.PLANNER_METHOD_IO), except
# that the ONNX decoder passes its K/V cache in and out as tensors instead of taking an input position.
_DECODER_INPUTS, _DECODER_OUTPUTS = PLANNER_METHOD_IO["text_decoder"]
GRAPH_IO = {
    **PLANNER_METHOD_IO,
    "text_decoder": ((_DECODER_INPUTS[0], "past_keys", "past_values"),
                     (*_DECODER_OUTPUTS, "present_keys", "present_values")),
}
MAX_SEQ_LEN_KEY = "vera.max_seq_len"
VISION = "vision_encoder"


class OnnxPlanner:
    """Implements generation.PlannerBackend on the four ONNX graphs of one exported planner."""

    def __init__(self, graphs: Mapping[str, str | os.PathLike], *, resident: bool = False) -> None:
        """`graphs`: graph name -> file, as a bundle's manifest names them (`Bundle.paths_by_role`).
        `resident`: keep the vision encoder's session open next to the language model's (module docstring)."""
        missing = [name for name in GRAPH_IO if name not in graphs]
        if missing:
            raise CheckpointError(f"the ONNX planner needs the graph(s) {', '.join(missing)}")
        self.paths = {name: Path(graphs[name]) for name in GRAPH_IO}
        self.resident = resident
        directory = self.paths["text_decoder"].parent
        # Every graph is opened here, so a bad file fails now; unless resident, the vision encoder is
        # closed again before the language model opens, and reopened for each photo.
        self.sessions: dict[str, Any] = {}
        shapes = {}
        for name in GRAPH_IO:
            session = _session(self.paths[name], name)
            shapes[name] = _shapes(session)
            if resident or name != VISION:
                self.sessions[name] = session
            del session
        self.image_size, self.hidden_size, self.cache_layout = _sizes(directory, shapes)
        self.max_seq_len = _max_seq_len(self.sessions["text_decoder"], directory)
        self.reset()

    def _language(self, name: str) -> Any:
        if name not in self.sessions:
            self.sessions.update({graph: _session(self.paths[graph], graph) for graph in GRAPH_IO if graph != VISION})
        return self.sessions[name]

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        """[3, S, S] in [0, 1] → [N, hidden] image embeddings."""
        pixels = np.asarray(pixels, np.float32)
        if pixels.shape != (3, self.image_size, self.image_size):
            size = self.image_size
            raise InputError(f"the vision encoder takes [3, {size}, {size}] pixels, got shape {pixels.shape}")
        if self.resident:
            return self.sessions[VISION].run(None, {"pixels": pixels[None]})[0][0]
        self.sessions.clear()  # the language model's sessions; reopened by the next embed
        release_freed_memory()
        features = _session(self.paths[VISION], VISION, arena=False).run(None, {"pixels": pixels[None]})[0][0]
        release_freed_memory()  # the session is gone
        return features

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """[T] token ids → [T, hidden]."""
        ids = np.asarray(ids, np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise InputError(f"embed takes a non-empty 1-D array of token ids, got shape {ids.shape}")
        return self._language("token_embedding").run(None, {"input_ids": ids[None]})[0][0]

    def reset(self) -> None:
        layers, heads, head_dim = self.cache_layout
        self.keys = self.values = np.zeros((layers, heads, 0, head_dim), np.float32)

    @property
    def position(self) -> int:
        return self.keys.shape[2]

    def decode(self, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[T, hidden] embeddings of the next positions → (logits [vocab], hidden [hidden]) of the last one."""
        embeds = np.asarray(embeds, np.float32)
        if embeds.ndim != 2 or embeds.shape[1] != self.hidden_size or embeds.shape[0] == 0:
            raise InputError(f"decode takes [T, {self.hidden_size}] embeddings, got shape {embeds.shape}")
        if self.position + embeds.shape[0] > self.max_seq_len:
            raise InputError(
                f"the sequence would reach {self.position + embeds.shape[0]} positions, but this decoder was "
                f"exported for at most {self.max_seq_len} (export again with a larger max_seq_len)"
            )
        feeds = {"inputs_embeds": embeds[None], "past_keys": self.keys, "past_values": self.values}
        logits, hidden, self.keys, self.values = self._language("text_decoder").run(None, feeds)
        return logits[0], hidden[0]

    def latent(self, hidden3: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[3, hidden] states before the three retouch tokens + [3] mask → [3 * hidden] latent."""
        hidden3, mask = np.asarray(hidden3, np.float32), np.asarray(mask, np.float32)
        if hidden3.shape != (3, self.hidden_size) or mask.shape != (3,):
            raise InputError(
                f"latent takes [3, {self.hidden_size}] states and a [3] mask, got {hidden3.shape} and {mask.shape}"
            )
        return self._language("retouch_head").run(None, {"hidden3": hidden3[None], "mask": mask[None]})[0][0]


def _session(path: Path, name: str, arena: bool = True) -> Any:
    return open_onnx(path, f"planner's {name} graph", *GRAPH_IO[name], arena=arena)


def _shapes(session: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """A session's input and output shapes (ints, or names for dynamic axes)."""
    return [arg.shape for arg in session.get_inputs()], [arg.shape for arg in session.get_outputs()]


def _sizes(directory: Path, shapes: dict[str, tuple[list[list[Any]], list[list[Any]]]]) -> tuple[int, int, tuple[int, int, int]]:
    """(image size, hidden size, (layers, kv heads, head dim)), checking that the graphs fit each other."""
    image_size = shapes[VISION][0][0][-1]
    decoder_embeds, cache = shapes["text_decoder"][0][:2]
    hidden, layout = decoder_embeds[-1], (cache[0], cache[1], cache[3])
    if not all(isinstance(size, int) for size in (image_size, hidden, *layout)):
        raise CheckpointError(
            f"{directory}: the image size, hidden size and cache layout must be fixed in the graphs, found "
            f"image {image_size}, hidden {hidden}, cache {layout}"
        )
    # Every graph must agree on the hidden size: graphs from two checkpoints do not mix.
    widths = {
        "vision_encoder output": shapes[VISION][1][0][-1],
        "token_embedding output": shapes["token_embedding"][1][0][-1],
        "text_decoder input": hidden,
        "text_decoder hidden output": shapes["text_decoder"][1][1][-1],
        "retouch_head input": shapes["retouch_head"][0][0][-1],
    }
    latent = shapes["retouch_head"][1][0][-1]
    if set(widths.values()) != {hidden} or latent != 3 * hidden:
        found = ", ".join(f"{where} {width}" for where, width in widths.items())
        raise CheckpointError(
            f"{directory}: the planner graphs disagree on the hidden size ({found}, retouch_head latent {latent}); "
            "were they exported from different checkpoints?"
        )
    return image_size, hidden, layout


def _max_seq_len(session: Any, directory: Path) -> int:
    value = session.get_modelmeta().custom_metadata_map.get(MAX_SEQ_LEN_KEY)
    if value is None or not value.isdigit():
        raise CheckpointError(
            f"{directory}: the text_decoder graph's metadata {MAX_SEQ_LEN_KEY} is missing or not a number"
        )
    return int(value)
