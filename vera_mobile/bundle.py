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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from .errors import CheckpointError
from .jsonfile import read_json_object

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
            raise CheckpointError(f"{self.directory}: no {component} artifact for {target} (bundle has: {self.contents()})")
        return found[0]

    def contents(self) -> str:
        """What the bundle holds, for messages: "planner/onnx, renderer/onnx, ..."."""
        return ", ".join(sorted({f"{a['component']}/{a['target']}" for a in self.manifest["artifacts"]}))

    def artifact_path(self, component: str, target: str) -> Path:
        """The verified file of one component on one target (the one its manifest entry names)."""
        return self.path(self.artifact(component, target)["path"])

    def paths_by_role(self, component: str, target: str, roles: Sequence[str]) -> dict[str, Path]:
        """A multi-file component's files by role, e.g. an ONNX renderer's "condition" and "render_points".

        Each role is the one entry whose file name (without suffix) ends with it, so every file a
        backend opens is one the manifest names and `load_bundle` verified.
        """
        entries = self.artifacts(component, target) or [self.artifact(component, target)]
        found: dict[str, Path] = {}
        for role in roles:
            matches = [e["path"] for e in entries if PurePosixPath(e["path"]).stem.endswith(role)]
            if len(matches) != 1:
                raise CheckpointError(
                    f"{self.directory}: expected one {component} {target} file for {role}, the manifest names "
                    f"{len(matches)} ({', '.join(e['path'] for e in entries)})"
                )
            found[role] = self.path(matches[0])
        return found

    def has(self, component: str, target: str) -> bool:
        return bool(self.artifacts(component, target))

    def path(self, relative: str) -> Path:
        """A manifest path inside the bundle; anything that would leave the bundle folder is refused."""
        return confined_path(self.directory, relative)


def confined_path(directory: Path, relative: object) -> Path:
    """`directory / relative`, refused unless it is a plain relative path that stays inside `directory`.

    Symlinks count: the resolved path must lie inside the resolved bundle folder, and so must every
    file under it when it is a folder (a Core ML package).
    """
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise CheckpointError(f"{directory}: the manifest names a file path {relative!r}; expected a relative path")
    pure = Path(relative)
    if pure.is_absolute() or ".." in pure.parts or relative.startswith(("/", "\\")):
        raise CheckpointError(f"{directory}: manifest path {relative!r} points outside the bundle folder")
    root = directory.resolve()
    path = directory / relative
    inside = [path.resolve()]
    if path.is_dir() and not path.is_symlink():
        inside += [p.resolve() for p in path.rglob("*")]
    elif path.is_dir():
        raise CheckpointError(f"{directory}: manifest path {relative!r} is a symlink to a folder")
    for resolved in inside:
        if resolved != root and root not in resolved.parents:
            raise CheckpointError(f"{directory}: manifest path {relative!r} leads outside the bundle folder (symlink)")
    return path


def _entries(manifest: dict[str, Any], manifest_path: Path) -> list[tuple[str, str]]:
    """(path, sha256) of every file the manifest names, after checking the entries' shape."""
    artifacts, tokenizer = manifest["artifacts"], manifest["tokenizer"]
    if not isinstance(artifacts, list) or not artifacts:
        raise CheckpointError(f"{manifest_path}: 'artifacts' must be a non-empty list")
    if not isinstance(tokenizer, dict):
        raise CheckpointError(f"{manifest_path}: 'tokenizer' must be an object")
    files = []
    for i, entry in enumerate([*artifacts, tokenizer]):
        where = "the tokenizer entry" if i == len(artifacts) else f"artifact {i}"
        keys = ("file", "sha256") if i == len(artifacts) else ("component", "target", "path", "sha256", "methods")
        if not isinstance(entry, dict):
            raise CheckpointError(f"{manifest_path}: {where} must be an object")
        missing = [key for key in keys if key not in entry]
        if missing:
            raise CheckpointError(f"{manifest_path}: {where} lacks {', '.join(missing)}")
        text = [key for key in keys if key != "methods" and not isinstance(entry[key], str)]
        if text:
            raise CheckpointError(f"{manifest_path}: {where}: {', '.join(text)} must be text")
        if i < len(artifacts) and not isinstance(entry["methods"], (dict, list)):
            raise CheckpointError(f"{manifest_path}: {where}: methods must be an object")
        files.append((entry[keys[2] if i < len(artifacts) else "file"], entry["sha256"]))
    eos = tokenizer.get("eos_ids")
    if not isinstance(eos, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in eos):
        raise CheckpointError(f"{manifest_path}: tokenizer.eos_ids must be a list of token ids")
    model = manifest["model"]
    if not isinstance(model, dict) or not isinstance(model.get("image_size"), int) or model["image_size"] < 1:
        raise CheckpointError(f"{manifest_path}: model.image_size must be a positive integer")
    return files


def load_bundle(directory: str | Path, verify_hashes: bool = True) -> Bundle:
    """Read and check a bundle; every problem is a CheckpointError that says what and where.

    Every path the manifest names must stay inside the bundle folder (checked for all of them
    before any file is read); then each file must exist and match its sha256.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CheckpointError(f"{directory}: not a bundle (no {MANIFEST_NAME})")
    manifest = read_json_object(manifest_path, CheckpointError)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{manifest_path}: schema_version {version!r} is not supported by this vera-mobile "
            f"(it reads version {SCHEMA_VERSION}); re-export the bundle or upgrade vera-mobile"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise CheckpointError(f"{manifest_path}: missing section(s) {', '.join(missing)}")
    files = [(confined_path(directory, relative), relative, expected) for relative, expected in _entries(manifest, manifest_path)]
    for path, relative, expected in files:
        if not path.exists():
            raise CheckpointError(f"{directory}: {relative} is named in the manifest but missing")
        if verify_hashes and sha256_of(path) != expected:
            raise CheckpointError(f"{directory}: {relative} does not match its sha256 in the manifest (corrupt or altered)")
    return Bundle(directory, manifest)
