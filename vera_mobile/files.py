"""Writing files all or nothing: one file (temporary file, then one rename), or a set of files.

Temporary files get short names of their own (`.vera-<random>.tmp`), so a target whose name is
near the file system's 255-byte limit can still be written.

The output policy every command follows (`check_target`): an output never replaces an input file,
never replaces a folder, and replaces an existing file only when the caller allows it (the CLI's
`--overwrite`). `OutputSet` writes the files of one result (a photo and its .cube, .txt and .json)
together: each is written to a temporary file first, and only when all are complete are they
renamed into place; a failure leaves none of them behind and every earlier file as it was.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterable

from .errors import InputError

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def temp_path(target: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden temporary path in the target's folder (same file system, so renames are atomic)."""
    return target.with_name(f".vera-{secrets.token_hex(6)}{suffix}")


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # cleaning up must never hide the error that made us clean up
        pass


def write_text_atomic(target: Path, text: str, encoding: str = "utf-8") -> Path:
    """Readers see the old file or the complete new one, never a partial one (like photo_io's saves)."""
    target = Path(target)
    temp = temp_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with temp.open("x", encoding=encoding, newline="\n") as file:  # "x": normal file permissions
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename, or a crash could expose an empty file
        os.replace(temp, target)
    finally:
        _unlink_quietly(temp)  # no-op after a successful rename
    return target


def same_file(a: Path, b: Path) -> bool:
    """True if both paths name one file (also through symlinks, hard links, '..')."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: compare where they would be
        return Path(a).resolve() == Path(b).resolve()


def check_target(target: Path, inputs: Iterable[str | os.PathLike], overwrite: bool) -> None:
    """Refuse (InputError) an output path that names an input, a folder, or (unless `overwrite`) a file."""
    target = Path(target)
    for original in inputs:
        if same_file(target, Path(original)):
            raise InputError(f"{target} is an input file; choose another --out directory")
    if len(target.name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise InputError(f"cannot write {target.name[:40]}...: the name is longer than {NAME_MAX} bytes")
    if target.is_dir():
        raise InputError(f"cannot write {target}: a folder of that name exists")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise InputError(f"{target} already exists; pass --overwrite to replace it")
        if not target.is_file():
            raise InputError(f"cannot write {target}: it exists and is not a regular file")


class OutputSet:
    """The files of one result, renamed into place together after all were written.

        with OutputSet(targets, inputs, overwrite) as outputs:
            save_photo(pixels, outputs.staged(png))   # write each file to its staged path
            ...
        # leaving the block without an error commits; an error removes every staged file
    """

    def __init__(self, targets: Iterable[Path], inputs: Iterable[str | os.PathLike], overwrite: bool) -> None:
        self.targets = [Path(t) for t in targets]
        self.inputs, self.overwrite = list(inputs), overwrite
        for target in self.targets:
            check_target(target, self.inputs, overwrite)
        self._staged = {target: temp_path(target, f".partial{target.suffix}") for target in self.targets}

    def staged(self, target: Path) -> Path:
        """Where to write `target`'s content; it becomes `target` at commit."""
        return self._staged[Path(target)]

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()

    def discard(self) -> None:
        for temp in self._staged.values():
            _unlink_quietly(temp)

    def commit(self) -> None:
        """Rename every staged file into place; on any failure undo the renames done so far."""
        try:
            for target in self.targets:  # the folder may have changed while we computed
                check_target(target, self.inputs, self.overwrite)
                if not self._staged[target].is_file():
                    raise InputError(f"internal error: {target} was never written")
        except BaseException:
            self.discard()
            raise
        kept: list[tuple[Path, Path | None]] = []  # (target, the earlier file moved aside, if any)
        try:
            for target in self.targets:
                backup = None
                if target.exists():
                    backup = temp_path(target, ".old")
                    os.replace(target, backup)
                kept.append((target, backup))
                os.replace(self._staged[target], target)
        except OSError as exc:
            for target, backup in reversed(kept):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    _unlink_quietly(target)
            self.discard()
            raise InputError(f"could not write {target}: {exc.strerror or exc}") from exc
        for _, backup in kept:
            if backup is not None:
                _unlink_quietly(backup)
