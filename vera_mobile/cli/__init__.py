"""`vera-mobile` command line: retouch, develop, prompt, export, check, inspect, synthetic-checkpoint, demo.

Errors the user can fix print one clear line to stderr and exit with status 2. Every option and
input file is checked before a model loads. Outputs never replace an input, a folder, or (without
--overwrite) an existing file; a photo's files (.png, .cube, .txt, .json) appear together or not
at all, and one photo's failure does not stop the others.

One module per command: its sub-parser (`add_parser`) next to what it does (`run`). inputs.py and
outputs.py hold the checks several commands share. Commands that need the export toolchain or
torch import them inside `run`, so loading the command line loads neither.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from ..errors import VeraError
from ..quiet import known_noise_shown, tool_progress_bars_hidden
from . import check, demo, develop, export, inspect, prompt, retouch, synthesize, synthetic, train
from .messages import one_line, one_line_warning

COMMANDS = (retouch, develop, prompt, export, check, inspect, synthetic, demo, synthesize, train)  # --help's order
VERBOSE_HELP = "also show third-party tools' progress bars and the known warnings vera-mobile otherwise hides"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vera-mobile", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command_parser = command.add_parser(sub)
        # --verbose also after the command's name; SUPPRESS keeps one given before it
        command_parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        command_parser.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shown = warnings.showwarning
    if not args.verbose:  # --verbose keeps Python's format, which names the warning's source
        warnings.showwarning = one_line_warning
    try:
        with known_noise_shown() if args.verbose else tool_progress_bars_hidden():
            return args.func(args)
    except VeraError as err:
        print(f"vera-mobile: error: {one_line(err)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("vera-mobile: error: ran out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vera-mobile: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line unless VERA_DEBUG asks for the traceback
        if os.environ.get("VERA_DEBUG"):
            raise
        print(f"vera-mobile: internal error: {type(err).__name__}: {one_line(err)} "
              "(set VERA_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
