"""Photos from Debian packages, fetched with `apt-get download` and unpacked without installing.

A package whose files are already installed is read in place; otherwise its `.deb` is fetched
into a temporary folder (`apt-get download`, the only network use; run `apt-get update` once
first) and unpacked there with `dpkg-deb -x`. What to take from each package, and its licence,
is in vera_mobile/data/packages.py.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

Log = Callable[[str], None]


@contextmanager
def package_root(package: str, probe: str, log: Log, debs: Path | None = None,
                 download: bool = True, system_root: Path = Path("/")) -> Iterator[Path | None]:
    """The root holding `package`'s files: `system_root` if `probe` is installed there, else an unpacked copy.

    `debs` is a folder of already downloaded `.deb` files to use before asking apt (never asked
    when `download` is False). Yields None
    (after a message) when the package cannot be had.
    """
    if inside(system_root, probe).exists():
        yield system_root
        return
    with tempfile.TemporaryDirectory(prefix=f"vera-{package}-") as scratch:
        deb = _find_deb(package, debs) if debs else None
        if deb is None and download:
            deb = _download(package, Path(scratch), log)
        elif deb is None:
            log(f"{package}: not installed, not in --debs and downloads are off; skipped")
        if deb is None:
            yield None
            return
        root = Path(scratch) / "root"
        try:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as err:
            log(f"{package}: dpkg-deb -x failed ({err}); skipped")
            yield None
            return
        yield root


def _find_deb(package: str, folder: Path) -> Path | None:
    found = sorted(Path(folder).glob(f"{package}_*.deb"))
    return found[-1] if found else None


def _download(package: str, scratch: Path, log: Log) -> Path | None:
    if shutil.which("apt-get") is None:
        log(f"{package}: apt-get not found (Debian or Ubuntu needed); skipped")
        return None
    try:
        subprocess.run(["apt-get", "download", package], cwd=scratch, check=True, capture_output=True, text=True,
                       timeout=1800)
    except (OSError, subprocess.SubprocessError) as err:
        detail = (getattr(err, "stderr", None) or str(err)).strip().splitlines()
        log(f"{package}: apt-get download failed ({detail[-1] if detail else err}); try apt-get update; skipped")
        return None
    return _find_deb(package, scratch)


def inside(root: Path, folder: str) -> Path:
    """`folder` (an absolute installed path) under `root`."""
    return root / folder.lstrip("/")
