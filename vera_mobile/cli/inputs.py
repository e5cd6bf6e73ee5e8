"""Checks of what the user gives that several commands share: params files, photos, LUT sizes."""

from __future__ import annotations

import sys
from typing import Sequence

from ..errors import InputError, VeraError
from ..jsonfile import read_json_object
from ..prompts import validate_params
from .messages import one_line


def read_params(path: str | None) -> dict | None:
    """A params file's slider values (checked), or None without one."""
    if path is None:
        return None
    data = read_json_object(path, InputError, "params file")
    validate_params(data)
    return data


def check_photos(photos: Sequence[str]) -> list[str]:
    """The photos whose header cannot be read, each reported on one line; the rest go ahead."""
    from ..photo_io import check_photo_file

    if len(photos) == 1:
        check_photo_file(photos[0])  # its error is the run's error
        return []
    bad = []
    for photo in photos:
        try:
            check_photo_file(photo)
        except VeraError as err:
            print(f"vera-mobile: error: {one_line(err)}", file=sys.stderr)
            bad.append(photo)
    if len(bad) == len(photos):
        raise InputError(f"none of the {len(photos)} photos could be read")
    return bad


def check_lut_size(render: str, lut_size: int | None) -> None:
    """--lut-size goes with --render lut and lies in the LUT module's range."""
    from .. import lut

    if lut_size is None:
        return
    if render != "lut":
        raise InputError("--lut-size applies to --render lut only")
    lut.check_lut_size(lut_size, "--lut-size")
