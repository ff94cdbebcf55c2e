"""A bar chart PNG of this run's F1 beside the paper's reference rows.

matplotlib is an optional extra (``pip install 'guardcli[plot]'``), never a runtime dependency
of the guard: ``require`` is called before any model time is spent, so a missing matplotlib
fails the command at once with the one line that fixes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from guardcli.errors import UsageError
from guardcli.eval import paper
from guardcli.eval.report import ordered
from guardcli.eval.scoring import BenchmarkScore, Mode
from guardcli.io.sink import cannot_write

INSTALL = "pip install 'guardcli[plot]'"


def require() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--chart needs matplotlib", hint=INSTALL) from None


def write_chart(
    results: Sequence[BenchmarkScore],
    path: Path,
    *,
    mode: Mode,
    label: str = "this run",
    references: Sequence[str] = paper.MODELS,
) -> Path:
    """Grouped bars, one group per scored benchmark: ``label`` first, then each reference row
    that has a number for that benchmark."""
    require()
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    import matplotlib.pyplot as plt

    listed = ordered(results)
    groups = [f"{r.name}\n({r.task.value})" for r in listed]
    series = [(label, [100 * r.f1 for r in listed])]
    for model in references:
        values = [paper.f1(model, r.task, r.name) for r in listed]
        if any(v is not None for v in values):
            series.append((model, [float("nan") if v is None else v for v in values]))
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.9 * len(groups) + 1), 4.5))
    try:
        for index, (name, values) in enumerate(series):
            offsets = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
            axes.bar(offsets, values, width, label=name)
        axes.set_xticks(range(len(groups)), groups, fontsize=8)
        axes.set_ylabel("F1 (%)")
        axes.set_ylim(0, 105)
        axes.set_title(f"F1 by benchmark ({mode.value} scoring) vs. the GuardReasoner paper")
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        try:
            figure.savefig(path, format="png", dpi=120, bbox_inches="tight")
        except OSError as exc:
            raise cannot_write(path, exc, hint="choose another --chart") from None
    finally:
        plt.close(figure)
    return path
