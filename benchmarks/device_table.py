"""Turn device benchmark results (Android, iOS, host) into one markdown comparison table.

    python benchmarks/device_table.py results/pixel8.json results/iphone15.json results/host.json

Every file is validated against benchmarks/device_result.schema.json first; a bad file stops the
run with its name and what is wrong (exit status 2), so a table never mixes in a broken result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

SCHEMA_PATH = Path(__file__).with_name("device_result.schema.json")

# (column title, metric key, decimals) in the order the table shows them.
METRICS = (
    ("vision ms", "vision_ms", 1),
    ("prefill tok/s", "prefill_tokens_per_s", 1),
    ("decode tok/s", "decode_tokens_per_s", 1),
    ("LUT bake ms", "lut_bake_ms", 1),
    ("LUT apply 12 MP ms", "lut_apply_12mp_ms", 1),
    ("peak MiB", "peak_memory_mb", 0),
)


class ResultError(Exception):
    """A result file that cannot be read or does not follow the schema."""


def load_result(path: Path) -> dict[str, Any]:
    """Read one result file and validate it; a ResultError names the file and the first problem."""
    import jsonschema

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultError(f"{path}: not a readable JSON file ({err})") from None
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ResultError(f"{path}: {where}: {first.message}{more}")
    return document


def _cell(value: Any, decimals: int) -> str:
    return "—" if value is None else f"{value:,.{decimals}f}"


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per result, in the order given."""
    header = ["device", "os", "backend", "recipe", *(title for title, _, _ in METRICS), "tool", "date"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for result in results:
        metrics = result["metrics"]
        row = [result["device"]["name"], result["device"]["os"], result["backend"], result["recipe"],
               *(_cell(metrics[key], decimals) for _, key, decimals in METRICS),
               f"{result['tool']['name']} {result['tool']['version']}", result["date"][:10]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="result JSON files (device_result.schema.json)")
    args = parser.parse_args(argv)
    try:
        results = [load_result(path) for path in args.files]
    except ResultError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
