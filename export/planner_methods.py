"""The planner's methods, defined once for every target: the module to lower, example inputs,
dynamic shapes and input/output names. ExecuTorch, ONNX and Core ML only quantize and lower
these (ExecuTorch's llava export has the same shape).

    vision_encoder   pixels [1, 3, S, S] in [0, 1]           -> image_embeds [1, N, H]
    token_embedding  input_ids [1, T]                        -> inputs_embeds [1, T, H]
    text_decoder     inputs_embeds [1, T, H] + its K/V cache -> logits [1, V], hidden [1, H]
    retouch_head     hidden3 [1, 3, H], mask [1, 3]          -> latent [1, 3L]

The text decoder is the one method whose form depends on the runtime: each keeps the K/V cache
its own way (ExecuTorch in mutable buffers, Core ML in states, ONNX as past/present tensors), so
each target wraps models/kv_decoder.py in that convention; its names are
vera_mobile.targets.PLANNER_METHOD_IO's too.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, NamedTuple

import torch
from torch import nn

from vera_mobile.builtin import ASSETS
from vera_mobile.models.planner import VeraPlanner, retouch_latent
from vera_mobile.photo_io import load_photo
from vera_mobile.prompts import Request
from vera_mobile.runtime.generation import prompt_embeddings
from vera_mobile.runtime.torch_backend import TorchPlanner
from vera_mobile.targets import PLANNER_METHOD_IO
from vera_mobile.tokenizer import Tokenizer
from vera_mobile.views import planner_view

from .weight_scales import input_power

# What a quantizer's calibration runs through the language model: the planner's own prompts on a
# bundled photo (benchmarks/planner.py measures on the other one, sample_coffee.jpg).
CALIBRATION_PHOTO = ASSETS / "sample_trier_dark.jpg"
CALIBRATION_REQUESTS = (Request("auto"), Request("style", prompt="I want a warm film look."))


class MethodSpec(NamedTuple):
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]  # examples: they fix every static size
    dynamic_shapes: Any  # one entry per input (None: static), or None
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


class VisionEncoder(nn.Module):
    """pixels [1, 3, S, S] in [0, 1] -> image embeddings [1, N, H]: the tower, then the projector."""

    def __init__(self, model: VeraPlanner) -> None:
        super().__init__()
        self.vision_tower, self.projector = model.vision_tower, model.projector

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projector(self.vision_tower(pixels))


class TokenEmbedding(nn.Module):
    def __init__(self, embed_tokens: nn.Module) -> None:
        super().__init__()
        self.embed_tokens = embed_tokens

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)


class RetouchHead(nn.Module):
    """The retouch head and mask, as `VeraPlanner.latent`; `head` replaces the model's own (a quantized copy)."""

    def __init__(self, model: VeraPlanner, head: nn.Module | None = None) -> None:
        super().__init__()
        self.head = head if head is not None else model.retouch_head
        self.latent_dim = model.config.latent_dim

    def forward(self, hidden3: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return retouch_latent(self.head, hidden3, mask, self.latent_dim)


def _spec(name: str, module: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic_shapes: Any) -> MethodSpec:
    input_names, output_names = PLANNER_METHOD_IO[name]
    return MethodSpec(module, inputs, dynamic_shapes, input_names, output_names)


def vision_encoder(model: VeraPlanner, module: nn.Module | None = None) -> MethodSpec:
    """`module` replaces the encoder (a quantized copy of `VisionEncoder(model)`)."""
    size = model.config.vision.image_size
    module = module if module is not None else VisionEncoder(model).eval()
    return _spec("vision_encoder", module, (torch.full((1, 3, size, size), 0.5),), None)


def token_embedding(language_model: nn.Module, max_tokens: int, id_dtype: torch.dtype = torch.int64) -> MethodSpec:
    """Up to `max_tokens` ids per call; Core ML takes int32 ids (it has no int64 inputs)."""
    tokens = torch.export.Dim("tokens", min=1, max=max_tokens)
    return _spec("token_embedding", TokenEmbedding(language_model.model.embed_tokens).eval(),
                 (torch.zeros(1, 2, dtype=id_dtype),), ({1: tokens},))


def tied_embedding(language_model: nn.Module) -> bool:
    """Whether the token embedding table and lm_head are one matrix (Qwen2-0.5B, SmolLM2): a target stores it once."""
    embedding = language_model.get_input_embeddings().weight
    head = language_model.get_output_embeddings().weight
    return embedding.shape == head.shape and bool(torch.equal(embedding, head))


def retouch_head(model: VeraPlanner, head: nn.Module | None = None) -> MethodSpec:
    hidden = model.config.hidden_size
    return _spec("retouch_head", RetouchHead(model, head).eval(), (torch.zeros(1, 3, hidden), torch.ones(1, 3)), None)



@torch.no_grad()
def calibration_embeddings(model: VeraPlanner, tokenizer: Tokenizer) -> list[torch.Tensor]:
    """The input embeddings [T, H] of each calibration request, image features spliced in."""
    backend = TorchPlanner(model)
    features = backend.encode_image(planner_view(load_photo(CALIBRATION_PHOTO), model.config.vision.image_size))
    sequences = []
    for request in CALIBRATION_REQUESTS:
        ids = tokenizer.encode_prompt(request.full_prompt())
        sequences.append(torch.from_numpy(prompt_embeddings(backend, ids, features)))
    return sequences


class PlannerCalibration:
    """What the searched-scale recipes weigh their int4 scales by (export/weight_scales.py): the
    mean square of each language-model linear's input over `calibration_embeddings`. Measured on
    first use and kept, so a bundle whose targets all search their scales calibrates once."""

    def __init__(self, model: VeraPlanner, tokenizer: Tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    @cached_property
    def power(self) -> dict[str, torch.Tensor]:
        return input_power(self.model.language_model, calibration_embeddings(self.model, self.tokenizer))
