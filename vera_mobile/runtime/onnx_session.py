"""Open an ONNX Runtime session on the CPU and check it is the graph we expect (by its I/O names)."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from ..errors import CheckpointError


def open_onnx(path: str | Path, what: str, inputs: tuple[str, ...], outputs: tuple[str, ...], arena: bool = True) -> Any:
    """An InferenceSession for `path`, or a CheckpointError naming `what` was missing or wrong.

    `arena=False` for a session that runs once: ONNX Runtime's arena would keep its largest
    activations allocated for later runs.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX {what} {path} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 0  # 0: ONNX Runtime's default, one thread per physical core
    options.enable_cpu_mem_arena = arena
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unrelated exception types for bad files
        raise CheckpointError(f"ONNX Runtime could not load {path}: {exc}") from exc
    names = tuple(arg.name for arg in session.get_inputs()), tuple(arg.name for arg in session.get_outputs())
    if names != (inputs, outputs):
        raise CheckpointError(
            f"{path} is not the {what}: it maps {list(names[0])} to {list(names[1])}, "
            f"expected {list(inputs)} to {list(outputs)}"
        )
    return session


def release_freed_memory() -> None:
    """Return the C heap's free pages to the OS (glibc's malloc_trim; nothing elsewhere).

    A closed session's buffers go back to the heap, and glibc keeps most of them mapped: without
    this a closed full-size vision encoder still counted about 1 GB in the process's RSS.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
