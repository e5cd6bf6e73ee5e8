"""What to take from each Debian package, and its licence (from the package's debian/copyright).

Every gatherer gets the unpacked (or installed) root of its package and a target folder, copies
the photographs there and returns one `Found` per photo. Photographs were told apart from
graphics, drawings and renders by looking at every image of each folder; the lists below are
that choice.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from .eet import largest_jpeg

PLASMA = "plasma-workspace-wallpapers"
ENLIGHTENMENT = "enlightenment-data"
LXQT = "lxqt-themes"
SCRATCH = "scratch"
FORENSICS = "forensics-samples-files"
ELEMENTARY = "libelementary-data"
JIGSAW = "puzzle-jigsaw"
KODI = "kodi-data"

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Found:
    """A photo written by a gatherer; `group` None means "the file stem"."""

    file: Path
    licence: str
    attribution: str
    origin: str  # where in the package (or on the web) the photo came from
    group: str | None = None


@dataclass(frozen=True)
class PackageSource:
    package: str
    folder: str  # absolute path of the photos as installed
    gather: Callable[[Path, Path], list[Found]]  # (folder under the root, target) -> photos


def _copy_matching(folder: Path, target: Path, names: Sequence[str] | None, licence: str, attribution: str,
                   package: str, exclude: Sequence[str] = (), pattern: str = "*") -> list[Found]:
    """Copy `names` (or every photo matching `pattern`) from `folder` to `target`."""
    files = [folder / n for n in names] if names is not None else sorted(folder.glob(pattern))
    found = []
    for file in files:
        if not file.is_file() or file.suffix.lower() not in PHOTO_SUFFIXES or file.name in exclude:
            continue
        target.mkdir(parents=True, exist_ok=True)
        out = target / file.name
        shutil.copyfile(file, out)
        found.append(Found(out, licence, attribution, f"{package}:{file.as_posix().split('/usr/', 1)[-1]}"))
    return found


# --- plasma-workspace-wallpapers -----------------------------------------------------------------

# The photographic wallpapers of plasma-workspace-wallpapers 5.27 (the other 19 are graphics).
WALLPAPER_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
    "OneStandsOut", "Path", "summer_1am",
)
WALLPAPER_MIN_LONG_SIDE = 1920


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


def _plasma_metadata(folder: Path) -> tuple[str, str]:
    try:
        plugin = json.loads((folder / "metadata.json").read_text(encoding="utf-8")).get("KPlugin", {})
    except (OSError, ValueError):
        return "LGPL (see debian/copyright)", ""
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []) if isinstance(a, dict))
    return plugin.get("License", "LGPL"), authors


def gather_plasma(folder: Path, target: Path) -> list[Found]:
    found = []
    for name in WALLPAPER_PHOTOS:
        images = [p for p in (folder / name / "contents" / "images").glob("*") if p.suffix.lower() in PHOTO_SUFFIXES]
        chosen = pick_resolution(images)
        if chosen is None:
            continue
        target.mkdir(parents=True, exist_ok=True)
        out = target / f"{name}{chosen.suffix.lower()}"
        shutil.copyfile(chosen, out)
        licence, authors = _plasma_metadata(folder / name)
        found.append(Found(out, licence, authors, f"{PLASMA}:share/wallpapers/{name}/contents/images/{chosen.name}"))
    return found


# --- enlightenment-data --------------------------------------------------------------------------

# Its photographic backgrounds (Squiggle*, Flat-*, Dunes and Paper-Flower are graphics).
ENLIGHTENMENT_PHOTOS = (
    "Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks", "Red-Maple", "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds", "Sunset-Hills",
    "White-Flower", "Yellow-Flower",
)
ENLIGHTENMENT_MAX_SIDE = 2560  # the largest JPEG is up to 7680 px wide: stored downscaled, like a wallpaper pick


def gather_enlightenment(folder: Path, target: Path) -> list[Found]:
    found = []
    for name in ENLIGHTENMENT_PHOTOS:
        edj = folder / f"{name}.edj"
        if not edj.is_file():
            continue
        with Image.open(io.BytesIO(largest_jpeg(edj))) as image:
            image = image.convert("RGB")
            image.thumbnail((ENLIGHTENMENT_MAX_SIDE, ENLIGHTENMENT_MAX_SIDE), Image.Resampling.LANCZOS)
            target.mkdir(parents=True, exist_ok=True)
            out = target / f"{name}.jpg"
            image.save(out, quality=95)
        found.append(Found(out, "BSD-2-clause", "Carsten Haitzler and the Enlightenment contributors",
                           f"{ENLIGHTENMENT}:share/enlightenment/data/backgrounds/{name}.edj (largest JPEG)"))
    return found


# --- the folder-of-photos packages ---------------------------------------------------------------

LXQT_PHOTOS = ("Butterfly-Kenneth-Wimer.jpg", "after-the-rain.jpg", "appleflower.png", "butterfly.png", "drop.png",
               "flowers.png", "fog.jpg", "Valendas.png")
# Drawings among the .jpg backgrounds (the .gif and .png ones are all drawings and never matched).
SCRATCH_DRAWINGS = ("party-room.jpg", "room1.jpg", "room2.jpg", "room3.jpg", "spotlight-stage.jpg", "woods-and-bench.jpg")
ELEMENTARY_SKIPPED = ("insanely_huge_test_image.jpg", "twofish.jpg")  # a test image; a photo of an identifiable person
FORENSICS_PHOTO = re.compile(r"IMG[-_].*\.jpe?g", re.IGNORECASE)


def gather_lxqt(folder: Path, target: Path) -> list[Found]:
    return _copy_matching(folder, target, LXQT_PHOTOS, "CC-BY-SA-3.0", "LXQt Project Team (wallpapers by stefonarch)", LXQT)


def gather_scratch(folder: Path, target: Path) -> list[Found]:
    return _copy_matching(folder, target, None, "CC-BY-SA-3.0", "Massachusetts Institute of Technology (Scratch)",
                          SCRATCH, SCRATCH_DRAWINGS, "*/*.jpg")


def gather_forensics(folder: Path, target: Path) -> list[Found]:
    files = sorted(p for p in folder.glob("pic*/*") if FORENSICS_PHOTO.fullmatch(p.name))
    return _copy_matching(folder, target, [p.relative_to(folder).as_posix() for p in files], "CC-BY-SA-4.0",
                          "Joao Eriberto Mota Filho", FORENSICS)


def gather_elementary(folder: Path, target: Path) -> list[Found]:
    return _copy_matching(folder, target, None, "BSD-2-clause", "the Enlightenment (EFL) contributors", ELEMENTARY,
                          ELEMENTARY_SKIPPED, "*.jpg")


def gather_jigsaw(folder: Path, target: Path) -> list[Found]:
    return _copy_matching(folder, target, None, "CC0-1.0", "Pexels photographers (via puzzle-jigsaw)", JIGSAW)


def gather_kodi(folder: Path, target: Path) -> list[Found]:
    return _copy_matching(folder, target, None, "CC0-1.0", "unknown (CC0 grant in kodi-data's debian/copyright)", KODI,
                          pattern="*.jpg")


PACKAGE_SOURCES = (
    PackageSource(PLASMA, "/usr/share/wallpapers", gather_plasma),
    PackageSource(ENLIGHTENMENT, "/usr/share/enlightenment/data/backgrounds", gather_enlightenment),
    PackageSource(LXQT, "/usr/share/lxqt/wallpapers", gather_lxqt),
    PackageSource(SCRATCH, "/usr/share/scratch/Media/Backgrounds", gather_scratch),
    PackageSource(FORENSICS, "/usr/share/forensics-samples/original-files", gather_forensics),
    PackageSource(ELEMENTARY, "/usr/share/elementary/images", gather_elementary),
    PackageSource(JIGSAW, "/usr/share/puzzle-jigsaw/samples", gather_jigsaw),
    PackageSource(KODI, "/usr/share/kodi/addons/skin.estuary/extras/home-images", gather_kodi),
)
