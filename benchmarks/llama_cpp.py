"""llama.cpp, the peer of our planner runtimes, built from the source PyPI's llama-cpp-python sdist vendors.

    python benchmarks/llama_cpp.py          # fetch the sdist with pip and build (once; cached)

benchmarks/planner.py runs llama-bench on the planner's language model at Q4_0 and Q8_0, and
benchmarks/quant_fidelity.py evaluates SmolLM2 through llama.cpp's own Q4_0 and Q8_0 with the
same perplexity and greedy-agreement code as our recipes (through the sdist's ctypes bindings,
loaded from the source tree against the library built here). Nothing of llama.cpp is committed
or installed: the sdist and the build live in the cache, `$VERA_LLAMA_CPP_CACHE` or
~/.cache/vera-mobile/llama.cpp. The build is CPU-only, native to this machine, without network
access (no curl, no OpenSSL, no web UI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"  # the sdist whose vendored llama.cpp is built
CACHE = Path(os.environ.get("VERA_LLAMA_CPP_CACHE", Path.home() / ".cache" / "vera-mobile" / "llama.cpp"))
TOOLS = ("llama-bench", "llama-quantize")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_UI=OFF",
)


def _say(message: str) -> None:
    print(f"llama.cpp: {message}", file=sys.stderr, flush=True)


def source_dir() -> Path:
    """The unpacked sdist (fetched with pip into the cache on first use)."""
    unpacked = CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if unpacked.is_dir():
        return unpacked
    download = CACHE / "sdist"
    _say(f"fetching the llama-cpp-python {LLAMA_CPP_PYTHON} sdist with pip")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(download)], check=True)
    archive = download / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    partial = CACHE / "unpacking"
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    (partial / unpacked.name).rename(unpacked)
    partial.rmdir()
    return unpacked


def llama_source() -> Path:
    return source_dir() / "vendor" / "llama.cpp"


def build_dir() -> Path:
    return CACHE / f"build-{LLAMA_CPP_PYTHON}"


def build() -> Path:
    """Configure and build the tools and the shared library (incremental); returns the bin folder."""
    build = build_dir()
    if not (build / "CMakeCache.txt").is_file():
        _say(f"configuring in {build}")
        subprocess.run(["cmake", "-S", str(llama_source()), "-B", str(build), "-G", "Ninja", *CMAKE_OPTIONS],
                       check=True, stdout=subprocess.DEVNULL)
    start = time.perf_counter()
    _say(f"building {', '.join(TOOLS)} and libllama ({os.cpu_count()} jobs)")
    subprocess.run(["cmake", "--build", str(build), "--target", *TOOLS, "llama", "-j", str(os.cpu_count())],
                   check=True, stdout=subprocess.DEVNULL)
    _say(f"built in {time.perf_counter() - start:.0f} s")
    return build / "bin"


def tool(name: str) -> Path:
    path = build_dir() / "bin" / name
    if not path.is_file():
        build()
    return path


def convert(hf_dir: Path, out: Path, outtype: str = "f32") -> Path:
    """A Hugging Face causal-LM folder → GGUF with llama.cpp's own converter (gguf-py from the sdist)."""
    source = llama_source()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source / "gguf-py"), os.environ.get("PYTHONPATH", "")])}
    _run([sys.executable, str(source / "convert_hf_to_gguf.py"), str(hf_dir), "--outfile", str(out),
          "--outtype", outtype], f"converting {hf_dir}", env=env)
    return out


def quantize(source: Path, out: Path, kind: str) -> Path:
    """`llama-quantize` to Q4_0, Q8_0, F32, ...; GGUFs that are already quantized are requantized."""
    _run([str(tool("llama-quantize")), "--allow-requantize", str(source), str(out), kind], f"quantizing {source} to {kind}")
    return out


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a llama.cpp step quietly; on failure, raise with the end of its output."""
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-10:])
        raise RuntimeError(f"llama.cpp: {what} failed (exit {run.returncode}):\n{tail}")


def bench(gguf: Path, prompt_tokens: int, new_tokens: int, threads: int, repetitions: int = 3) -> dict:
    """llama-bench: prefill of `prompt_tokens` and decode of `new_tokens` after them, plus the peak RSS.

    The decode test runs at depth `prompt_tokens` (-d), so it reads the same K/V length as a
    decode after our prefill. Peak RSS is the llama-bench process's own high-water mark (VmHWM,
    polled): the child's ru_maxrss would start from this process's peak, which Linux carries
    across fork and exec.
    """
    runs = {}
    peak_kib = 0
    for test, flags in (("prefill", ["-p", str(prompt_tokens), "-n", "0"]),
                        ("decode", ["-p", "0", "-n", str(new_tokens), "-d", str(prompt_tokens)])):
        with tempfile.TemporaryFile("w+") as out:
            child = subprocess.Popen([str(tool("llama-bench")), "-m", str(gguf), "-t", str(threads),
                                      "-r", str(repetitions), "-o", "json", *flags],
                                     stdout=out, stderr=subprocess.DEVNULL, text=True)
            while child.poll() is None:
                peak_kib = max(peak_kib, _high_water_kib(child.pid))
                time.sleep(0.05)
            if child.returncode != 0:
                raise RuntimeError(f"llama-bench failed on {gguf} ({test})")
            out.seek(0)
            runs[test] = json.loads(out.read())[0]["avg_ts"]
    return {"prefill_tok_s": runs["prefill"], "decode_tok_s": runs["decode"], "peak_rss_mib": peak_kib / 1024}


def _high_water_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process has just exited
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def bindings():
    """The sdist's `llama_cpp` Python package, on the library built here (imported from the cache)."""
    tool("llama-bench")  # builds libllama too
    os.environ["LLAMA_CPP_LIB_PATH"] = str(build_dir() / "bin")
    sys.path.insert(0, str(source_dir()))
    import llama_cpp

    return llama_cpp


if __name__ == "__main__":
    print(build())
