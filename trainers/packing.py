"""Padding-free micro-batches: every sequence of a micro-batch in one flat row.

Chosen and rejected sequences (or the regression sequences) are laid end to end in one
row of shape [1, total tokens] with `position_ids` restarting at 0 for each sequence, so
no token is padding. Attention must never cross from one sequence into another; three
kernels keep it inside:

- `sdpa_varlen` (ours, the default wherever flash-attention is absent): PyTorch SDPA run
  once per sequence with `is_causal=True`, registered in transformers' AttentionInterface.
  The work is the sum of each sequence's own causal attention.
- `flash_attention_2` / `_3` (GPU, when installed): transformers' variable-length
  flash-attention path, fed the cumulative sequence lengths.
- `sdpa` / `eager` set explicitly in `model.attn_implementation`: transformers finds the
  sequences from `position_ids` (`masking_utils.find_packed_sequence_indices`) and builds a
  block-diagonal causal mask. Exact, but the mask covers the whole row, so its attention
  costs (total tokens)^2: measured about 6x slower than padding on CPU, hence not the
  default.

The reward of each sequence is read at its own last token: a forward hook keeps the
head's per-token output (the HF head itself pools one token per row).

Shared prompts (`pack_pairs`, Bradley-Terry with `sdpa_varlen`): a pair's chosen and
rejected sequences begin with the same tokens (the conversation so far), so the pair is
laid out once as prompt + chosen reply + rejected reply, the rejected reply's positions
continuing from the prompt's. The chosen part attends causally to the prompt and itself
(one causal SDPA call over prompt + chosen); the rejected part attends to the prompt and
itself (one SDPA call with a [prompt: all, reply: causal] mask). Every token sees exactly
what it sees in its own sequence, so rewards, losses and gradients are the unshared ones
(the prompt's gradient is the sum from both replies), and the prompt is computed once:
on HH-RLHF harmless-base pairs the shared prompt is about a third of a pair's tokens.

Reward tokens only in the last layer (`prune_last_layer`): the loss reads one hidden state
per sequence, at its end, and nothing after the last decoder layer mixes tokens. So that
layer computes keys and values for every token (the reward tokens attend to them) but the
query, attention output, MLP and norms only at the reward tokens; the other positions
pass the layer's input through, unread. Rewards and gradients are the full layer's. On a
pre-norm block (Llama, Mistral, Qwen2, Qwen3) that removes about 8/9 of the last layer's
matmuls and all but one query row per sequence of its attention: 1/L of the work of an
L-layer model. The layer's own `forward` is replaced on the instance (no hook can skip a
module's computation); state dicts, FSDP2's hooks and activation checkpointing, which go
through `__call__`, are unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MethodType

import torch
import torch.nn.functional as F

from trainers.model import base_model

KERNEL = "sdpa_varlen"
FLASH = ("flash_attention_2", "flash_attention_3")


def _sdpa_varlen(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kw):
    """Causal attention within each packed sequence; query/key/value: [1, heads, tokens, dim].

    One SDPA call per sequence on `split` views (measured on CPU: 1.2x faster than laying
    the sequences out side by side for one batched call, and 1.6x faster than slicing,
    whose backward writes a full-size gradient per slice).
    """
    lengths = kw.get("packed_lengths")
    if lengths is None:
        raise RuntimeError(f"{KERNEL} needs packed inputs; use sdpa for padded batches")
    options = {
        "dropout_p": dropout if module.training else 0.0,
        "scale": scaling,
        "enable_gqa": query.shape[1] != key.shape[1],
    }
    window = kw.get("sliding_window")
    shared = kw.get("packed_shared")
    parts = zip(*(x.split(lengths, dim=2) for x in (query, key, value)), strict=True)
    outs = []
    for n, (q, k, v) in enumerate(parts):
        if shared is not None:
            outs.extend(_shared_prompt_attention(q, k, v, *shared[n], options))
            continue
        mask = _band(q.shape[2], window, query.device)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, **options
        )
        outs.append(out)
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _shared_prompt_attention(q, k, v, prompt: int, chosen: int, options: dict):
    """Attention of one pair laid out as prompt + chosen + rejected (see the module doc):
    the outputs of prompt + chosen and of the rejected reply, concatenated by the caller
    with every other pair's (one concatenation per layer instead of one per pair)."""
    first = prompt + chosen
    rejected = q.shape[2] - first
    q_first, q_rej = q.split([first, rejected], dim=2)
    k_first, k_rej = k.split([first, rejected], dim=2)
    v_first, v_rej = v.split([first, rejected], dim=2)
    out_first = F.scaled_dot_product_attention(q_first, k_first, v_first, is_causal=True, **options)
    keys = torch.cat([k_first[:, :, :prompt], k_rej], dim=2)
    values = torch.cat([v_first[:, :, :prompt], v_rej], dim=2)
    mask = _rejected_mask(prompt, rejected, q.dtype, q.device)
    out_rej = F.scaled_dot_product_attention(q_rej, keys, values, attn_mask=mask, **options)
    return out_first, out_rej


@lru_cache(maxsize=256)
def _rejected_mask(prompt: int, rejected: int, dtype, device) -> torch.Tensor:
    """[rejected reply: all of the prompt, causal over itself]: reply token i sees key j
    when j <= prompt + i. The same for every layer of a forward, so built once per shape
    (SDPA only reads it); additive (0 or -inf) because SDPA converts a boolean mask to
    that on every call."""
    keys = torch.arange(prompt + rejected, device=device)
    queries = torch.arange(prompt, prompt + rejected, device=device)
    hidden = keys[None, :] > queries[:, None]
    return torch.zeros(hidden.shape, dtype=dtype, device=device).masked_fill(hidden, float("-inf"))


def _band(n: int, window: int | None, device) -> torch.Tensor | None:
    """A sliding-window causal mask, only when the window is shorter than the sequence."""
    if window is None or n <= window:
        return None
    i = torch.arange(n, device=device)
    distance = i[:, None] - i[None, :]
    return (distance >= 0) & (distance < window)


def register_kernel() -> None:
    """Make `sdpa_varlen` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(KERNEL, _sdpa_varlen)
    # The kernel finds the sequences from packed_lengths: no mask is built for it.
    AttentionMaskInterface.register(KERNEL, lambda *args, **kwargs: None)


@dataclass
class Packed:
    input_ids: torch.Tensor
    """[1, total tokens]"""
    position_ids: torch.Tensor
    """[1, total tokens], restarting at 0 for each sequence"""
    bounds: list[int]
    """start of each sequence (or shared-prompt pair), then the total"""
    shared: list[tuple[int, int]] | None = None
    """per pair (prompt tokens, chosen reply tokens) when pairs share their prompt"""
    ends: list[int] | None = None
    """where each sequence's reward is read, when not at the end of each span"""

    @property
    def last_tokens(self) -> torch.Tensor:
        ends = self.ends if self.ends is not None else [b - 1 for b in self.bounds[1:]]
        return torch.tensor(ends, device=self.input_ids.device)

    @property
    def lengths(self) -> list[int]:
        return [b - a for a, b in zip(self.bounds, self.bounds[1:], strict=False)]

    def reward_keys(self) -> torch.Tensor:
        """[reward tokens, total tokens]: the keys each reward token attends to (its own
        sequence; for a shared-prompt pair's rejected reply, the prompt and that reply)."""
        starts, stops = self.bounds[:-1], self.bounds[1:]
        if self.shared is None:
            spans = [(a, b, b, b) for a, b in zip(starts, stops, strict=True)]
        else:
            firsts = [a + p + c for a, (p, c) in zip(starts, self.shared, strict=True)]
            spans = [(a, f, a, a) for a, f in zip(starts, firsts, strict=True)]
            spans += [
                (a, a + p, f, b)
                for a, b, f, (p, _) in zip(starts, stops, firsts, self.shared, strict=True)
            ]
        device = self.input_ids.device
        lo1, hi1, lo2, hi2 = torch.tensor(spans, device=device).T[..., None]
        keys = torch.arange(self.bounds[-1], device=device)
        return ((keys >= lo1) & (keys < hi1)) | ((keys >= lo2) & (keys < hi2))

    def model_kwargs(self, attn: str, reward_tokens: bool = False) -> dict:
        """The forward's keyword arguments for an attention implementation; with
        `reward_tokens`, what a pruned last layer (`prune_last_layer`) needs."""
        kwargs = {
            "input_ids": self.input_ids,
            "position_ids": self.position_ids,
            "use_cache": False,  # a cache turns transformers' packed-sequence detection off
        }
        if reward_tokens:
            kwargs["reward_tokens"] = self.last_tokens
            kwargs["reward_keys"] = self.reward_keys()
        if attn == KERNEL:
            kwargs["packed_lengths"] = self.lengths
            if self.shared is not None:
                kwargs["packed_shared"] = self.shared
        elif self.shared is not None:
            raise RuntimeError(f"shared-prompt pairs need the {KERNEL} attention, not {attn}")
        elif attn in FLASH:
            cu = torch.tensor(self.bounds, dtype=torch.int32, device=self.input_ids.device)
            longest = max(b - a for a, b in zip(self.bounds, self.bounds[1:], strict=False))
            kwargs.update(
                cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest
            )
        return kwargs


def pack(seqs: Sequence[Sequence[int]], device) -> Packed:
    """One flat row holding every sequence, with per-sequence positions."""
    bounds = [0]
    for s in seqs:
        bounds.append(bounds[-1] + len(s))
    ids = torch.tensor([t for s in seqs for t in s], device=device)
    positions = torch.tensor([p for s in seqs for p in range(len(s))], device=device)
    return Packed(ids[None], positions[None], bounds)


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Tokens two sequences share at the start, leaving each at least one of its own
    (its reward is read at its last token, which must be its own)."""
    limit = min(len(a), len(b)) - 1
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def pack_pairs(chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]], device):
    """One flat row of pairs, each laid out as shared prompt + chosen + rejected reply;
    rewards come out in the order chosen of every pair, then rejected of every pair."""
    ids: list[int] = []
    positions: list[int] = []
    bounds, shared, chosen_ends, rejected_ends = [0], [], [], []
    for c, r in zip(chosen, rejected, strict=True):
        p = shared_prefix(c, r)
        start = bounds[-1]
        ids += [*c, *r[p:]]
        positions += [*range(len(c)), *range(p, len(r))]
        shared.append((p, len(c) - p))
        chosen_ends.append(start + len(c) - 1)
        bounds.append(start + len(c) + len(r) - p)
        rejected_ends.append(bounds[-1] - 1)
    return Packed(
        torch.tensor(ids, device=device)[None],
        torch.tensor(positions, device=device)[None],
        bounds,
        shared=shared,
        ends=chosen_ends + rejected_ends,
    )


class TokenScores:
    """Keeps the reward head's per-token output of the latest forward (a forward hook)."""

    def __init__(self, head: torch.nn.Module):
        self.output: torch.Tensor | None = None
        self._handle = head.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.output = output

    def take(self) -> torch.Tensor:
        out, self.output = self.output, None
        if out is None:
            raise RuntimeError("the reward head did not run in the last forward")
        return out

    def remove(self) -> None:
        self._handle.remove()


def packed_scores(
    model, head: TokenScores, packed: Packed, attn: str, reward_tokens: bool = False
) -> torch.Tensor:
    """Rewards [sequences, outputs], each read at its sequence's last token."""
    pooled = model(**packed.model_kwargs(attn, reward_tokens)).logits
    rewards = head.take()[0, packed.last_tokens]
    # FSDP2 unshards the root's parameters (final norm, head) for backward from a hook on
    # the root's output; the rewards bypass that output, so tie it into the graph (+ 0).
    return rewards + 0 * pooled.sum()


def reward_head(model) -> torch.nn.Module | None:
    """The per-token reward head of a decoder classifier (`score`), or None.

    Decoder classifiers (Llama, Mistral, Qwen, Gemma, GPT-2, ...) apply `score` to every
    token and pick the last real one, so reading the head's output at each packed
    sequence's end is the same reward. Encoders pool [CLS] through their own pooler
    (`classifier`), and transformers' bidirectional masks ignore position_ids: no packing.
    """
    base = base_model(model)
    if getattr(base.config, "is_encoder_decoder", False):
        return None
    head = getattr(base, "score", None)
    return head if isinstance(head, torch.nn.Module) else None


def kernel_for(requested: str | None, device: torch.device) -> str:
    """The attention implementation packed batches run with."""
    if requested:
        return requested
    if device.type == "cuda" and _flash_installed():
        return "flash_attention_2"
    return KERNEL


def set_attention(model, name: str) -> None:
    if name == KERNEL:
        register_kernel()
    base = base_model(model)
    base.set_attn_implementation(name)


def attention_of(model) -> str:
    base = base_model(model)
    return base.config._attn_implementation


PRUNABLE = ("llama", "mistral", "qwen2", "qwen3")
"""Model types whose decoder layer is the pre-norm block `_reward_tokens_forward` computes."""


def prune_last_layer(model, max_length: int) -> str | None:
    """Make the last decoder layer compute only the reward tokens of packed inputs given
    `reward_tokens` (see the module doc); None when done, else why not."""
    base = base_model(model)
    config = base.config
    if config.model_type not in PRUNABLE:
        return f"{config.model_type} is not one of the pre-norm decoders {', '.join(PRUNABLE)}"
    window = getattr(config, "sliding_window", None)
    if window is not None and window < max_length:
        return f"its sliding window ({window}) is shorter than data.max_length ({max_length})"
    layers = getattr(getattr(base, "model", None), "layers", None)
    if not layers:
        return f"{type(base).__name__} has no `model.layers` decoder stack"
    layers[-1].forward = MethodType(_reward_tokens_forward, layers[-1])
    return None


def unprune_last_layer(model) -> None:
    base = base_model(model)
    base.model.layers[-1].__dict__.pop("forward", None)


def _reward_tokens_forward(
    layer, hidden_states, position_embeddings=None, reward_tokens=None, reward_keys=None, **kw
):
    """The decoder layer's output at `reward_tokens` (hidden_states elsewhere)."""
    if reward_tokens is None:
        return type(layer).forward(
            layer, hidden_states, position_embeddings=position_embeddings, **kw
        )
    attn = layer.self_attn
    normed = layer.input_layernorm(hidden_states)
    cos, sin = position_embeddings
    # The base's own rotary function; it rotates two tensors at the same positions, and
    # the queries are at other positions than the keys, so each call keeps one output.
    rotary = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    query = _heads(attn, "q", normed[:, reward_tokens])
    query = rotary(query, query, cos[:, reward_tokens], sin[:, reward_tokens])[0]
    key = _heads(attn, "k", normed)
    key = rotary(key, key, cos, sin)[1]
    value = _heads(attn, "v", normed)
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=reward_keys,
        dropout_p=attn.attention_dropout if layer.training else 0.0,
        scale=attn.scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    out = attn.o_proj(out.transpose(1, 2).flatten(2))
    mixed = hidden_states[:, reward_tokens] + out
    mixed = mixed + layer.mlp(layer.post_attention_layernorm(mixed))
    return hidden_states.index_copy(1, reward_tokens, mixed.to(hidden_states.dtype))


def _heads(attn, name: str, x: torch.Tensor) -> torch.Tensor:
    """[batch, tokens, hidden] -> [batch, heads, tokens, head_dim], with the per-head
    norm of bases that have one (Qwen3's q_norm / k_norm)."""
    out = getattr(attn, f"{name}_proj")(x).unflatten(-1, (-1, attn.head_dim))
    norm = getattr(attn, f"{name}_norm", None)
    return (norm(out) if norm is not None else out).transpose(1, 2)


@torch.no_grad()
def packing_error(
    model,
    head: TokenScores,
    seqs: list[list[int]],
    pad_id: int,
    attn: str,
    reward_tokens: bool = False,
) -> float:
    """Largest gap between packed and padded rewards for `seqs`, relative to their size.

    Run once before training on the real model: a base whose attention ignores the packed
    sequences (one that bypasses transformers' attention interface) shows a large gap.
    """
    reference = attention_of(model)
    was_training = model.training
    model.eval()
    try:
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        padded = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        head.take()
        set_attention(model, attn)
        packed = packed_scores(model, head, pack(seqs, ids.device), attn, reward_tokens)
        packed = packed.float()
    finally:
        set_attention(model, reference)
        model.train(was_training)
    return float((packed - padded).abs().max() / (1 + padded.abs().max()))


def _flash_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None
