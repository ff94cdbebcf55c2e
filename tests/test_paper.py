"""The paper's reference rows: each published average must follow from its own row, which
catches a transposed or mistyped number in the transcription."""

from __future__ import annotations

import pytest

from guardcli.core.tasks import Task
from guardcli.eval import paper
from guardcli.eval.benchmarks import benchmark_of


@pytest.mark.parametrize("model", paper.MODELS)
@pytest.mark.parametrize("task", list(Task))
def test_each_published_average_follows_from_its_row(model, task):
    values = [paper.f1(model, task, name) for name in paper.BENCHMARKS[task]]
    sizes = paper.PAPER_SIZES[task]
    recomputed = sum(v * n for v, n in zip(values, sizes, strict=True)) / sum(sizes)
    assert round(recomputed, 2) == pytest.approx(paper.average(model, task), abs=0.006)


def test_benchmark_names_are_guardclis():
    for task, names in paper.BENCHMARKS.items():
        for name in names:
            found = benchmark_of(name if name != "WildGuardTest" else f"{name}{task.value}")
            assert found is not None and found.name == name


def test_lookups():
    assert paper.f1("guardreasoner-1b", Task.PROMPT, "HarmBenchPrompt") == 96.31
    assert paper.f1("GuardReasoner-1B", Task.PROMPT, "MyChats") is None
    assert paper.canonical("wildguard-7b") == "WildGuard-7B" and paper.canonical("x") is None
