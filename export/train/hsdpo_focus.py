"""HS-DPO step 1's choice of inputs: sample k outputs only where the policy is unsure.

A pair needs an input whose k samples disagree with each other; on a CPU each sample costs
seconds, so sampling inputs the model always gets right (or always wrong) buys nothing. Fast
mode reads the policy's P(harmful request) for every training prompt in one prefill each
(minutes for thousands), and the inputs whose score lies nearest the bundle's calibrated cut,
in log-odds, are the ones most likely to come back mixed. Half of ``--focus`` comes from each
request label, so the harmless side (the one reason mode over-flags) is not starved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from export.train.mining import SampleRow
from export.train.runlog import say


def nearest_cut(rows: Sequence[SampleRow], scores: Sequence[float], cut: float, n: int) -> list:
    """The ``n`` rows nearest ``cut``, shared equally between request labels (a label short of
    its share leaves the rest to the others), in file order."""
    if n >= len(rows):
        return list(rows)
    groups: dict[object, list[tuple[float, int]]] = {}
    for index, (row, score) in enumerate(zip(rows, scores, strict=True)):
        distance = abs(_log_odds(score) - _log_odds(cut))
        groups.setdefault(row.gold.request, []).append((distance, index))
    chosen: list[int] = []
    order = sorted(groups.values(), key=len)  # the smallest group first: its shortfall moves on
    for position, group in enumerate(order):
        share = (n - len(chosen)) // (len(order) - position)
        chosen += [index for _, index in sorted(group)[:share]]
    return [rows[i] for i in sorted(chosen)]


def _log_odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def fast_scores(model: str, rows: Sequence[SampleRow]) -> tuple[list[float], float]:
    """Each row's fast-mode request score from the bundle ``model``, and its request cut."""
    from export.eval.calibrate import fast_guard
    from guardcli.core.prompt import split_input
    from guardcli.core.records import Sample
    from guardcli.errors import UsageError

    guard = fast_guard(Path(model), origin="--focus-model")
    scores = []
    for number, row in enumerate(rows, 1):
        parts = split_input(row.prompt)
        if parts is None:
            raise UsageError(f"--focus: input {row.input_id} is not a GuardReasoner input")
        verdict = guard.triage(Sample(row.input_id, parts[0], parts[1])).verdict
        scores.append(verdict.scores.request)
        if number % 500 == 0:
            say(f"focus: scored {number}/{len(rows)} inputs in fast mode")
    return scores, guard.thresholds.request
