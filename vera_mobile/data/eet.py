"""The largest photo embedded in an Enlightenment `.edj` (Eet) file, without the EFL libraries.

Eet stores a background's image as lossy JPEG entries (one per size). Rather than parse the
whole Eet directory, every JPEG start-of-image marker is tried as the start of a JPEG: the
candidate is accepted only if Pillow decodes a complete image from it, and the one with the most
pixels wins. Entries Eet stored zlib-compressed or as raw pixels are not JPEGs and are skipped.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from ..errors import InputError

_SOI = re.compile(rb"\xff\xd8\xff")
_EOI = b"\xff\xd9"


def embedded_jpegs(blob: bytes) -> list[tuple[int, int, bytes]]:
    """(width, height, bytes) of every complete JPEG found in `blob`."""
    found = []
    for match in _SOI.finditer(blob):
        start = match.start()
        end = blob.find(_EOI, start)
        while end != -1:  # the first EOI may belong to an embedded thumbnail: try each until one decodes
            candidate = blob[start : end + 2]
            try:
                with Image.open(io.BytesIO(candidate)) as image:
                    image.load()
                    found.append((image.width, image.height, candidate))
                break
            except (OSError, SyntaxError, ValueError):
                end = blob.find(_EOI, end + 2)
    return found


def largest_jpeg(path: str | Path) -> bytes:
    """The JPEG with the most pixels inside `path`; InputError if there is none."""
    found = embedded_jpegs(Path(path).read_bytes())
    if not found:
        raise InputError(f"{path}: no embedded JPEG")
    return max(found, key=lambda item: item[0] * item[1])[2]
