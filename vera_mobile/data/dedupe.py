"""Near-duplicate photos by a perceptual difference hash (dHash).

A photo's hash compares neighbouring pixels of its 9x8 grey thumbnail: 64 bits that survive
resizing, re-encoding and mild colour changes. Two photos whose hashes differ in at most
`MAX_DISTANCE` bits are taken as the same picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

MAX_DISTANCE = 6


def dhash(path: str | Path) -> int:
    with Image.open(path) as image:
        image.draft("L", (64, 64))  # JPEG: decode at a reduced scale, much faster on large photos
        grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def find_duplicates(paths: Sequence[str | Path], max_distance: int = MAX_DISTANCE) -> dict[int, int]:
    """{index of a duplicate: index of the earlier photo it repeats}; the first of each picture is kept."""
    kept: list[tuple[int, int]] = []
    duplicates = {}
    for index, path in enumerate(paths):
        value = dhash(path)
        match = next((k for k, h in kept if bin(value ^ h).count("1") <= max_distance), None)
        if match is None:
            kept.append((index, value))
        else:
            duplicates[index] = match
    return duplicates
