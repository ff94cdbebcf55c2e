"""Attention for CPU training: transformers' eager arithmetic, compiled by ``torch.compile``.

On two CPU cores, attention over a ~650-token row was the largest cost of a LoRA step:
SDPA's CPU flash kernel ran slower than plain matmuls and a softmax, and the eager path's
memory-bound steps (scale, mask add, a float32 softmax, the casts around it, and the same in
backward) over 9 × L × L scores cost more than its matmuls. Compiled, those steps fuse
(``scripts/train_speed.py`` has the numbers). The function is pure (no layer index, no cache),
so one compiled graph with dynamic shapes serves every layer and every row length.

Registered with transformers' ``AttentionInterface`` under ``NAME``: the model calls it the way
it calls its own implementations. It needs an explicit mask (``LoraLM._mask`` always gives one
for it) and has no dropout (LoRA training here uses none).
"""

from __future__ import annotations

from typing import Any

NAME = "guardcli_compiled"
_compiled: Any = None


def attend(query: Any, key: Any, value: Any, mask: Any, scaling: float, groups: int) -> Any:
    """eager_attention_forward's arithmetic: grouped keys and values repeated, additive mask,
    softmax in float32; output as [batch, length, heads, dim]."""
    import torch

    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling + mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous()


def compiled_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[Any, None]:
    global _compiled
    import torch

    if attention_mask is None:
        raise ValueError(f"{NAME} needs an explicit attention mask")
    if _compiled is None:
        _compiled = torch.compile(attend, dynamic=True)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return _compiled(query, key, value, attention_mask, scale, module.num_key_value_groups), None


def register() -> str:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, compiled_attention)
    return NAME
