"""Spotting a generation that loops: the same run of tokens, over and over, to the budget.

A small greedy model sometimes falls into a cycle ("I cannot help with that. I cannot help
with that. ...") and then spends every remaining token of ``max_new_tokens`` repeating it:
one such row held a batch of 8 to 1,024 tokens (docs/bench). Greedy decoding of a cycle
never leaves it, so stopping is safe; the verdict then comes from what was written (usually
no Answers block, so it fails closed) and the record says ``finish: loop``.

The rule has to be conservative, because GuardReasoner's own traces are repetitive by design
("## Reasoning Step 1 / The AI assistant's response is ..." once per task). It trips only when
the last tokens are *exactly periodic*: with a period ``p`` up to ``max_period``, the tail of
``max(repeats * p, min_span)`` tokens equals itself shifted by ``p``. So a single token must
repeat 64 times in a row, and a 32-token sentence must come back 8 times verbatim with
nothing in between. The margin is measured on the 6,585 GuardReasoner teacher traces (1B, 3B,
8B; tests/test_loops.py): apart from exact loops, the most periodic parsed trace repeats a
block twice; one 1B trace repeats a 32-token paragraph 5 times and then recovers to a good
Answers block, so ``repeats`` is 8, not 4. No parsed trace trips the rule, and the teacher's
own runaway (". . . ." to 2,048 tokens) does.

``LoopWatch`` keeps, per period, how many tokens in a row matched the token ``p`` before:
O(max_period) per token, no re-scan of the tail. ``looping`` is the same rule on a whole list,
the definition the watch is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoopRule:
    """A tail of ``max(repeats * p, min_span)`` tokens with period ``p <= max_period``."""

    max_period: int = 64
    repeats: int = 8
    min_span: int = 64

    def __post_init__(self) -> None:
        if self.max_period < 1 or self.repeats < 2 or self.min_span < 2:
            raise ValueError("a loop needs a period of at least 1 repeated at least twice")

    def span(self, period: int) -> int:
        """Tokens that must repeat with this period before the tail counts as a loop."""
        return max(self.repeats * period, self.min_span)


DEFAULT_LOOP_RULE = LoopRule()


def looping(tokens: Sequence[int], rule: LoopRule = DEFAULT_LOOP_RULE) -> bool:
    """Whether ``tokens`` ends in a loop under ``rule`` (the whole-list definition)."""
    for period in range(1, rule.max_period + 1):
        span = rule.span(period)
        if span > len(tokens):
            continue
        tail = tokens[len(tokens) - span :]
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return True
    return False


class LoopWatch:
    """``looping`` for one row, fed a token at a time."""

    def __init__(self, rule: LoopRule = DEFAULT_LOOP_RULE) -> None:
        self.rule = rule
        self._tokens: list[int] = []
        # _runs[p]: how many of the latest tokens each equal the token p before them
        self._runs = [0] * (rule.max_period + 1)
        self._spans = [rule.span(p) for p in range(rule.max_period + 1)]

    def push(self, token: int) -> bool:
        """Add the next token; True when the row now ends in a loop."""
        tokens, runs, spans = self._tokens, self._runs, self._spans
        tokens.append(token)
        n = len(tokens)
        found = False
        for period in range(1, min(self.rule.max_period, n - 1) + 1):
            if tokens[n - 1 - period] == token:
                runs[period] += 1
                # a periodic tail is the ``period`` tokens it starts with plus the matched run
                if runs[period] + period >= spans[period]:
                    found = True
            else:
                runs[period] = 0
        return found
