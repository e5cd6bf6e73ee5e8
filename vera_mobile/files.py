"""Writing text files all or nothing: a temporary file beside the target, then one rename."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_text_atomic(target: Path, text: str, encoding: str = "utf-8") -> Path:
    """Readers see the old file or the complete new one, never a partial one (like photo_io's saves)."""
    target = Path(target)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with temp.open("x", encoding=encoding, newline="\n") as file:  # "x": normal file permissions
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename, or a crash could expose an empty file
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)  # no-op after a successful rename
    return target
