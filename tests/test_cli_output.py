"""Command-line output: a real `vera-mobile` run writes to stderr only lines we wrote, third-party
progress bars and known noise included (vera_mobile/quiet.py); `--verbose` lets them through.

tests/test_quiet.py (slow) covers the Python API's demo-like run on ExecuTorch and ONNX; this
file covers the command line and Core ML, whose converter draws the progress bars.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vera_mobile.cli import inspect as inspect_command
from vera_mobile.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Ours on stderr: our progress bars (tqdm redraws them after a carriage return), export's timed
# steps, and our one-line errors and warnings.
OURS = re.compile(r"(reasoning|render|photos): |export \[ *\d+\.\d s\] |vera-mobile: ")


def _fresh_env() -> dict[str, str]:
    """This process's environment without tqdm settings, so a child decides its bars itself."""
    return {name: value for name, value in os.environ.items() if not name.startswith("TQDM_")}


def _vera_mobile(*args: str) -> subprocess.CompletedProcess:
    """`vera-mobile ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vera_mobile.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=_fresh_env())


def _not_ours(stderr: str) -> list[str]:
    pieces = (piece.strip() for piece in re.split(r"[\r\n]", stderr))
    return [piece for piece in pieces if piece and not OURS.match(piece)]


@pytest.mark.slow  # minutes of export; the default suite stays under 20 minutes
def test_retouch_and_a_core_ml_export_print_only_our_own_lines(tiny_checkpoint, sample_photo, tmp_path):
    """Core ML's converter is the noisiest tool we run: version warnings and MIL pass progress bars."""
    retouch = _vera_mobile("retouch", str(sample_photo), "--model", str(tiny_checkpoint), "--max-new-tokens", "4",
                           "--out", str(tmp_path / "out"))
    export = _vera_mobile("export", "--model", str(tiny_checkpoint), "--targets", "coreml",
                          "--out", str(tmp_path / "bundle"))
    for run in (retouch, export):
        assert run.returncode == 0, run.stderr[-3000:]
    assert "reasoning: " in retouch.stderr  # our own bar still shows
    assert "converting the planner's text_decoder program to Core ML" in export.stderr
    assert _not_ours(retouch.stderr) == [] and _not_ours(export.stderr) == []


# A command as the command line meets a third-party tool: the tool's tqdm is first imported inside
# the command, draws a bar and a known-noise warning and log message; one of our bars runs beside it.
COMMAND_RUNNING_A_TOOL = r"""
import logging, sys, warnings
from vera_mobile import cli
from vera_mobile.cli.retouch import StageProgress

def command_running_a_tool(args):
    from tqdm import tqdm
    for _ in tqdm(range(3), desc="tool bar"):
        pass
    warnings.warn("Mutation on a buffer in the model is detected", UserWarning)
    logging.getLogger("coremltools").warning("Failed to load _MLModelProxy: no libcoremlpython")
    ours = StageProgress()
    ours("render", 1, 2)
    ours.close()
    return 0

cli.inspect.run = command_running_a_tool  # the command line looks its commands up when it runs
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("shown", [False, True])
def test_verbose_lets_third_party_output_through(shown):
    argv = ["--verbose"] * shown + ["inspect", "x"]
    run = subprocess.run([sys.executable, "-c", COMMAND_RUNNING_A_TOOL, *argv], capture_output=True, text=True,
                         cwd=ROOT, env=_fresh_env())
    assert run.returncode == 0, run.stderr[-3000:]
    assert "render: " in run.stderr  # ours, either way
    third_party = ("tool bar: ", "Mutation on a buffer", "Failed to load _MLModelProxy")
    assert [text in run.stderr for text in third_party] == [shown] * 3, run.stderr
    if not shown:
        assert _not_ours(run.stderr) == []


def test_tool_bars_are_hidden_for_the_command_only(monkeypatch):
    """The spy sees TQDM_DISABLE set while a plain command runs, unset under --verbose (before or after
    the command's name), and gone afterwards."""
    seen = []
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(inspect_command, "run", lambda args: seen.append(os.environ.get("TQDM_DISABLE")) or 0)
    for argv in (["inspect", "x"], ["--verbose", "inspect", "x"], ["inspect", "--verbose", "x"]):
        assert main(argv) == 0
    assert seen == ["1", None, None] and "TQDM_DISABLE" not in os.environ
