"""Reading the JSON files users and bundles give us (params, manifests, configs), strictly.

Every way such a file can be wrong becomes one clear error of the caller's type: missing, a
folder, unreadable, not UTF-8, not JSON, nested too deep for the parser, a key given twice
(JSON allows it and keeps the last value, which hides a typo'd copy), or not an object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import VeraError


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


def parse_json_object(text: str, label: str, error: type[VeraError]) -> dict[str, Any]:
    """Parse `text` as one JSON object, raising `error` (naming `label`) if it is anything else."""
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except RecursionError:
        raise error(f"{label}: not valid JSON (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError is a ValueError, and so is a duplicate key
        raise error(f"{label}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise error(f"{label}: expected a JSON object, got {type(data).__name__}")
    return data


def read_json_object(path: str | Path, error: type[VeraError], what: str = "file") -> dict[str, Any]:
    """Read one JSON object from `path`; every problem is an `error` naming the path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: not found (the {what})") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not valid JSON (not UTF-8 text)") from None
    return parse_json_object(text, str(path), error)
