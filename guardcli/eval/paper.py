"""The GuardReasoner paper's published F1 (%), for comparison rows and charts.

From arXiv 2501.18492, the F1 tables of the three tasks (prompt harmfulness, response
harmfulness, refusal detection), for the released GuardReasoner models and the baselines a
reader most often compares with. Benchmarks use guardcli.eval.labelled's names (the paper's
"HarmBench" column is HarmBenchPrompt or HarmBenchResponse by task, its "XSTestReponse" is
XSTestReponseHarmful or XSTestResponseRefusal).

``AVERAGE`` is each row's published sample-weighted average over all of the task's benchmarks,
with ``PAPER_SIZES`` as weights. Those are the paper's stated sizes: it weighs
XSTestResponseRefusal as 499 items, the released file has 449 (tests/test_paper.py recomputes
every average from the table to check the transcription).
"""

from __future__ import annotations

from guardcli.core.tasks import Task

_P, _R, _F = Task.PROMPT, Task.RESPONSE, Task.REFUSAL

# Column order of the paper's tables.
BENCHMARKS: dict[Task, tuple[str, ...]] = {
    _P: (
        "ToxicChat",
        "HarmBenchPrompt",
        "OpenAIModeration",
        "AegisSafetyTest",
        "SimpleSafetyTests",
        "WildGuardTest",
    ),
    _R: ("HarmBenchResponse", "SafeRLHF", "BeaverTails", "XSTestReponseHarmful", "WildGuardTest"),
    _F: ("XSTestResponseRefusal", "WildGuardTest"),
}

PAPER_SIZES: dict[Task, tuple[int, ...]] = {
    _P: (2853, 239, 1680, 359, 100, 1756),
    _R: (602, 2000, 3021, 446, 1768),
    _F: (499, 1777),
}

# model -> task -> (per-benchmark F1 in BENCHMARKS order, published weighted average)
_TABLE: dict[str, dict[Task, tuple[tuple[float, ...], float]]] = {
    "GuardReasoner-1B": {
        _P: ((72.43, 96.31, 70.06, 89.34, 98.99, 87.37), 77.68),
        _R: ((84.75, 68.39, 85.84, 90.12, 74.81), 79.06),
        _F: ((91.34, 87.71), 88.51),
    },
    "GuardReasoner-3B": {
        _P: ((78.20, 89.10, 71.87, 91.39, 100.00, 89.01), 80.76),
        _R: ((85.66, 69.02, 86.72, 91.36, 79.70), 80.80),
        _F: ((80.31, 87.54), 85.95),
    },
    "GuardReasoner-8B": {
        _P: ((78.79, 91.86, 72.00, 90.18, 99.50, 89.17), 81.09),
        _R: ((85.47, 70.04, 87.60, 94.34, 78.20), 81.22),
        _F: ((93.68, 88.91), 89.96),
    },
    "LlamaGuard3-8B": {
        _P: ((53.12, 98.94, 79.69, 71.39, 99.50, 76.18), 68.47),
        _R: ((85.07, 44.36, 67.84, 87.67, 70.80), 64.97),
        _F: ((63.55, 54.29), 56.32),
    },
    "WildGuard-7B": {
        _P: ((70.80, 98.90, 72.10, 89.40, 99.50, 88.90), 77.99),
        _R: ((86.30, 64.20, 84.40, 94.70, 75.40), 77.95),
        _F: ((94.70, 88.60), 89.94),
    },
    "GPT-4o+CoT": {
        _P: ((73.43, 81.98, 76.78, 88.24, 98.99, 82.75), 78.00),
        _R: ((65.99, 65.10, 82.26, 86.90, 71.43), 74.45),
        _F: ((83.76, 83.31), 83.41),
    },
}

MODELS: tuple[str, ...] = tuple(_TABLE)


def _model(name: str) -> str:
    """A model name, matched case-insensitively (``guardreasoner-1b`` is fine)."""
    for model in MODELS:
        if model.lower() == name.lower():
            return model
    raise KeyError(name)


def f1(model: str, task: Task, benchmark: str) -> float | None:
    """The published F1 of ``model`` on one benchmark, or None if the paper has none."""
    values, _ = _TABLE[_model(model)][task]
    names = BENCHMARKS[task]
    return values[names.index(benchmark)] if benchmark in names else None


def average(model: str, task: Task) -> float:
    return _TABLE[_model(model)][task][1]


def canonical(name: str) -> str | None:
    """The table's spelling of a model name, or None if it has no such row."""
    try:
        return _model(name)
    except KeyError:
        return None
