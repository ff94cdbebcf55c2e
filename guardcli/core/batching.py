"""How many inputs run together: a budget of padded tokens per batch, not just a row count.

A batch is right-padded to its longest row, and the runtime reserves that row's length plus
the generation budget for every row (KV cache, and the prefill's activations and logits grow
with it). So one 8,000-token input among seven short ones costs eight long rows: that is how
a default batch of 8 went past 10 GB. The cost of a batch is therefore

    rows * (longest input + new tokens)

and a batch closes before a row would push it over the budget. Inputs keep their order (no
sorting by length: results are written in input order, as they finish), so a long input
simply ends the batch before it and runs alone or with few others. An input whose cost alone
exceeds the budget still runs, alone; the long-input policy (guardcli.core.windows) keeps
each input within the context, which bounds that case too.
"""

from __future__ import annotations

from collections.abc import Sequence

# 8 rows of ~1,000 input tokens beside the default 1,024 new ones: the default batch of
# typical samples fits; one long input runs with at most a few others.
DEFAULT_BATCH_TOKENS = 16384


def batch_cost(lengths: Sequence[int], new_tokens: int) -> int:
    """Padded tokens a batch of inputs of these lengths holds at its end."""
    return len(lengths) * (max(lengths, default=0) + new_tokens)


def plan_batches(
    lengths: Sequence[int], *, max_rows: int, max_tokens: int, new_tokens: int
) -> list[range]:
    """Consecutive runs of rows (in order) each within ``max_rows`` and ``max_tokens``;
    a row too costly on its own gets a batch of its own."""
    if max_rows < 1 or max_tokens < 1:
        raise ValueError("a batch needs room for at least one row and one token")
    plans: list[range] = []
    start, longest = 0, 0
    for row, length in enumerate(lengths):
        grown = max(longest, length)
        rows = row - start + 1
        if row > start and (rows > max_rows or rows * (grown + new_tokens) > max_tokens):
            plans.append(range(start, row))
            start, grown = row, length
        longest = grown
    if start < len(lengths):
        plans.append(range(start, len(lengths)))
    return plans
