"""The on-disk data set: written as records arrive, read back with absolute paths."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image

from ...errors import InputError
from ...files import write_text_atomic
from .records import Record

# --- Writer --------------------------------------------------------------------------------------


def _save_png(pixels: np.ndarray, path: Path) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(pixels).save(temp, format="PNG", compress_level=3)
    os.replace(temp, path)


def write_dataset(
    records: Iterable[Record], out_dir: str | os.PathLike, total: int | None = None, progress: bool = True,
    info: Mapping | None = None,
) -> Path:
    """Write records as they arrive (layout in the module docstring); returns DIR/records.jsonl.

    records.jsonl appears only when every record is written (it is built as a hidden partial
    file and renamed), so an interrupted run never looks complete. Refuses a DIR that already
    holds a records.jsonl.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    final = out / "records.jsonl"
    if final.exists():
        raise InputError(f"{final} already exists; choose a new --out directory")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "originals").mkdir(parents=True, exist_ok=True)
    partial = out / ".records.jsonl.partial"
    saved: set[str] = set()
    counts: dict[str, int] = {}
    with partial.open("w", encoding="utf-8") as file:
        for record in tqdm(records, total=total, desc="synthesize", unit="rec", disable=not progress):
            key = re.sub(r"[^A-Za-z0-9._-]+", "_", record.photo.rsplit(".", 1)[0])
            key += f"_{record.original.shape[1]}x{record.original.shape[0]}"
            if record.wb_jitter:  # each white balance of a photo is its own original
                key += "_wb" + "".join(f"{value:+.0f}" for value in record.wb_jitter.values())
            original = f"originals/{key}.png"
            if original not in saved:
                _save_png(record.original, out / original)
                saved.add(original)
            edited = f"images/{record.id}.png"
            _save_png(record.edited, out / edited)
            row = record.metadata()
            row["input"], row["target"] = (edited, original) if record.mode == "auto" else (original, edited)
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[record.mode] = counts.get(record.mode, 0) + 1
    os.replace(partial, final)
    summary = {"format": "vera-mobile synthesized data v1", "records": sum(counts.values()), "modes": counts,
               "originals": len(saved), **(dict(info) if info else {})}
    write_text_atomic(out / "dataset.json", json.dumps(summary, indent=1) + "\n")
    return final


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of DIR/records.jsonl (or the file itself), with input/target made absolute."""
    path = Path(path)
    file = path / "records.jsonl" if path.is_dir() else path
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["input"], row["target"] = str(file.parent / row["input"]), str(file.parent / row["target"])
    return rows
