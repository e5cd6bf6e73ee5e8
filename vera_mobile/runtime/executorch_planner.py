"""The ExecuTorch backend of the planner: runs the methods of a planner `.pte` (export/planner_executorch.py).

Implements `generation.PlannerBackend` with the ExecuTorch Python runtime, numpy in and out. The
K/V cache lives inside the program; this class only keeps the position the next call writes to.

Memory: by default the vision encoder and the language model are never loaded together. Each
photo's `encode_image` loads the program with only its vision method and frees it after the one
call (the method's weights, packed by XNNPACK at load, and its activation arena, which at 1024 px
is the largest buffer of the planner); `embed`, `decode` and `latent` then load the language-model
methods, which stay loaded until the next photo. Peak memory is the larger part instead of the sum
(benchmarks/RESULTS.md has both), for a reload of a few seconds per photo at the full size.
`resident=True` keeps everything loaded, as apps that retouch many photos in a row on a machine
with memory to spare may prefer. Destroying the program is what frees: a method alone, dropped,
gives nothing back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from ..quiet import native_noise_filtered

VISION_METHOD = "vision_encoder"
LANGUAGE_METHODS = ("token_embedding", "text_decoder_with_hidden", "retouch_head")
REQUIRED_METHODS = (VISION_METHOD, *LANGUAGE_METHODS, "get_max_seq_len", "get_max_context_len")


def _tensor(array: np.ndarray, dtype: np.dtype) -> "torch.Tensor":  # noqa: F821 (imported lazily)
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype))


class ExecuTorchPlanner:
    """Implements generation.PlannerBackend on a planner `.pte`."""

    def __init__(self, pte_path: str | os.PathLike, *, resident: bool = False) -> None:
        """`resident`: keep the vision encoder and the language model loaded together (module docstring)."""
        path = Path(pte_path)
        if not path.is_file():
            raise CheckpointError(f"planner program {path} does not exist")
        self.path, self.resident = path, resident
        program = self._load_program()
        missing = [name for name in REQUIRED_METHODS if name not in program.method_names]
        if missing:
            raise CheckpointError(
                f"{path} lacks the planner method(s) {', '.join(missing)}; it was not written by "
                "export_planner_executorch"
            )
        # ExecuTorch's LLM convention: max_seq_len bounds one decoder call, max_context_len the K/V cache.
        self.max_call_len = int(program.load_method("get_max_seq_len").execute([])[0])
        self.max_seq_len = int(program.load_method("get_max_context_len").execute([])[0])
        pixels_meta = program.metadata(VISION_METHOD).input_tensor_meta(0)
        self.image_size = int(pixels_meta.sizes()[-1])
        self.hidden_size = int(program.metadata("retouch_head").input_tensor_meta(0).sizes()[-1])
        self.position = 0
        self._vision: Any = None  # (program, {name: method}) while loaded (resident only)
        self._language: Any = None  # (program, {name: method}) while loaded
        if resident:
            self._vision = self._load(program, (VISION_METHOD,))
            self._language = self._load(program, LANGUAGE_METHODS)

    def _load_program(self) -> Any:
        # Quantized-embedding programs call ExecuTorch's quantized kernels, and the decoder its LLM
        # kernels (llama::update_cache, llama::custom_sdpa): these imports register them.
        import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401
        import executorch.kernels.quantized  # noqa: F401
        from executorch.runtime import Runtime

        try:
            return Runtime.get().load_program(self.path)
        except Exception as exc:
            raise CheckpointError(f"{self.path} is not a loadable ExecuTorch program: {exc}") from exc

    def _load(self, program: Any, names: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
        with native_noise_filtered():  # XNNPACK's first load prints CPU probing lines
            return program, {name: program.load_method(name) for name in names}

    def _language_method(self, name: str) -> Any:
        if self._language is None:
            self._language = self._load(self._load_program(), LANGUAGE_METHODS)
        return self._language[1][name]

    def _run(self, name: str, *inputs: "torch.Tensor") -> list[np.ndarray]:  # noqa: F821
        return [output.numpy() for output in self._language_method(name).execute(list(inputs))]

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        """[3, S, S] in [0, 1] → [N, hidden] image embeddings; unless resident, this starts a new
        sequence (the language model, and its K/V cache, are freed first)."""
        expected = (3, self.image_size, self.image_size)
        if pixels.shape != expected:
            raise InputError(f"planner pixels must have shape {expected}, got {pixels.shape}")
        inputs = [_tensor(pixels, np.float32)[None]]
        if self.resident:
            return self._vision[1][VISION_METHOD].execute(inputs)[0].numpy()[0]
        self._language, self.position = None, 0
        _, methods = self._load(self._load_program(), (VISION_METHOD,))
        # A copy: the output must outlive the program, which is freed on return.
        return np.array(methods[VISION_METHOD].execute(inputs)[0].numpy()[0])

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """[T] int64 token ids → [T, hidden]."""
        if ids.ndim != 1 or ids.shape[0] == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"token ids must be a non-empty 1-D integer array, got {ids.dtype} {ids.shape}")
        return self._run("token_embedding", _tensor(ids, np.int64)[None])[0][0]

    def reset(self) -> None:
        # Stale cache slots need no clearing: the decoder attends only to the slots up to each query's
        # position, and each slot is written before a query at or after it reads it.
        self.position = 0

    def decode(self, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run T new positions; returns the last position's logits [V] and final-norm hidden state [H]."""
        if embeds.ndim != 2 or embeds.shape[0] == 0 or embeds.shape[1] != self.hidden_size:
            raise InputError(f"decoder embeddings must have shape [T, {self.hidden_size}], got {embeds.shape}")
        length = embeds.shape[0]
        if self.position + length > self.max_seq_len:
            raise InputError(
                f"the sequence would reach {self.position + length} positions, beyond this program's "
                f"max_seq_len of {self.max_seq_len}; export with a larger max_seq_len or generate fewer tokens"
            )
        for start in range(0, length, self.max_call_len):  # long prompts go in chunks the program accepts
            chunk = embeds[start:start + self.max_call_len]
            positions = np.arange(self.position, self.position + len(chunk), dtype=np.int64)
            logits, hidden = self._run("text_decoder_with_hidden", _tensor(chunk, np.float32)[None],
                                       _tensor(positions, np.int64))
            self.position += len(chunk)
        return logits[0], hidden[0]

    def latent(self, hidden3: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[3, hidden] states before the retouch tokens + [3] mask → [3 * hidden] latent."""
        if hidden3.shape != (3, self.hidden_size) or mask.shape != (3,):
            raise InputError(
                f"retouch head inputs must have shapes (3, {self.hidden_size}) and (3,), "
                f"got {hidden3.shape} and {mask.shape}"
            )
        hidden3_tensor, mask_tensor = _tensor(hidden3, np.float32)[None], _tensor(mask, np.float32)[None]
        return self._run("retouch_head", hidden3_tensor, mask_tensor)[0][0]
