"""How the command line words what goes wrong: every error and warning on one line."""

from __future__ import annotations

import sys


def one_line(err: BaseException | str) -> str:
    """An error message on one line (some libraries' messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A `warnings.showwarning` that prints `vera-mobile: warning: ...` without the source line."""
    print(f"vera-mobile: warning: {one_line(message)}", file=sys.stderr if file is None else file)
