"""Shared by the benchmarks: print a results section and, with --record, append it to RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def publish(markdown: str, record: bool) -> None:
    print(markdown)
    if record:
        with open(RESULTS, "a", encoding="utf-8") as handle:
            handle.write("\n" + markdown)
