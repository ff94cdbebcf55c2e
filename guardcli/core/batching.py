"""How many inputs run together: a budget of padded tokens per batch, not just a row count.

A batch is right-padded to its longest row, and its prefill computes every padded position:
the logits alone are rows x longest x vocabulary floats (nano: 196 KB a token, a 1B Llama
512 KB), beside the attention scores and the KV cache. So one 8,000-token input among seven
short ones costs eight long rows: that is how a default batch of 8 went past 10 GB. The cost
of a batch is therefore its padded prefill,

    rows * longest input

(the generated tokens add only KV cache, a few per cent of that for the bundles guardcli
runs), and a batch closes before a row would push it over the budget. Inputs keep their order (no
sorting by length: results are written in input order, as they finish), so a long input
simply ends the batch before it and runs alone or with few others. An input whose cost alone
exceeds the budget still runs, alone; the long-input policy (guardcli.core.windows) keeps
each input within the context, which bounds that case too.
"""

from __future__ import annotations

from collections.abc import Sequence

# A default batch of 8 typical samples (a few hundred tokens each) fits many times over; an
# input near nano's 7,168-token limit runs alone. docs/security.md ("Memory") has the peaks.
DEFAULT_BATCH_TOKENS = 6144


def batch_cost(lengths: Sequence[int]) -> int:
    """Padded prefill tokens of a batch of inputs of these lengths."""
    return len(lengths) * max(lengths, default=0)


def plan_batches(lengths: Sequence[int], *, max_rows: int, max_tokens: int) -> list[range]:
    """Consecutive runs of rows (in order) each within ``max_rows`` and ``max_tokens``;
    a row too costly on its own gets a batch of its own."""
    if max_rows < 1 or max_tokens < 1:
        raise ValueError("a batch needs room for at least one row and one token")
    plans: list[range] = []
    start, longest = 0, 0
    for row, length in enumerate(lengths):
        grown = max(longest, length)
        rows = row - start + 1
        if row > start and (rows > max_rows or rows * grown > max_tokens):
            plans.append(range(start, row))
            start, grown = row, length
        longest = grown
    if start < len(lengths):
        plans.append(range(start, len(lengths)))
    return plans


def group_batches(lengths: Sequence[int], *, max_rows: int, max_tokens: int) -> list[list[int]]:
    """Every row of a look-ahead window exactly once, in batches of similar length, each
    within ``max_rows`` and ``max_tokens`` (a row too costly alone gets its own batch).

    The rows are sorted by length and cut as ``plan_batches`` cuts; the batches then run in
    the order of their earliest row, so the first inputs are judged first and the caller can
    emit results in input order as soon as each prefix is complete. Each batch lists its
    rows in input order."""
    order = sorted(range(len(lengths)), key=lambda row: (lengths[row], row))
    plans = plan_batches([lengths[row] for row in order], max_rows=max_rows, max_tokens=max_tokens)
    groups = [sorted(order[i] for i in rows) for rows in plans]
    return sorted(groups, key=lambda group: group[0])


def plan_generations(
    lengths: Sequence[int], *, max_rows: int, max_tokens: int, pooling: bool, grouping: bool
) -> list[tuple[list[int], bool]]:
    """The generations of these inputs, each with whether it runs through a slot pool
    (guardcli.core.slots). With ``pooling``, every input whose share of the token budget
    (``max_tokens / max_rows``) fits goes into one pool, in input order: a pool reads each
    input alone and holds at most ``max_rows`` of them. The rest (all of them without a pool)
    run in groups within the budgets (grouped by length with ``grouping``, else consecutive
    runs in input order), each generated together: pooled too when there is a pool."""
    pooled: list[int] = []
    if pooling and max_rows > 1:
        pooled = [row for row, length in enumerate(lengths) if length * max_rows <= max_tokens]
    taken = set(pooled)
    rest = [row for row in range(len(lengths)) if row not in taken]
    rest_lengths = [lengths[row] for row in rest]
    budget = {"max_rows": max_rows, "max_tokens": max_tokens}
    if grouping:
        groups = group_batches(rest_lengths, **budget)
    else:
        groups = [list(batch) for batch in plan_batches(rest_lengths, **budget)]
    plans = [([rest[i] for i in group], pooling) for group in groups]
    return ([(pooled, True)] if pooled else []) + plans
