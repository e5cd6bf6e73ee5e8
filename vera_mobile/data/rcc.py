"""Read files out of a Qt binary resource file (`.rcc`, as made by `rcc --binary`), without Qt.

Layout (big-endian throughout): a 'qres' header with the format version and the offsets of three
areas -- the *tree* (fixed-size nodes), the *names* (UTF-16 strings) and the *data* (length-
prefixed blobs). A tree node is a directory (child count, first child index) or a file (data
offset); version 2 and later append an 8-byte modification time to every node. A file whose
flag says "compressed" holds Qt's `qCompress` form: a 4-byte uncompressed size, then a zlib
stream. Zstandard-compressed entries (Qt 6 flag 4) are reported as unreadable, not guessed at.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterator

from ..errors import InputError

MAGIC = b"qres"
_COMPRESSED, _DIRECTORY, _COMPRESSED_ZSTD = 0x01, 0x02, 0x04


class RccArchive:
    """The files of one `.rcc` file: `names()` lists their paths, `read(path)` returns bytes."""

    def __init__(self, blob: bytes, origin: str = "rcc"):
        if blob[:4] != MAGIC or len(blob) < 20:
            raise InputError(f"{origin}: not a Qt resource file (no 'qres' header)")
        self.blob, self.origin = blob, origin
        self.version, self.tree, self.data, self.names_at = struct.unpack_from(">IIII", blob, 4)
        if self.version not in (1, 2, 3):
            raise InputError(f"{origin}: unsupported rcc format version {self.version}")
        self.node_size = 14 if self.version == 1 else 22
        self._files = dict(self._walk(0, ""))

    @classmethod
    def open(cls, path: str | Path) -> "RccArchive":
        return cls(Path(path).read_bytes(), str(path))

    def _name(self, offset: int) -> str:
        at = self.names_at + offset
        (length,) = struct.unpack_from(">H", self.blob, at)
        return self.blob[at + 6 : at + 6 + 2 * length].decode("utf-16-be")

    def _walk(self, index: int, prefix: str) -> Iterator[tuple[str, tuple[int, int]]]:
        at = self.tree + index * self.node_size
        name_offset, flags = struct.unpack_from(">IH", self.blob, at)
        name = "" if index == 0 else self._name(name_offset)
        path = f"{prefix}/{name}" if prefix else name
        if flags & _DIRECTORY:
            count, first = struct.unpack_from(">II", self.blob, at + 6)
            for child in range(first, first + count):
                yield from self._walk(child, path)
        else:
            (data_offset,) = struct.unpack_from(">I", self.blob, at + 10)
            yield path, (flags, data_offset)

    def names(self) -> list[str]:
        return sorted(self._files)

    def read(self, path: str) -> bytes:
        if path not in self._files:
            raise InputError(f"{self.origin}: no file {path!r}")
        flags, offset = self._files[path]
        at = self.data + offset
        (size,) = struct.unpack_from(">I", self.blob, at)
        payload = self.blob[at + 4 : at + 4 + size]
        if flags & _COMPRESSED_ZSTD:
            raise InputError(f"{self.origin}: {path} is zstd-compressed (not supported)")
        if flags & _COMPRESSED:
            return zlib.decompress(payload[4:])  # qCompress: 4-byte size, then zlib
        return payload
