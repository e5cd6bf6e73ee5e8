"""Import layers: nothing imports upwards, and the runtime runs without torch or the toolchain.

Layers, lowest first (a module may import its own layer and the ones below):

0. photo and format basics: errors, files, prompts, plan, photo_io, views, builtin, bundle, tokenizer,
   render, lut, quiet, jsonfile, targets (numpy, Pillow, tokenizers only);
1. the develop engine, the torch models, the photo library (data);
2. the runtime (backends, generation, Retoucher) and synthetic checkpoints (testing);
3. training and `describe`;
4. the export toolchain (`vera_mobile.export`, the repository's export/ folder);
5. the command line (`vera_mobile.cli`, one module per command).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vera_mobile"
LAYERS = {
    **dict.fromkeys(("errors", "files", "prompts", "plan", "photo_io", "views", "builtin", "bundle", "tokenizer",
                     "render", "lut", "quiet", "jsonfile", "targets"), 0),
    **dict.fromkeys(("develop", "models", "data"), 1),
    **dict.fromkeys(("runtime", "testing"), 2),
    **dict.fromkeys(("training", "describe"), 3),
    "export": 4,
    "cli": 5,
}


def _unit(module: str) -> str:
    """The layer unit of a dotted vera_mobile module name ("vera_mobile.runtime.render" → "runtime")."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """Every vera_mobile module a file imports, at the top or inside functions, as absolute names."""
    package = "vera_mobile." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    package = package.rstrip(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names if name.count(".") == 0}
    return {name for name in found if name.startswith("vera_mobile.") or name == "export" or name.startswith("export.")}


def test_no_module_imports_a_higher_layer():
    files = [p for p in PACKAGE.rglob("*.py") if "export" not in p.relative_to(PACKAGE).parts[:1]]
    files += list((PACKAGE / "export").glob("*.py"))
    upward = []
    for path in files:
        own = path.relative_to(PACKAGE).with_suffix("").parts[0]
        if own == "__init__":
            continue
        for name in sorted(_imports(path)):
            target = "export" if name.split(".")[0] == "export" else _unit(name) if name.count(".") else None
            if target in LAYERS and LAYERS[target] > LAYERS[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _loaded_after(code: str) -> set[str]:
    """The top-level names of the modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    return set(json.loads(run.stdout.splitlines()[-1]))


def _toolchain(loaded: set[str]) -> set[str]:
    """Our export toolchain and the export-only libraries among loaded modules (torchao is not one:
    transformers imports it to load any model)."""
    return {m for m in loaded if m.split(".")[0] in ("export", "coremltools", "onnx", "onnxscript")
            or m.startswith("vera_mobile.export")}


def test_the_runtime_imports_neither_torch_nor_the_toolchain():
    loaded = _loaded_after(
        "import vera_mobile\n"
        "vera_mobile.load, vera_mobile.Retoucher, vera_mobile.Request\n"
        "from vera_mobile.runtime import onnx_planner, renderer_backends, reference_backends, executorch_planner, selfcheck\n"
        "from vera_mobile import lut, render, bundle, tokenizer, photo_io, views, describe"
    )
    assert "torch" not in loaded and not _toolchain(loaded)


def test_the_command_line_loads_no_tool_before_a_command_runs():
    """Each command imports torch or the toolchain inside its run(); tqdm too, so that the command
    line can hide third-party progress bars (quiet.tool_progress_bars_hidden)."""
    loaded = _loaded_after("import vera_mobile.cli\nvera_mobile.cli.build_parser().parse_args(['inspect', 'x'])")
    assert {"vera_mobile.cli.export", "vera_mobile.cli.demo", "vera_mobile.cli.train"} <= loaded
    assert "torch" not in loaded and "tqdm" not in loaded and not _toolchain(loaded)


def test_loading_a_checkpoint_does_not_import_the_toolchain(tiny_checkpoint):
    loaded = _loaded_after(f"import vera_mobile\nvera_mobile.load({str(tiny_checkpoint)!r})")
    assert "torch" in loaded  # a checkpoint runs on torch ...
    assert not _toolchain(loaded)  # ... but exports nothing


def test_the_develop_engine_does_not_import_the_runtime():
    pytest.importorskip("torch")
    loaded = _loaded_after("import vera_mobile.develop, vera_mobile.develop.styles")
    assert not {m for m in loaded if m.startswith("vera_mobile.runtime")}
