"""Per-file licences from the Debian-copyright-style README files of gcompris-qt-data's folders.

A README is a list of blank-line-separated blocks with `Copyright:`, `License:`, `Source:`,
`Comment:` / `Comments:` and `Files:` fields; values may continue on the following lines, and
some blocks list their files without a `Files:` header. Every line (or inline value) that looks
like a file name is taken as a file of its block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"^(Copyright|License|Source|Comments?|Files):\s*(.*)$", re.IGNORECASE)
_FILE = re.compile(r"^[\w./+-]+\.(webp|jpe?g|png|svgz?|ogg|wav|mp3|gif|qml|js|json|ttf)$", re.IGNORECASE)

# Licences a photo may carry to be used for training the shipped weights.
_FREE = re.compile(r"public\s*domain|\bcc0\b|\bcc[- ]by(?:[- ]sa)?(?:[- ]\d(?:\.\d)?)?\b", re.IGNORECASE)
_NOT_FREE = re.compile(r"\b(nc|nd)\b|non-?commercial|no-?deriv", re.IGNORECASE)


@dataclass(frozen=True)
class LicenceBlock:
    copyright: str
    licence: str
    source: str
    comment: str
    files: tuple[str, ...]


def parse_readme(text: str) -> list[LicenceBlock]:
    blocks = []
    for chunk in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        files: list[str] = []
        current = None
        for raw in chunk.splitlines():
            line = raw.strip()
            if not line:
                continue
            match = _FIELD.match(line)
            if match:
                current = match.group(1).lower().rstrip("s") if match.group(1).lower() != "files" else "files"
                line = match.group(2).strip()
                if not line:
                    continue
            if _FILE.match(line):
                files.append(line)
            elif current is not None and current != "files":
                fields.setdefault(current, []).append(line)
        if files:
            join = lambda key: " ".join(fields.get(key, []))  # noqa: E731
            blocks.append(LicenceBlock(join("copyright"), join("license"), join("source"), join("comment"), tuple(files)))
    return blocks


def is_free(licence: str) -> bool:
    """Public domain, CC0, CC-BY or CC-BY-SA (any version); not NC / ND variants, not GPL-only art."""
    return bool(_FREE.search(licence)) and not _NOT_FREE.search(licence)
