"""The offline photo collection's readers and gatherers on real formats: Qt .rcc, Eet .edj, .deb, READMEs."""

import io
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vera_mobile.data import packages
from vera_mobile.data.dedupe import dhash, find_duplicates
from vera_mobile.data.eet import largest_jpeg
from vera_mobile.data.gcompris import GCOMPRIS
from vera_mobile.data.licences import is_free, parse_readme
from vera_mobile.data.photos import SKIMAGE, SOURCES, TIKTOK, gather_photos, load_manifest
from vera_mobile.data.rcc import RccArchive
from vera_mobile.errors import InputError


def photo(seed: int, size=(320, 240), mode="RGB") -> Image.Image:
    """A smooth random image (photo-like enough for a perceptual hash to tell two apart)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, len(mode)), dtype=np.uint8)
    return Image.fromarray(small.squeeze()).resize(size, Image.Resampling.BICUBIC).convert(mode)


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_rcc(files: dict[str, bytes], compressed: set[str] = frozenset(), version: int = 2) -> bytes:
    """A Qt binary resource file (the layout `rcc --binary` writes) holding `files` by path."""
    tree: dict = {}
    for path, blob in files.items():
        node = tree
        *folders, name = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = blob
    names, data, nodes = bytearray(), bytearray(), []

    def name_offset(name: str) -> int:
        offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return offset

    # Breadth first, so that each directory's children are contiguous (as in Qt's tree).
    queue = [("", tree, None)]
    nodes.append(None)
    while queue:
        name, node, index = queue.pop(0)
        index = 0 if index is None else index
        first = len(nodes)
        children = sorted(node.items())
        nodes.extend([None] * len(children))
        nodes[index] = ("dir", name, len(children), first)
        for i, (child, value) in enumerate(children):
            if isinstance(value, dict):
                queue.append((child, value, first + i))
            else:
                path_blob = value
                flags = 1 if child in compressed else 0
                if flags:
                    path_blob = struct.pack(">I", len(value)) + zlib.compress(value)
                nodes[first + i] = ("file", child, flags, len(data))
                data.extend(struct.pack(">I", len(path_blob)) + path_blob)
    packed = bytearray()
    for kind, name, a, b in nodes:
        offset = name_offset(name) if name else 0
        if kind == "dir":
            packed += struct.pack(">IHII", offset, 2, a, b)
        else:
            packed += struct.pack(">IHHHI", offset, a, 0, 0, b)
        if version >= 2:
            packed += struct.pack(">Q", 0)
    header = 20
    tree_at, data_at = header, header + len(packed)
    names_at = data_at + len(data)
    return b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at) + bytes(packed) + bytes(data) + bytes(names)


README = """Copyright: Timothée Giet, 2020
License: CC-BY-SA 4.0
Files:
drawing.svg

Copyright: A Photographer
Source: https://commons.wikimedia.org/wiki/File:Free_photo.jpg
License: CC0-1.0
Files: free.webp

Copyright: Someone
License: GPLv3
Source: https://example.org/gpl.jpg
Files:
gpl.webp

Copyright: Cut Out
License: Public Domain
Source: https://example.org/cutout.png
Files:
  cutout.webp

Copyright: Bruno Coudoin and others
License: CC-BY-SA 4.0
painted.webp
Comment: based on an original painting by Van Gogh.
"""


def test_readme_licences_are_parsed_per_file():
    blocks = {f: b for b in parse_readme(README) for f in b.files}
    assert set(blocks) == {"drawing.svg", "free.webp", "gpl.webp", "cutout.webp", "painted.webp"}
    assert blocks["free.webp"].licence == "CC0-1.0" and blocks["free.webp"].copyright == "A Photographer"
    assert "painting" in blocks["painted.webp"].comment
    assert [is_free(x) for x in ("Public Domain", "CC0-1.0", "CC-BY 2.0", "CC-BY-SA-4.0", "GPLv3",
                                 "CC-BY-NC-SA 4.0", "CC BY-ND 3.0")] == [True, True, True, True, False, False, False]


def test_rcc_reader_reads_plain_and_compressed_files():
    blob = write_rcc({"a/b/one.txt": b"hello", "a/two.bin": bytes(range(200)) * 5}, compressed={"two.bin"})
    archive = RccArchive(blob)
    assert archive.names() == ["a/b/one.txt", "a/two.bin"]
    assert archive.read("a/b/one.txt") == b"hello" and archive.read("a/two.bin") == bytes(range(200)) * 5
    assert RccArchive(write_rcc({"x": b"1"}, version=1)).read("x") == b"1"
    with pytest.raises(InputError, match="not a Qt resource file"):
        RccArchive(b"PK\x03\x04" + bytes(40))


def test_the_largest_embedded_jpeg_of_an_edj_is_found(tmp_path):
    small, large = encoded(photo(1, (64, 48)), "JPEG"), encoded(photo(2, (320, 180)), "JPEG")
    edj = tmp_path / "Bamboo.edj"
    edj.write_bytes(b"\x1e\xe7\xab\x01junk\xff\xd8 not a jpeg" + small + b"\x00" * 37 + large + b"tail\xff\xd9")
    with Image.open(io.BytesIO(largest_jpeg(edj))) as image:
        assert image.size == (320, 180)
    (tmp_path / "empty.edj").write_bytes(b"\x1e\xe7\xab\x01" + bytes(100))
    with pytest.raises(InputError, match="no embedded JPEG"):
        largest_jpeg(tmp_path / "empty.edj")


def test_dhash_finds_a_resized_copy_but_not_another_photo(tmp_path):
    paths = []
    for name, image in [("a.jpg", photo(3)), ("b.png", photo(3).resize((160, 120))), ("c.jpg", photo(4))]:
        paths.append(tmp_path / name)
        image.save(paths[-1])
    assert find_duplicates(paths) == {1: 0}
    assert bin(dhash(paths[0]) ^ dhash(paths[2])).count("1") > 10


def installed_tree(root: Path) -> None:
    """Photos laid out as the packages install them, a few per source, plus things to leave out."""
    def put(folder: str, name: str, blob: bytes) -> None:
        path = root / folder.lstrip("/") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)

    images = "/usr/share/wallpapers/Path/contents/images"
    for i, resolution in enumerate(("640x480", "1920x1080", "2560x1600")):
        put(images, f"{resolution}.jpg", encoded(photo(10 + i), "JPEG"))
    put("/usr/share/lxqt/wallpapers", "fog.jpg", encoded(photo(20), "JPEG"))
    put("/usr/share/lxqt/wallpapers", "triangles.png", encoded(photo(21), "PNG"))  # a graphic: not listed
    put("/usr/share/elementary/images", "sky_01.jpg", encoded(photo(30), "JPEG"))
    put("/usr/share/elementary/images", "insanely_huge_test_image.jpg", encoded(photo(31), "JPEG"))
    put("/usr/share/kodi/addons/skin.estuary/extras/home-images", "movie.jpg", encoded(photo(20).resize((200, 150)), "JPEG"))
    edj = b"eet" + encoded(photo(40, (96, 54)), "JPEG") + encoded(photo(40, (320, 180)), "JPEG")
    put("/usr/share/enlightenment/data/backgrounds", "Bamboo.edj", edj)
    put("/usr/share/enlightenment/data/backgrounds", "Squiggle.edj", edj)  # a graphic: not listed
    cut = photo(52, mode="RGBA")  # a cut-out: transparent corner
    alpha = np.full((240, 320), 255, np.uint8)
    alpha[:40, :40] = 0
    cut.putalpha(Image.fromarray(alpha))
    rcc = write_rcc({
        "gcompris/src/activities/x/resource/README": README.encode(),
        "gcompris/src/activities/x/resource/free.webp": encoded(photo(50), "WEBP"),
        "gcompris/src/activities/x/resource/gpl.webp": encoded(photo(51), "WEBP"),
        "gcompris/src/activities/x/resource/cutout.webp": encoded(cut, "WEBP", lossless=True),
        "gcompris/src/activities/x/resource/painted.webp": encoded(photo(53), "WEBP"),
    }, compressed={"README"})
    put("/usr/share/gcompris-qt/rcc", "x.rcc", rcc)
    put("/usr/share/gcompris-qt/rcc", "lang.rcc", write_rcc({"r/README": README.encode(), "r/free.webp": encoded(photo(54), "WEBP")}))


def test_gather_from_installed_packages_keeps_only_free_photographs_once(tmp_path, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # no Python-package sources
    root = tmp_path / "system"
    installed_tree(root)
    messages = []
    manifest = gather_photos(tmp_path / "out", download=False, skimage_dir=tmp_path / "none", system_root=root,
                             log=messages.append)
    data = json.loads(manifest.read_text())
    paths = [p["path"] for p in data["photos"]]
    assert paths == [
        f"{packages.PLASMA}/Path.jpg", f"{packages.ENLIGHTENMENT}/Bamboo.jpg", f"{packages.LXQT}/fog.jpg",
        f"{packages.ELEMENTARY}/sky_01.jpg", f"{GCOMPRIS}/x-free.webp",
    ]
    # kodi's movie.jpg is lxqt's fog.jpg made smaller: a near-duplicate, dropped and listed
    assert data["duplicates"] == [{"path": f"{packages.KODI}/movie.jpg", "duplicate_of": f"{packages.LXQT}/fog.jpg"}]
    assert not (tmp_path / "out" / packages.KODI / "movie.jpg").exists()
    with Image.open(tmp_path / "out" / packages.ENLIGHTENMENT / "Bamboo.jpg") as image:
        assert image.size == (320, 180)  # the largest of the .edj's JPEGs
    with Image.open(tmp_path / "out" / packages.PLASMA / "Path.jpg") as image:
        assert image == Image.open(root / "usr/share/wallpapers/Path/contents/images/1920x1080.jpg")
    free = next(p for p in data["photos"] if p["source"] == GCOMPRIS)
    assert free["licence"] == "CC0-1.0" and free["attribution"] == "A Photographer"
    assert free["origin"].endswith("Free_photo.jpg") and free["group"] == "File:Free_photo.jpg"
    assert set(data["skipped"]) == {TIKTOK, SKIMAGE, packages.SCRATCH, packages.FORENSICS, packages.JIGSAW}
    assert sum(c["train"] + c["held_out"] for c in data["counts"].values()) == len(paths)
    assert all(e.split in ("train", "held_out") for e in load_manifest(manifest))
    assert any("downloads are off" in m for m in messages)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian / Ubuntu)")
def test_a_downloaded_deb_is_unpacked_without_installing(tmp_path):
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text("Package: puzzle-jigsaw\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: test\n")
    samples = tree / "usr/share/puzzle-jigsaw/samples"
    samples.mkdir(parents=True)
    photo(60).save(samples / "pexels-photo-1.jpeg")
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--build", str(tree), str(debs / "puzzle-jigsaw_1.0_all.deb")], check=True,
                   capture_output=True)
    manifest = gather_photos(tmp_path / "out", sources=(packages.JIGSAW,), download=False, debs=debs,
                             system_root=tmp_path / "empty", log=lambda m: None)
    (entry,) = load_manifest(manifest)
    assert entry.licence == "CC0-1.0" and Path(entry.path).name == "pexels-photo-1.jpeg"
    assert not (tmp_path / "empty").exists()  # nothing was installed anywhere


def test_unknown_source_and_empty_collection_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown photo source"):
        gather_photos(tmp_path / "o", sources=("nope",))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    messages = []
    manifest = gather_photos(tmp_path / "o", download=False, skimage_dir=tmp_path / "none",
                             system_root=tmp_path / "empty", log=messages.append)
    assert json.loads(manifest.read_text())["skipped"] == list(SOURCES) and len(messages) == len(SOURCES)
    with pytest.raises(InputError, match="no photos"):
        load_manifest(manifest)
