"""Rendering: the paper's order, one set of numbers in every format, user names kept inert."""

from __future__ import annotations

from rich.console import Console

from guardcli.core.tasks import Task
from guardcli.eval import paper
from guardcli.eval.metrics import Confusion
from guardcli.eval.report import cells, markdown, ordered, table, to_json
from guardcli.eval.scoring import BenchmarkScore, Mode, task_averages


def result(name: str, task: Task, tp=8, fp=1, tn=9, fn=2, **extra) -> BenchmarkScore:
    scores = Confusion(task=task, tp=tp, fp=fp, tn=tn, fn=fn)
    fields = dict(
        name=name,
        path=f"{name}.jsonl",
        task=task,
        mode=Mode.HONEST,
        scores=scores,
        items=scores.n,
        weight=scores.n,
        unparsed=0,
        dropped=0,
        skipped=0,
        mean_output_tokens=None,
        mean_latency_s=None,
    )
    return BenchmarkScore(**{**fields, **extra})


def test_rows_follow_the_papers_order_by_task():
    given = [
        result("XSTestResponseRefusal", Task.REFUSAL),
        result("mine", Task.PROMPT),
        result("SimpleSafetyTests", Task.PROMPT),
        result("HarmBenchPrompt", Task.PROMPT),
        result("HarmBenchResponse", Task.RESPONSE),
    ]
    names = [r.name for r in ordered(given)]
    assert names == [
        "HarmBenchPrompt",
        "SimpleSafetyTests",
        "mine",
        "HarmBenchResponse",
        "XSTestResponseRefusal",
    ]
    _, rows = cells(given, task_averages(given), mode=Mode.HONEST)
    assert [(r.task, r.average) for r in rows if r.average] == [
        (Task.PROMPT, True),
        (Task.RESPONSE, True),
        (Task.REFUSAL, True),
    ]
    assert rows[3].cells[:3] == ("prompt weighted avg", "60", "84.21")


def test_the_papers_average_is_compared_only_over_the_same_benchmarks():
    some = [result("HarmBenchPrompt", Task.PROMPT)]
    every = [result(name, Task.PROMPT) for name in paper.BENCHMARKS[Task.PROMPT]]
    for given, want in ((some, None), (every, 81.09)):
        data = to_json(given, task_averages(given), mode=Mode.HONEST, reference="GuardReasoner-8B")
        assert data["tasks"][0]["paper_weighted_f1"] == want
    _, rows = cells(every, task_averages(every), mode=Mode.HONEST, reference="GuardReasoner-8B")
    assert rows[-1].cells[-2:] == ("81.09", f"{84.21 - 81.09:+.2f}")


def test_paper_mode_adds_the_dropped_column():
    given = [result("HarmBenchPrompt", Task.PROMPT, mode=Mode.PAPER, dropped=3)]
    header, rows = cells(given, task_averages(given), mode=Mode.PAPER)
    assert rows[0].cells[header.index("dropped")] == "3"
    assert "dropped" not in cells(given, task_averages(given), mode=Mode.HONEST)[0]


def test_names_from_files_stay_plain_text():
    given = [result("a|b[bold]x[/bold]", Task.PROMPT)]
    averages = task_averages(given)
    assert "| a\\|b[bold]x[/bold] |" in markdown(given, averages, mode=Mode.HONEST)
    console = Console(width=200, record=True, color_system=None)
    console.print(table(given, averages, mode=Mode.HONEST))
    assert "a|b[bold]x[/bold]" in console.export_text()
