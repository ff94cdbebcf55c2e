"""Scored benchmarks -> a terminal table, Markdown for docs, or JSON for machines.

All three show the same numbers: the table and the Markdown are built from one list of cells,
and JSON carries the same values unrounded (to 4 decimals). Benchmarks are listed by task and
then in the paper's column order, each task closed by its weighted average, so a table reads
like the paper's. File and benchmark names are user data: they reach the terminal as plain
text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guardcli.core.tasks import Task
from guardcli.eval import paper
from guardcli.eval.scoring import BenchmarkScore, Mode, TaskAverage
from guardcli.io.sanitize import clean_terminal

_TASKS = tuple(Task)  # the paper's order: prompt, response, refusal
CAPTIONS = {
    Mode.HONEST: "honest: every item counts once; an output without a label is a wrong answer",
    Mode.PAPER: "paper-compat: evaluate.py's rules - last 300 characters only; an output without "
    "a label counts twice as wrong, or not at all when the gold label is harmful",
}


def ordered(results: Sequence[BenchmarkScore]) -> list[BenchmarkScore]:
    """By task, then in the paper's column order; other benchmarks after, as given."""

    def key(pair: tuple[int, BenchmarkScore]) -> tuple[int, int, int]:
        index, result = pair
        names = paper.BENCHMARKS[result.task]
        column = names.index(result.name) if result.name in names else len(names)
        return _TASKS.index(result.task), column, index

    return [result for _, result in sorted(enumerate(results), key=key)]


def _pct(value: float) -> float:
    return round(100 * value, 4)


def to_json(
    results: Sequence[BenchmarkScore],
    averages: Sequence[TaskAverage],
    *,
    mode: Mode,
    reference: str | None = None,
) -> dict[str, Any]:
    benchmarks = []
    for r in ordered(results):
        s = r.scores
        row: dict[str, Any] = {
            "benchmark": r.name,
            "task": r.task.value,
            "path": r.path,
            "items": r.items,
            "weight": r.weight,
            "f1": _pct(s.f1),
            "precision": _pct(s.precision),
            "recall": _pct(s.recall),
            "confusion": {"tp": s.tp, "fp": s.fp, "tn": s.tn, "fn": s.fn},
            "unparsed": r.unparsed,
            "unparsed_rate": _pct(r.unparsed_rate),
            "dropped": r.dropped,
            "skipped": r.skipped,
            "mean_output_tokens": _round(r.mean_output_tokens, 1),
            "mean_latency_s": _round(r.mean_latency_s, 3),
            "auc": _round(r.auc, 4),
        }
        if reference:
            row["paper_f1"] = paper.f1(reference, r.task, r.name)
        benchmarks.append(row)
    tasks = []
    for a in averages:
        row = {
            "task": a.task.value,
            "benchmarks": a.benchmarks,
            "items": a.items,
            "weighted_f1": _pct(a.f1),
        }
        if reference:
            row["paper_weighted_f1"] = _paper_average(reference, a.task, results)
        tasks.append(row)
    return {"mode": mode.value, "reference": reference, "benchmarks": benchmarks, "tasks": tasks}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _paper_average(reference: str, task: Task, results: Sequence[BenchmarkScore]) -> float | None:
    """The paper's average, only when this run covers the same benchmarks (else it would
    compare averages over different sets)."""
    names = {r.name for r in results if r.task is task}
    return paper.average(reference, task) if names == set(paper.BENCHMARKS[task]) else None


@dataclass(frozen=True)
class Row:
    task: Task
    average: bool  # a task's weighted-average row
    cells: tuple[str, ...]


def cells(
    results: Sequence[BenchmarkScore],
    averages: Sequence[TaskAverage],
    *,
    mode: Mode,
    reference: str | None = None,
) -> tuple[list[str], list[Row]]:
    """(header, rows) of the table; a weighted-average row closes each task."""
    header = ["benchmark", "items", "F1", "precision", "recall", "TP/FP/TN/FN", "unparsed"]
    header += (["dropped"] if mode is Mode.PAPER else []) + ["tokens", "latency"]
    with_auc = any(r.auc is not None for r in results)
    header += ["AUC"] if with_auc else []
    if reference:
        header += ["paper", "delta"]
    rows: list[Row] = []
    by_task = {a.task: a for a in averages}
    listed = ordered(results)
    for task in _TASKS:
        group = [r for r in listed if r.task is task]
        for r in group:
            s = r.scores
            row = [r.name, str(r.items), *_f(s.f1, s.precision, s.recall)]
            row.append(f"{s.tp}/{s.fp}/{s.tn}/{s.fn}")
            row.append(f"{r.unparsed} ({100 * r.unparsed_rate:.1f}%)")
            if mode is Mode.PAPER:
                row.append(str(r.dropped))
            row.append("-" if r.mean_output_tokens is None else f"{r.mean_output_tokens:.0f}")
            row.append("-" if r.mean_latency_s is None else f"{r.mean_latency_s:.2f}s")
            if with_auc:
                row.append("-" if r.auc is None else f"{r.auc:.3f}")
            if reference:
                row += _versus(100 * s.f1, paper.f1(reference, task, r.name))
            rows.append(Row(task, False, tuple(row)))
        average = by_task.get(task)
        if average is not None and group:
            row = [f"{task} weighted avg", str(average.items), f"{100 * average.f1:.2f}"]
            row += [""] * (len(header) - len(row) - (2 if reference else 0))
            if reference:
                row += _versus(100 * average.f1, _paper_average(reference, task, results))
            rows.append(Row(task, True, tuple(row)))
    return header, rows


def _f(*values: float) -> list[str]:
    return [f"{100 * v:.2f}" for v in values]


def _versus(ours: float, published: float | None) -> list[str]:
    if published is None:
        return ["-", "-"]
    return [f"{published:.2f}", f"{round(ours, 2) - published:+.2f}"]


def markdown(
    results: Sequence[BenchmarkScore],
    averages: Sequence[TaskAverage],
    *,
    mode: Mode,
    reference: str | None = None,
) -> str:
    header, rows = cells(results, averages, mode=mode, reference=reference)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        shown = [f"**{c}**" if row.average and c else c for c in row.cells]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in shown) + " |")
    return "\n".join(lines) + f"\n\n_{CAPTIONS[mode]}_\n"


def table(
    results: Sequence[BenchmarkScore],
    averages: Sequence[TaskAverage],
    *,
    mode: Mode,
    reference: str | None = None,
) -> Any:
    """A rich Table (rich is imported here, not at module import)."""
    from rich.table import Table
    from rich.text import Text

    header, rows = cells(results, averages, mode=mode, reference=reference)
    out = Table(caption=CAPTIONS[mode], highlight=False, expand=False)
    for name in header:
        out.add_column(name, justify="left" if name == "benchmark" else "right", no_wrap=True)
    for index, row in enumerate(rows):
        if index and row.task is not rows[index - 1].task:
            out.add_section()
        style = "bold" if row.average else None
        # Benchmark names come from file names: cleaned, and never read as markup.
        out.add_row(*(Text(clean_terminal(cell)) for cell in row.cells), style=style)
    return out
