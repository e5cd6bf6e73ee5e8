"""Reading an export bundle: `manifest.json` plus the artifact files it names, each with a sha256.

The manifest is the contract between the export toolchain and every runtime (Python, Kotlin,
Swift): artifacts and their methods, tokenizer and special-token ids, prompt templates,
preprocessing constants, mask rules, renderer tile and LUT size, quantization recipe, source
checkpoint hash and golden vectors. Its JSON Schema is `schemas/manifest.schema.json`; this
module checks what a runtime must not proceed without (schema version, files, hashes) using only
the standard library.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "manifest.schema.json"
_REQUIRED = ("schema_version", "source", "model", "tokenizer", "prompts", "preprocessing", "renderer", "artifacts")


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    """sha256 of a file; of a folder (a Core ML .mlpackage), over its files' names and bytes in order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(block):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    directory: Path
    manifest: dict[str, Any]

    def artifacts(self, component: str, target: str) -> list[dict[str, Any]]:
        """The manifest entries of one component (planner, renderer, reference, ...) on one target."""
        return [a for a in self.manifest["artifacts"] if a["component"] == component and a["target"] == target]

    def artifact(self, component: str, target: str) -> dict[str, Any]:
        """The (first) manifest entry of one component on one target; an error naming what exists if none."""
        found = self.artifacts(component, target)
        if not found:
            have = sorted({f"{a['component']}/{a['target']}" for a in self.manifest["artifacts"]})
            raise CheckpointError(f"{self.directory}: no {component} artifact for {target} (bundle has: {', '.join(have)})")
        return found[0]

    def has(self, component: str, target: str) -> bool:
        return bool(self.artifacts(component, target))

    def path(self, relative: str) -> Path:
        return self.directory / relative


def load_bundle(directory: str | Path, verify_hashes: bool = True) -> Bundle:
    """Read and check a bundle; every problem is a CheckpointError that says what and where."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CheckpointError(f"{directory}: not a bundle (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{manifest_path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{manifest_path}: expected a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{manifest_path}: schema_version {version!r} is not supported by this vera-mobile "
            f"(it reads version {SCHEMA_VERSION}); re-export the bundle or upgrade vera-mobile"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise CheckpointError(f"{manifest_path}: missing section(s) {', '.join(missing)}")
    files = [(entry["path"], entry["sha256"]) for entry in manifest["artifacts"]]
    files.append((manifest["tokenizer"]["file"], manifest["tokenizer"]["sha256"]))
    for relative, expected in files:
        path = directory / relative
        if not path.exists():
            raise CheckpointError(f"{directory}: {relative} is named in the manifest but missing")
        if verify_hashes and sha256_of(path) != expected:
            raise CheckpointError(f"{directory}: {relative} does not match its sha256 in the manifest (corrupt or altered)")
    return Bundle(directory, manifest)
