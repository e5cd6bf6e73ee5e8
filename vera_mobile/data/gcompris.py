"""Photographs inside gcompris-qt-data's Qt resource files, with their per-file licences.

Each `.rcc` under /usr/share/gcompris-qt/rcc/ holds an activity's folders; a folder's README
lists each file's copyright, licence and source (vera_mobile/data/licences.py). A file is kept
when it is a raster image named in a README, its licence is free (public domain, CC0, CC-BY,
CC-BY-SA), the README cites a photographic source (a `Source:` line, or a comment that says it
is based on a photo) and does not call it a painting, it has no transparency (cut-outs are not
photos) and its short side is at least `MIN_SIDE` px. The `lang` (word pictures) and `paintings`
sets are skipped as a whole, and so are the `details` activity's puzzle pieces (`*_<n>.webp`).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from .licences import is_free, parse_readme
from .packages import Found
from .rcc import RccArchive

GCOMPRIS = "gcompris-qt-data"
RCC_FOLDER = "/usr/share/gcompris-qt/rcc"
SKIPPED_SETS = ("lang.rcc", "paintings.rcc")
MIN_SIDE = 200
_RASTER = (".webp", ".jpg", ".jpeg", ".png")
_PIECE = re.compile(r".*_\d+\.webp")


def _photographic(source: str, comment: str) -> bool:
    comment = comment.lower()
    return "painting" not in comment and (bool(source) or "photo" in comment)


def _usable(blob: bytes) -> bool:
    with Image.open(io.BytesIO(blob)) as image:
        if min(image.size) < MIN_SIDE:
            return False
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            alpha = image.convert("RGBA").getchannel("A")
            return alpha.getextrema()[0] >= 250
        return True


def gather_gcompris(folder: Path, target: Path) -> list[Found]:
    found = []
    for rcc in sorted(folder.glob("*.rcc")):
        if rcc.name in SKIPPED_SETS:
            continue
        archive = RccArchive.open(rcc)
        names = set(archive.names())
        for readme in (n for n in sorted(names) if n.rsplit("/", 1)[-1].lower() == "readme"):
            base = readme.rsplit("/", 1)[0]
            for block in parse_readme(archive.read(readme).decode("utf-8", "replace")):
                if not is_free(block.licence) or not _photographic(block.source, block.comment):
                    continue
                for name in block.files:
                    path = f"{base}/{name}"
                    if path not in names or not name.lower().endswith(_RASTER) or _PIECE.fullmatch(name):
                        continue
                    blob = archive.read(path)
                    if not _usable(blob):
                        continue
                    target.mkdir(parents=True, exist_ok=True)
                    out = target / f"{rcc.stem}-{name.replace('/', '-')}"
                    out.write_bytes(blob)
                    # The original photo (the URL's file name) is the split group: one photo used by
                    # two activities never straddles the split.
                    original = block.source.rstrip("/").rsplit("/", 1)[-1] or None
                    found.append(Found(out, block.licence, block.copyright, block.source or f"{rcc.name}:{path}",
                                       original))
    return found
