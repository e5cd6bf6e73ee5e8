"""The one generation loop every backend shares: prefill, decode, stop, gather retouch states.

A backend only has to say how to run each method (`embed`, `decode`, ...); the loop decides which
hidden states become the control latent. That rule is upstream's (docs/upstream-compatibility.md#the-latent-rule): for each
retouch token, the final-norm hidden state at the position *before* its first occurrence, i.e.
the state whose logits produced it.

Upstream crashes when generation ends without all three retouch tokens. We instead append the
missing ones, in latent order, as if the model had produced them at the end, take the states
before them by the same rule, and report which were forced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from ..errors import InputError
from ..prompts import IMAGE_TOKEN_INDEX, RETOUCH_TOKENS
from ..tokenizer import Tokenizer


class PlannerBackend(Protocol):
    """How one backend runs the planner's methods (numpy in, numpy out)."""

    def encode_image(self, pixels: np.ndarray) -> np.ndarray: ...  # [3,S,S] → [N, hidden]

    def embed(self, ids: np.ndarray) -> np.ndarray: ...  # [T] → [T, hidden]

    def reset(self) -> None: ...  # start a new sequence (clear the KV cache)

    def decode(self, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...  # [T,hidden] → last logits, last hidden

    def latent(self, hidden3: np.ndarray, mask: np.ndarray) -> np.ndarray: ...  # [3,hidden], [3] → [3*hidden]


@dataclass(frozen=True)  # checked once, at construction
class SamplingOptions:
    """Greedy by default (deterministic); temperature > 0 samples with top-p and a seed."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        check_sampling(self.max_new_tokens, self.temperature, self.top_p, self.seed)

    def make_sampler(self) -> Callable[[np.ndarray], int]:
        if self.temperature <= 0:
            return lambda logits: int(np.argmax(logits))
        rng = np.random.default_rng(self.seed)

        def sample(logits: np.ndarray) -> int:
            scaled = logits.astype(np.float64) / self.temperature
            probs = np.exp(scaled - scaled.max())
            probs /= probs.sum()
            order = np.argsort(-probs, kind="stable")
            cumulative = np.cumsum(probs[order])
            keep = order[: int(np.searchsorted(cumulative, self.top_p)) + 1]  # smallest set reaching top_p
            return int(rng.choice(keep, p=probs[keep] / probs[keep].sum()))

        return sample


def check_sampling(max_new_tokens: object, temperature: object, top_p: object, seed: object) -> None:
    """Refuse sampling settings that cannot work (checked before any model is loaded by the CLI)."""
    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be a whole number of at least 1, got {max_new_tokens!r}")
    if not number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise InputError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if not number(top_p) or not 0 < top_p <= 1:
        raise InputError(f"top_p must lie in (0, 1], got {top_p!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise InputError(f"seed must be a whole number >= 0, got {seed!r}")


def check_prompt_fits(backend: PlannerBackend, prompt_length: int) -> None:
    """Refuse a prompt longer than the backend's context (`max_seq_len`), before running anything.

    Without this a long style prompt reaches the decoder, where eager attention allocates
    prompt_length² scores per head (a 31,000-token prompt asked for 23 GB).
    """
    limit = getattr(backend, "max_seq_len", None)
    if limit is not None and prompt_length >= limit:
        raise InputError(
            f"the prompt is {prompt_length} tokens, but this model's context holds {limit} "
            "(prompt and reasoning together); shorten the instruction"
        )


@dataclass
class Generation:
    token_ids: list[int]
    retouch_hidden: np.ndarray  # [3, hidden]: states before <retouch_light>, <retouch_color&temp>, <retouch_colormixer>
    forced_tokens: list[str] = field(default_factory=list)
    stop_reason: str = "eos"  # "eos" or "max_new_tokens"
    prompt_length: int = 0


class TextStreamer:
    """Turns a growing list of ids into text pieces, holding back half-decoded UTF-8 characters."""

    def __init__(self, tokenizer: Tokenizer, callback: Callable[[str], None] | None) -> None:
        self.tokenizer, self.callback, self.ids, self.sent = tokenizer, callback, [], ""

    def push(self, token_id: int) -> None:
        self.ids.append(token_id)
        if self.callback is None:
            return
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character split over tokens: wait for the rest
            return
        if len(text) > len(self.sent):
            self.callback(text[len(self.sent):])
        self.sent = text


def prompt_embeddings(
    backend: PlannerBackend, prompt_ids: Sequence[int], image_features: np.ndarray | None
) -> np.ndarray:
    """Embed the prompt, splicing the image features in where IMAGE_TOKEN_INDEX stands."""
    pieces: list[np.ndarray] = []
    run: list[int] = []
    for token in [*prompt_ids, None]:
        if token is None or token == IMAGE_TOKEN_INDEX:
            if run:
                pieces.append(backend.embed(np.asarray(run, dtype=np.int64)))
                run = []
            if token == IMAGE_TOKEN_INDEX:
                if image_features is None:
                    raise InputError("the prompt has an <image> placeholder but no image features were given")
                pieces.append(image_features)
        else:
            run.append(token)
    return np.concatenate(pieces, axis=0)


def generate(
    backend: PlannerBackend,
    tokenizer: Tokenizer,
    prompt_embeds: np.ndarray,
    eos_ids: Sequence[int],
    options: SamplingOptions,
    on_token: Callable[[str], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Generation:
    """Generate the reasoning text and gather the three retouch hidden states.

    `on_token` receives each new piece of display text; `on_step` the number of tokens so far.
    """
    check_prompt_fits(backend, int(prompt_embeds.shape[0]))
    sample = options.make_sampler()
    streamer = TextStreamer(tokenizer, on_token)
    retouch_ids = tokenizer.retouch_ids
    states: dict[int, np.ndarray] = {}
    generated: list[int] = []

    backend.reset()
    logits, hidden = backend.decode(prompt_embeds)
    stop_reason = "max_new_tokens"
    while len(generated) < options.max_new_tokens:
        token = sample(logits)
        if token in eos_ids:
            stop_reason = "eos"
            break
        if token in retouch_ids and token not in states:
            states[token] = hidden  # the state whose logits produced this retouch token
        generated.append(token)
        streamer.push(token)
        if on_step is not None:
            on_step(len(generated))
        if len(generated) < options.max_new_tokens:
            logits, hidden = backend.decode(backend.embed(np.asarray([token], dtype=np.int64)))

    forced: list[str] = []
    missing = [t for t in retouch_ids if t not in states]
    if missing and stop_reason == "max_new_tokens" and generated:
        # The last sampled token was never fed back; feed it so `hidden` is the state after it.
        logits, hidden = backend.decode(backend.embed(np.asarray([generated[-1]], dtype=np.int64)))
    for i, token in enumerate(missing):
        states[token] = hidden
        generated.append(token)
        streamer.push(token)
        forced.append(RETOUCH_TOKENS[retouch_ids.index(token)])
        if i + 1 < len(missing):
            logits, hidden = backend.decode(backend.embed(np.asarray([token], dtype=np.int64)))

    return Generation(
        token_ids=generated,
        retouch_hidden=np.stack([states[t] for t in retouch_ids]),
        forced_tokens=forced,
        stop_reason=stop_reason,
        prompt_length=int(prompt_embeds.shape[0]),
    )
