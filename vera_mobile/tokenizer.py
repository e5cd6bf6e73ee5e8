"""The planner's tokenizer: HF `tokenizers` at run time, whatever layout the checkpoint ships.

Upstream loads the *slow* Qwen2 tokenizer from `vocab.json` + `merges.txt` + added-token files
(docs/upstream-compatibility.md#tokenization). At run time we use the Rust `tokenizers` library, which is also what the
bundle ships as `tokenizer.json` for the apps. A checkpoint without `tokenizer.json` is converted
once through transformers (a heavier import, only needed for that conversion).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .errors import CheckpointError
from .prompts import IMAGE_TOKEN, IMAGE_TOKEN_INDEX, RETOUCH_TOKENS

_SLOW_FILES = ("vocab.json", "merges.txt")


class Tokenizer:
    """Encode prompts and decode generated ids, with the ids of the tokens the runtime needs."""

    def __init__(self, backend: "tokenizers.Tokenizer") -> None:  # noqa: F821 (optional import)
        self.backend = backend
        self.retouch_ids = tuple(self.single_token_id(tok) for tok in RETOUCH_TOKENS)

    @classmethod
    def from_file(cls, path: str | Path) -> "Tokenizer":
        """Load a `tokenizer.json` (the bundle's tokenizer)."""
        from tokenizers import Tokenizer as RustTokenizer

        if not Path(path).is_file():
            raise CheckpointError(f"{path}: tokenizer file not found")
        try:
            backend = RustTokenizer.from_file(str(path))
        except Exception as err:  # the Rust library raises a bare Exception for every malformed file
            raise CheckpointError(f"{path}: not a readable tokenizer.json ({str(err).splitlines()[0][:200]})") from None
        return cls(backend)

    @classmethod
    def from_dir(cls, directory: str | Path) -> "Tokenizer":
        """Load from `tokenizer.json`, or convert upstream's slow-tokenizer files."""
        directory = Path(directory)
        fast_file = directory / "tokenizer.json"
        if fast_file.is_file():
            return cls.from_file(fast_file)
        missing = [name for name in _SLOW_FILES if not (directory / name).is_file()]
        if missing:
            raise CheckpointError(
                f"{directory}: no tokenizer.json and missing slow-tokenizer file(s) {', '.join(missing)}"
            )
        # Upstream's tokenizer class is always Qwen2's; naming it avoids guessing from config.json.
        from tokenizers import Tokenizer as RustTokenizer
        from transformers import Qwen2Tokenizer

        hf = Qwen2Tokenizer.from_pretrained(str(directory))
        # The slow tokenizer's skip_special_tokens drops only its listed special tokens (eos, pad,
        # additional_special_tokens); the Rust library drops every added token flagged special.
        # Align the flags so decoded text matches upstream (and so does the saved tokenizer.json).
        listed = set(hf.all_special_tokens)
        data = json.loads(hf.backend_tokenizer.to_str())
        for token in data["added_tokens"]:
            token["special"] = token["content"] in listed
        return cls(RustTokenizer.from_str(json.dumps(data)))

    def save(self, path: str | Path) -> None:
        self.backend.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def single_token_id(self, token: str) -> int:
        """The id of a token that must encode to exactly one id (e.g. the retouch tokens)."""
        ids = self.backend.encode(token, add_special_tokens=False).ids
        if len(ids) != 1:
            raise CheckpointError(
                f"tokenizer does not know {token!r} as a single token (it encodes to {len(ids)} ids); "
                "the checkpoint's tokenizer must include the 21 VeraRetouch added tokens"
            )
        return ids[0]

    def encode(self, text: str) -> list[int]:
        """Token ids without any added special tokens (Qwen2 adds no BOS)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids for a chat prompt, with IMAGE_TOKEN_INDEX where each `<image>` stood.

        Each piece between `<image>` placeholders is tokenized on its own, as upstream's
        `tokenizer_image_token` does, so the ids match upstream exactly.
        """
        ids: list[int] = []
        for i, chunk in enumerate(prompt.split(IMAGE_TOKEN)):
            if i:
                ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(self.encode(chunk))
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)
