"""Continuous batching: a fixed number of slots decode together, and a finished row's slot
takes the next prompt at once.

A batch generated as one (guardcli.core.engine) runs until its longest row ends: every step
after a row's Answers block is work thrown away (13% of row-steps at batch 8 on nano,
docs/bench round 2), and its prefill pads every row to the longest. A pool has neither: each
prompt is read alone into its slot (no padding), the finished rows' slots are refilled
between two decode steps, and the rows still running are kept in the lowest slots so a step
computes only live rows. The common head of the prompts (the GuardReasoner instruction) is
read once and copied into each slot instead of read again per row.

This module is the schedule only, over token ids and a ``SlotCache``: tests run it on a
fake cache in milliseconds (tests/test_slots.py) and on the real runtime against batch
generation, token for token (tests/test_slot_pool.py).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from guardcli.core.rows import Rows

# A common head shorter than this is read with each prompt: the copy would save nothing.
MIN_SHARED = 16


class SlotCache(Protocol):
    """One KV cache of ``slots`` rows that decode together."""

    slots: int

    def share(self, ids: Sequence[int]) -> None:
        """Read ``ids`` once, as the head a ``fill`` may copy instead of reading."""
        ...

    def fill(self, slot: int, ids: Sequence[int], shared: int) -> int:
        """Put ``ids`` in ``slot`` (its first ``shared`` copied from ``share``'s) and return
        the greedy next token. The slot's previous contents are dropped."""
        ...

    def move(self, dst: int, src: int) -> None:
        """Move the row in slot ``src`` to slot ``dst`` (whose row has finished)."""
        ...

    def step(self, tokens: Sequence[int]) -> Sequence[int]:
        """Append ``tokens[i]`` to slot i, for slots 0..len(tokens)-1, one forward pass for
        all; the greedy next token of each."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SlotTiming:
    prefill_s: list[float]  # per row: the time its fill took
    reused: int  # head tokens each row copied instead of reading


def shared_head(prompts: Sequence[Sequence[int]]) -> int:
    """How many leading ids every prompt shares, leaving each at least one of its own (a
    fill must read something to have next-token logits); 0 when too short to be worth it."""
    head = len(os.path.commonprefix([list(p) for p in prompts]))
    head = min(head, min(len(p) for p in prompts) - 1)
    return head if head >= MIN_SHARED else 0


def run_slots(
    cache: SlotCache,
    prompts: Sequence[Sequence[int]],
    rows: Rows,
    *,
    cancelled: Callable[[], bool] | None = None,
    share: bool = True,
) -> SlotTiming:
    """Generate every prompt through ``cache``, feeding ``rows`` (whose clocks start when a
    row's fill starts). Prompts enter in order; a row leaves when ``rows`` says it ended.
    ``share=False`` reads every prompt whole (for comparison, as Engine(reuse_prefix=False))."""
    shared = shared_head(prompts) if share else 0
    if shared:
        cache.share(prompts[0][:shared])
    queue = deque(range(len(prompts)))
    began = [0.0] * len(prompts)
    prefill = [0.0] * len(prompts)
    held: list[int] = []  # the row in each occupied slot; occupied slots are 0..len-1
    pending: list[int] = []  # each held row's next token, not yet in the cache
    while queue or held:
        if cancelled is not None and cancelled():
            raise KeyboardInterrupt
        while queue and len(held) < cache.slots:
            row = queue.popleft()
            began[row] = time.perf_counter()
            token = cache.fill(len(held), prompts[row], shared)
            now = time.perf_counter()
            prefill[row] = now - began[row]
            if not rows.take(row, int(token), now - began[row]):
                held.append(row)
                pending.append(int(token))
        if not held:
            break
        tokens = cache.step(pending)
        now = time.perf_counter()
        kept = []
        for slot, (row, token) in enumerate(zip(held, tokens, strict=True)):
            if not rows.take(row, int(token), now - began[row]):
                kept.append(slot)
                pending[slot] = int(token)
        for dst, src in enumerate(kept):
            if dst != src:
                cache.move(dst, src)
        held = [held[slot] for slot in kept]
        pending = [pending[slot] for slot in kept]
    return SlotTiming(prefill, shared)
