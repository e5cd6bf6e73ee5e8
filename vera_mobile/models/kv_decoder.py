"""An export-friendly Qwen2 decoder with its own KV cache, returning logits *and* hidden states.

transformers' cache classes change between releases (and one of them breaks Core ML conversion),
so exporters use this module instead: the same weights as the loaded `Qwen2ForCausalLM` (shared,
not copied), the same math, and two explicit cache styles:

* `StaticCacheDecoder`: fixed-size K/V buffers per layer, written in place at `input_pos`
  (ExecuTorch mutable buffers, Core ML `StateType`). Attention runs over all `max_seq_len` slots
  with a mask that hides the slots after each query's position.
* `PastKeyValueDecoder`: K/V of earlier positions come in as inputs and the grown K/V go out
  (ONNX `past_key_values` / `present` convention).

Both return the logits and the final-norm hidden state of the *last* input position only: that is
all the generation loop needs (the next token, and the state that predicted it), and it spares
a vocabulary-sized matmul per prompt position.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2's RMSNorm: normalise in fp32, scale in the input dtype."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotaryTable(nn.Module):
    """cos/sin for every position up to max_seq_len, precomputed (RoPE, default scaling)."""

    def __init__(self, head_dim: int, theta: float, max_seq_len: int) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        freqs = torch.outer(torch.arange(max_seq_len).float(), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[positions], self.sin[positions]  # [T, head_dim] each


class DecoderCore(nn.Module):
    """The Qwen2 stack over borrowed weights; the caller supplies how keys/values are cached."""

    def __init__(self, language_model: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        config = language_model.config
        self.embed_tokens = language_model.model.embed_tokens
        self.layers = language_model.model.layers
        self.norm = language_model.model.norm
        self.lm_head = language_model.lm_head
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.eps = config.rms_norm_eps
        self.max_seq_len = max_seq_len
        self.regroup_queries = True  # see attend()
        self.rope = RotaryTable(self.head_dim, config.rope_parameters["rope_theta"], max_seq_len)

    def project_qkv(
        self, layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [T, hidden] → q [heads, T, d], k and v [kv_heads, T, d], RoPE applied to q and k."""
        attn = layer.self_attn
        length = x.shape[0]
        q = attn.q_proj(x).view(length, self.num_heads, self.head_dim).transpose(0, 1)
        k = attn.k_proj(x).view(length, self.num_kv_heads, self.head_dim).transpose(0, 1)
        v = attn.v_proj(x).view(length, self.num_kv_heads, self.head_dim).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        return q, k, v

    def attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Grouped-query attention: q [H, T, d] over keys/values [Hkv, S, d] where `allowed` [T, S].

        Query head h reads K/V head h // group (transformers' repeat_interleave order). By default
        the queries are regrouped to [Hkv, group*T, d] rather than the keys and values repeated:
        repeating copies the whole cache `group` times per layer and token (7 MB a layer at full
        size), which made ExecuTorch decode 2.6x slower. `regroup_queries = False` repeats instead,
        for torch.export's non-strict mode, which cannot prove the regrouped form's shape guard
        (torch 2.13; the Core ML route).
        """
        group, length = self.num_heads // self.num_kv_heads, q.shape[1]
        if not self.regroup_queries:
            keys, values = keys.repeat_interleave(group, dim=0), values.repeat_interleave(group, dim=0)
            mask = ~allowed
        else:
            q = q.reshape(self.num_kv_heads, group * length, self.head_dim)  # row g*T + t of K/V head kv
            mask = ~allowed.repeat(group, 1)
        scores = (q @ keys.transpose(-1, -2)) * self.head_dim**-0.5
        weights = torch.softmax(scores.masked_fill(mask, float("-inf")).float(), dim=-1).to(q.dtype)
        out = (weights @ values).reshape(self.num_heads, length, self.head_dim)
        return out.transpose(0, 1).reshape(length, -1)  # [T, H*d]

    def block(self, layer: nn.Module, x: torch.Tensor, attention_out: torch.Tensor) -> torch.Tensor:
        """Residual + MLP after attention: x [T, hidden], attention_out [T, H*d]."""
        x = x + layer.self_attn.o_proj(attention_out)
        mlp = layer.mlp
        h = rms_norm(x, layer.post_attention_layernorm.weight, self.eps)
        return x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))

    def finish(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last position's final-norm hidden state [1, hidden] and logits [1, vocab]."""
        hidden = rms_norm(x[-1:], self.norm.weight, self.eps)
        return self.lm_head(hidden), hidden


class StaticCacheDecoder(nn.Module):
    """Decoder with in-place K/V buffers: forward(embeds [1,T,hidden], input_pos [T]) → (logits, hidden)."""

    def __init__(self, language_model: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        self.core = DecoderCore(language_model, max_seq_len)
        shape = (self.core.num_kv_heads, max_seq_len, self.core.head_dim)
        dtype = self.core.embed_tokens.weight.dtype
        for index in range(len(self.core.layers)):
            self.register_buffer(f"k_cache_{index}", torch.zeros(shape, dtype=dtype), persistent=False)
            self.register_buffer(f"v_cache_{index}", torch.zeros(shape, dtype=dtype), persistent=False)

    def reset(self) -> None:
        for name, buffer in self.named_buffers():
            if "_cache_" in name:
                buffer.zero_()

    def forward(self, embeds: torch.Tensor, input_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        core = self.core
        x = embeds[0]
        cos, sin = core.rope(input_pos)
        slots = torch.arange(core.max_seq_len, device=input_pos.device)
        allowed = slots[None, :] <= input_pos[:, None]  # [T, max_seq_len]: causal over the cache
        where = self.cache_index(input_pos)
        for index, layer in enumerate(core.layers):
            h = rms_norm(x, layer.input_layernorm.weight, core.eps)
            q, k, v = core.project_qkv(layer, h, cos, sin)
            k_cache, v_cache = getattr(self, f"k_cache_{index}"), getattr(self, f"v_cache_{index}")
            self.write_cache(k_cache, where, k)
            self.write_cache(v_cache, where, v)
            x = core.block(layer, x, core.attend(q, k_cache, v_cache, allowed))
        return core.finish(x)

    def cache_index(self, input_pos: torch.Tensor) -> Any:
        """What `write_cache` needs to place the T new positions (computed once per call)."""
        return input_pos

    def write_cache(self, cache: torch.Tensor, where: Any, values: torch.Tensor) -> None:
        """Write `values` [kv_heads, T, d] into `cache` [kv_heads, max_seq_len, d] in place."""
        cache.index_copy_(1, where, values)


class PastKeyValueDecoder(nn.Module):
    """Decoder with K/V as inputs and outputs (ONNX convention).

    forward(embeds [1,T,hidden], past_keys [L,Hkv,P,d], past_values [L,Hkv,P,d])
      → logits [1,vocab], hidden [1,hidden], present_keys [L,Hkv,P+T,d], present_values
    Positions are P .. P+T-1 (batch 1, no padding).
    """

    def __init__(self, language_model: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        self.core = DecoderCore(language_model, max_seq_len)

    def forward(
        self, embeds: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        core = self.core
        x = embeds[0]
        past, length = past_keys.shape[2], x.shape[0]
        positions = torch.arange(length, device=x.device) + past
        cos, sin = core.rope(positions)
        allowed = torch.arange(past + length, device=x.device)[None, :] <= positions[:, None]
        presents_k, presents_v = [], []
        for index, layer in enumerate(core.layers):
            h = rms_norm(x, layer.input_layernorm.weight, core.eps)
            q, k, v = core.project_qkv(layer, h, cos, sin)
            keys = torch.cat([past_keys[index], k], dim=1)
            values = torch.cat([past_values[index], v], dim=1)
            presents_k.append(keys)
            presents_v.append(values)
            x = core.block(layer, x, core.attend(q, keys, values, allowed))
        logits, hidden = core.finish(x)
        return logits, hidden, torch.stack(presents_k), torch.stack(presents_v)
