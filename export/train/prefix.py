"""The instruction prefix, run forward and backward once per optimizer step instead of once per row.

Every GuardReasoner row opens with the same 115 tokens (BOS, the instruction, "Human user:"),
a sixth of a trace row and most of a label-only row. With LoRA on every layer the
prefix's keys and values depend on the adapter, so they cannot be cached across steps; but
within a step the adapter is fixed, so the step's rows can share one forward pass of the prefix.
Each row then runs only its own tokens, attending to the shared keys and values; the gradient
each row sends back into them is summed on leaf copies, and one backward pass through the prefix
at the end of the step delivers the sum to the adapter. The result is the same gradient as
running every row whole (tests/test_fast_sft.py checks it), for less arithmetic.

Positions after the prefix only see it through attention, which is why keys and values are all
a row needs of it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from export.train.sft_data import Sequence_


def shared_length(rows: list[Sequence_]) -> int:
    """Tokens every row starts with, stopping before the first position any row's loss reads
    (the hidden state at ``target - 1`` must be the row's own, to put the LM head on it)."""
    if len(rows) < 2:
        return 0
    first = rows[0].ids
    length = min(len(r.ids) for r in rows)
    for row in rows[1:]:
        length = next((i for i in range(length) if row.ids[i] != first[i]), length)
    return max(0, min(length, *(min(r.targets) - 1 for r in rows)))


class Recorder:
    """The cache object a prefix pass hands to each attention layer: keeps what it is given."""

    def __init__(self) -> None:
        self.keys: dict[int, Any] = {}
        self.values: dict[int, Any] = {}

    def update(self, key: Any, value: Any, layer_idx: int, *_: Any, **__: Any) -> tuple[Any, Any]:
        self.keys[layer_idx], self.values[layer_idx] = key, value
        return key, value


class _Extend:
    """The cache object a row's pass hands to each attention layer: the shared prefix first."""

    def __init__(self, keys: list[Any], values: list[Any]) -> None:
        self.keys, self.values = keys, values

    def update(self, key: Any, value: Any, layer_idx: int, *_: Any, **__: Any) -> tuple[Any, Any]:
        import torch

        return (
            torch.cat([self.keys[layer_idx], key], dim=2),
            torch.cat([self.values[layer_idx], value], dim=2),
        )


@dataclass
class SharedPrefix:
    """One step's prefix: its keys and values as graph outputs, and the leaf copies rows read."""

    length: int
    outputs: list[Any] = field(default_factory=list)  # keys then values, in the prefix's graph
    leaves: list[Any] = field(default_factory=list)  # detached copies; rows' gradients land here

    @classmethod
    def of(cls, record: Recorder, length: int) -> SharedPrefix:
        layers = sorted(record.keys)
        outputs = [record.keys[i] for i in layers] + [record.values[i] for i in layers]
        leaves = [t.detach().requires_grad_(t.requires_grad) for t in outputs]
        return cls(length, outputs, leaves)

    def cache(self) -> _Extend:
        half = len(self.leaves) // 2
        return _Extend(self.leaves[:half], self.leaves[half:])

    def backward(self) -> None:
        """The rows' summed gradient, through the prefix, into the adapter: once per step."""
        import torch

        pairs = [(o, leaf.grad) for o, leaf in zip(self.outputs, self.leaves, strict=True)]
        pairs = [(o, g) for o, g in pairs if g is not None and o.requires_grad]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


def cache_keyword(layer: Any) -> str:
    """What a decoder layer calls its cache argument: ``cache`` since transformers 5.x renamed
    ``past_key_values`` (both are accepted by the versions between)."""
    names = inspect.signature(layer.forward).parameters
    return "cache" if "cache" in names else "past_key_values"
