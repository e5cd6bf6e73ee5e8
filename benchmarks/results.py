"""Shared by the benchmarks: the command line they record, and appending a section to RESULTS.md."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def command(script: str) -> str:
    """The command that ran this benchmark (`script` is its `__file__`), as RESULTS.md records it."""
    return " ".join(shlex.quote(a) for a in ["python", f"benchmarks/{Path(script).name}", *sys.argv[1:]])


def record(markdown: str) -> None:
    """Append a results section to RESULTS.md."""
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write("\n" + markdown.lstrip("\n").rstrip("\n") + "\n")


def publish(markdown: str, record_it: bool) -> None:
    """Print a results section and, with --record, append it to RESULTS.md."""
    print(markdown)
    if record_it:
        record(markdown)
