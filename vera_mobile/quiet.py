"""Known third-party noise, silenced at the source.

Each entry is one message we have seen, with why it is harmless here; nothing else is hidden,
so a new warning still shows. `import vera_mobile` calls `silence_known_noise()` (log filters
and warning filters for exactly these messages), so it holds before transformers, torchao,
ExecuTorch or the export toolchain are imported. Native libraries print to the process's stderr
directly; `native_noise_filtered()` wraps the calls that do so.

Third-party progress bars (coremltools' MIL conversion and compression passes) are the command
line's to hide: `tool_progress_bars_hidden()` turns tqdm's default off for a command, while our own
bars pass `disable=` explicitly and still show; `vera-mobile --verbose` runs the command under
`known_noise_shown()` instead, which lets the bars and everything listed here through.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator

# Log messages that are known noise: (logger, start of the message as a regular expression, why).
NOISY_LOG_MESSAGES = (
    ("torchao", r"Failed to load .*_C_", "its optional CUDA kernels cannot load on a CPU-only build"),
    ("torchao.kernel.intmm", r"Warning: Detected no triton", "Triton kernels are for GPUs; we run on CPUs"),
    ("torch.utils._pytree", r"<enum '\w+'> is an Enum subclass",
     "torchao registers its Enum constants with a call torch deprecated"),
    ("torch.onnx._internal.exporter._registration", r"torchvision is not installed",
     "torchvision's ONNX ops are skipped; we never install torchvision"),
    ("", r"Please consider to run pre-processing before quantization",  # "" is the root logger
     "onnxruntime's advice for static quantization; our planner graphs use dynamic int8"),
    ("coremltools", r"Failed to load _ML\w+Proxy",
     "Core ML programs run only on Apple platforms; on Linux we convert and inspect them"),
    ("coremltools", r"scikit-learn version \S+ is not supported",
     "coremltools then disables its scikit-learn converters, which we never use"),
    ("coremltools", r"Torch version \S+ has not been tested with coremltools",
     "an advisory about coremltools' test matrix; our Core ML tests convert every program with the pinned torch"),
    ("coremltools", r"Saving value type of int64 into a builtin type of int32",
     "Core ML has no int64: shape and index constants are stored as int32, and ours are far below 2**31"),
)
# Warnings that are known noise: (category, start of the message as a regular expression, why).
NOISY_WARNINGS = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "torch.export's own pytree code still uses the old check"),
    (UserWarning, r"Mutation on a buffer in the model is detected",
     "the planner's K/V cache buffers are mutated on purpose and start as zeros"),
    (FutureWarning, r"_check_is_size will be removed",
     "ExecuTorch's own LLM kernels (llama::update_cache) still call it when the decoder is traced"),
)
# Lines native code writes straight to file descriptor 2: start of the line → why it is harmless.
NOISY_NATIVE_LINES = {
    "[cpuinfo_utils.cpp:": "ExecuTorch's thread pool probes ARM-only CPU files when XNNPACK first loads",
}


class _DropMessage(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


def silence_known_noise() -> None:
    """Hide exactly the messages listed above (idempotent)."""
    for name, pattern, _why in NOISY_LOG_MESSAGES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(_DropMessage(pattern))
    for category, message, _why in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def known_noise_shown() -> Iterator[None]:
    """Let the log messages and warnings listed above through for a block (the command line's --verbose)."""
    for name, _pattern, _why in NOISY_LOG_MESSAGES:
        logger = logging.getLogger(name)
        for drop in [f for f in logger.filters if isinstance(f, _DropMessage)]:
            logger.removeFilter(drop)
    try:
        with warnings.catch_warnings():  # restores the warning filters afterwards
            for category, message, _why in NOISY_WARNINGS:
                warnings.filterwarnings("default", message=message, category=category)  # ahead of our "ignore"
            yield
    finally:
        silence_known_noise()


@contextmanager
def tool_progress_bars_hidden() -> Iterator[None]:
    """Run a block with third-party tqdm progress bars off, ours (which pass disable= explicitly) still on.

    tqdm takes TQDM_* environment variables as the defaults of every bar when it is first imported,
    so this holds where tqdm is first imported inside the block, as in a `vera-mobile` process: the
    command line imports no third-party tool before its command runs. Child processes inherit it.
    """
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TQDM_DISABLE"]
        else:
            os.environ["TQDM_DISABLE"] = saved


@contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Run a block with file descriptor 2 captured; afterwards pass on every line but known noise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not line.startswith(tuple(NOISY_NATIVE_LINES))]
            sys.stderr.write("".join(kept))
