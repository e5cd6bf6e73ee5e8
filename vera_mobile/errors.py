"""Errors raised by vera-mobile.

Every error a user can cause derives from `VeraError`, so an app (or the CLI) can catch one type
and show its message. Messages say what was wrong and what would be accepted instead.
"""


class VeraError(Exception):
    """Base class for every error vera-mobile raises on bad input or bad files."""


class InputError(VeraError, ValueError):
    """A request was malformed: unknown mode, bad slider values, missing prompt, ..."""


class PhotoError(VeraError):
    """A photo could not be read or written (unreadable, too large, would overwrite the input)."""


class CheckpointError(VeraError):
    """A checkpoint or bundle is missing files, has unexpected tensors, or has wrong shapes."""


class Cancelled(VeraError):
    """Raise this from an `on_token` or `progress` callback to stop a retouch.

    `Retoucher.retouch` lets it propagate: nothing is returned and nothing half-made is kept; the
    retoucher is ready for the next call (every generation starts from a fresh K/V cache).
    """
