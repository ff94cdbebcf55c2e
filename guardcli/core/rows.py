"""When a generated row is finished, decided the same way for a batch and for a slot pool.

A row ends at EOS (not kept), when the caller's stop rule says its answer is complete, when
its tokens fall into a cycle (guardcli.core.loops) or at its token budget. Both ways of
generating (guardcli.core.engine's batch, guardcli.core.slots' pool) feed tokens through one
``Rows``, so a verdict cannot depend on which one produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from guardcli.core.loops import LoopRule, LoopWatch

# (row, token) for every generated token, as soon as it exists: the TUI streams from here.
TokenCallback = Callable[[int, int], None]
# (row, tokens so far) -> stop now?
StopRule = Callable[[int, Sequence[int]], bool]


@dataclass(frozen=True)
class Completion:
    """One row's outcome. ``finish`` is "eos", "stop" (the caller's stop rule), "loop" (the
    row's tokens cycle: guardcli.core.loops) or "length"."""

    tokens: list[int]
    finish: str
    prompt_tokens: int
    latency_s: float  # this row's start until it stopped (a batch starts all rows together)
    prefill_s: float  # the prefill that read this row (a batch's is shared by its rows)
    reused: int = 0  # prompt tokens served from a cache instead of read again


class Rows:
    """The generated ids of each row and why it stopped; ``take`` feeds one token."""

    def __init__(
        self,
        budgets: Sequence[int],
        *,
        eos: frozenset[int],
        should_stop: StopRule | None = None,
        on_token: TokenCallback | None = None,
        loops: LoopRule | None = None,
    ) -> None:
        self.budgets = list(budgets)
        self.out: list[list[int]] = [[] for _ in self.budgets]
        self.finish: list[str | None] = [None] * len(self.budgets)
        self.ended_at = [0.0] * len(self.budgets)
        self._eos = eos
        self._should_stop = should_stop
        self._on_token = on_token
        self._watches = [LoopWatch(loops) for _ in self.budgets] if loops is not None else None

    def take(self, row: int, token: int, now: float) -> bool:
        """Feed ``row`` its next token (``now``: seconds since its clock started); whether the
        row has finished. A finished row ignores what it is fed."""
        if self.finish[row] is not None:
            return True
        out = self.out[row]
        if token in self._eos:
            self._end(row, "eos", now)
            return True
        out.append(token)
        if self._on_token is not None:
            self._on_token(row, token)
        if self._should_stop is not None and self._should_stop(row, out):
            self._end(row, "stop", now)
        elif self._watches is not None and self._watches[row].push(token):
            self._end(row, "loop", now)
        elif len(out) >= self.budgets[row]:
            self._end(row, "length", now)
        return self.finish[row] is not None

    def _end(self, row: int, finish: str, now: float) -> None:
        self.finish[row], self.ended_at[row] = finish, now

    def all_done(self) -> bool:
        return all(f is not None for f in self.finish)
