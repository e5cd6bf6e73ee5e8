"""Where commands write, checked before any work, and a batch of photos written one photo at a time.

The policy itself (never replace an input or a folder; an existing file only with --overwrite) is
files.check_target; these helpers apply it to every file a command is about to write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError, VeraError
from ..files import check_target
from .messages import one_line


def output_stem(photo: str) -> str:
    """Upstream's rule, the basename up to its first dot; a hidden file keeps its leading dots."""
    name = Path(photo).name
    rest = name.lstrip(".")
    return name[: len(name) - len(rest)] + rest.split(".")[0] if rest.split(".")[0] else name


def output_paths(photos: Sequence[str], out_dir: Path) -> list[Path]:
    """`DIR/<stem>.png` per photo; refuses two photos that would write the same name."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"--out {out_dir}: {folder} is a file, not a folder")
            break
    stems: dict[str, str] = {}
    paths = []
    for photo in photos:
        stem = output_stem(photo)
        if stem in stems:
            raise InputError(f"{photo} and {stems[stem]} would both write {stem}.png; retouch them in separate runs")
        stems[stem] = photo
        paths.append(out_dir / f"{stem}.png")
    return paths


def outputs_of(target: Path, suffixes: Sequence[str]) -> list[Path]:
    """Every file one photo writes: the photo itself, then its companions."""
    return [target, *(target.with_suffix(suffix) for suffix in suffixes)]


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """--overwrite, the one exception the policy makes, and only for files that are not inputs."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (inputs are never replaced)")


def check_outputs(targets: Sequence[Path], suffixes: Sequence[str], inputs: Sequence[str], overwrite: bool) -> None:
    """Apply the output policy (files.check_target) to every file of every photo, before any work."""
    for target in targets:
        for path in outputs_of(target, suffixes):
            check_target(path, inputs, overwrite)


def check_new_folder(out: str, overwrite: bool) -> None:
    """A command that writes a folder of files writes a new or empty one (or, with --overwrite, replaces files in it)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"--out {path} is not empty; choose a new folder or pass --overwrite")


def run_batch(photos: Sequence[str], targets: Sequence[Path], skip: Sequence[str], one: Callable[[str, Path], str],
              progress: bool = False) -> int:
    """Run `one(photo, target)` per photo; a failure (memory included) is reported and the others go on."""
    from tqdm import tqdm

    failed = list(skip)
    work = [(p, t) for p, t in zip(photos, targets) if p not in skip]
    for photo, target in tqdm(work, desc="photos", unit="photo", disable=not progress):
        try:
            report = one(photo, target)
        except (VeraError, OSError) as err:  # nothing is written for this photo
            failed.append(photo)
            tqdm.write(f"vera-mobile: error: {photo}: {one_line(err)}", file=sys.stderr)
            continue
        except MemoryError:
            failed.append(photo)
            tqdm.write(f"vera-mobile: error: {photo}: ran out of memory", file=sys.stderr)
            continue
        tqdm.write(report)
    if failed and len(photos) > 1:
        print(f"vera-mobile: {len(failed)} of {len(photos)} photo(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 2 if failed else 0
