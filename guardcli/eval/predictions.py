"""Predictions files: GuardReasoner's generated_predictions.jsonl format, found, read, written.

One JSON object per line: ``prompt`` (the full model input), ``label`` (the gold label: a word
or an ``Answers:`` block) and ``predict`` (everything the model wrote). Files guardcli writes
add ``id`` (what ``--resume`` skips), ``task``, ``output_tokens``, ``latency_ms``, ``finish``
and ``truncated``; readers of the original format ignore them, and ``guardcli eval
--predictions`` reports tokens and latency when they are there.

A folder is searched one level deep, for the layouts that exist in the wild::

    DIR/<Benchmark>/generated_predictions.jsonl   the GuardReasoner repository (data/test/1B)
    DIR/<Benchmark>.jsonl                         ../shared teacher files; guardcli eval --output

The benchmark (and so the task) comes from the file or folder name (guardcli.eval.labelled.
benchmark_of); a file named after no benchmark needs ``--task``, or a ``task`` in its records.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from guardcli.core.prompt import build_input
from guardcli.core.records import Result, Skip
from guardcli.core.tasks import NAMES, Task
from guardcli.errors import InputError, UsageError
from guardcli.eval.benchmarks import benchmark_of, parse_task
from guardcli.eval.labelled import LabelledSample, read_prediction
from guardcli.eval.scoring import Judged
from guardcli.io.inputs import read_objects
from guardcli.io.outputs import generation_fields, json_line, score_fields
from guardcli.io.sink import open_output

PREDICTIONS_NAME = "generated_predictions.jsonl"


@dataclass(frozen=True)
class PredictionsFile:
    path: str
    name: str  # the benchmark's name, else the file's (or its folder's) name
    task: Task
    judged: tuple[Judged, ...]
    skips: tuple[Skip, ...]  # lines that are not JSON objects


def benchmark_name(path: str | os.PathLike[str]) -> str:
    found = benchmark_of(path)
    if found is not None:
        return found.name
    where = Path(path)
    return where.parent.name if where.name == PREDICTIONS_NAME else where.name.split(".")[0]


def output_name(name: str, task: Task) -> str:
    """The file ``guardcli eval --output DIR`` writes for a benchmark: its own name, so the
    folder reads back like a teacher folder. WildGuardTest scores all three tasks, so its
    files carry the task (``WildGuardTestPrompt.jsonl``, a name benchmark_of knows)."""
    if name == "WildGuardTest":
        return f"{name}{task.value.title()}.jsonl"
    return f"{name}.jsonl"


def find(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Every predictions file named or found in the folders named, in order, each once."""
    found: list[str] = []
    for path in paths:
        name = os.fspath(path)
        if os.path.isfile(name):
            found.append(name)
            continue
        if not os.path.isdir(name):
            raise InputError(f"{name}: no such file or folder", hint="check the --predictions path")
        folder = Path(name)
        files = sorted(folder.glob("*.jsonl")) + sorted(folder.glob(f"*/{PREDICTIONS_NAME}"))
        if not files:
            raise UsageError(
                f"{name}: no predictions files",
                hint=f"expected <Benchmark>.jsonl or <Benchmark>/{PREDICTIONS_NAME} in it",
            )
        found += [str(file) for file in files]
    return list(dict.fromkeys(found))


def read(path: str, task: str | Task | None = None) -> PredictionsFile:
    """A predictions file, every record kept raw beside guardcli's reading of its gold label."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file", hint="check the path")
    objects: list[tuple[str, dict]] = []
    skips: list[Skip] = []
    for found in read_objects(path):
        (skips if isinstance(found, Skip) else objects).append(found)
    the_task = _task(path, task, objects)
    judged = tuple(judged_of(obj, where, the_task) for where, obj in objects)
    return PredictionsFile(path, benchmark_name(path), the_task, judged, tuple(skips))


def _task(path: str, task: str | Task | None, objects: list[tuple[str, dict]]) -> Task:
    if task is not None:
        return parse_task(task)
    found = benchmark_of(path)
    if found is not None:
        return found.task
    named = {obj.get("task") for _, obj in objects}
    if len(named) == 1 and (value := named.pop()) in NAMES:
        return Task(value)
    raise InputError(
        f"{path}: cannot tell which task it scores",
        hint="name it after its benchmark (e.g. HarmBenchResponse.jsonl) "
        f"or pass --task {'|'.join(NAMES)}",
    )


def judged_of(obj: dict[str, Any], where: str, task: Task) -> Judged:
    read = read_prediction(obj, where, task)
    gold = problem = None
    if isinstance(read, Skip):
        problem = read.reason
    else:
        label = getattr(read.item.gold, task.field)
        if label in task.spec.labels:
            gold = label
        else:
            problem = f"no {task} label (gold: {read.item.gold})"
    tokens = obj.get("output_tokens")
    latency = obj.get("latency_ms")
    score = obj.get(f"{task.spec.score}_score")
    return Judged(
        where=where,
        label=obj.get("label"),
        gold=gold,
        predict=obj.get("predict"),
        problem=problem,
        output_tokens=tokens if _number(tokens) else None,
        latency_s=latency / 1000 if _number(latency) else None,
        score=float(score) if _number(score) else None,
    )


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record(item: LabelledSample, result: Result, task: Task) -> dict[str, Any]:
    """The line written for one judged item (the GuardReasoner keys first)."""
    sample, generation = item.sample, result.generation
    return {
        "prompt": build_input(sample.prompt, sample.response),
        "label": getattr(item.gold, task.field).value,
        "predict": result.verdict.raw,
        "id": sample.id,
        "task": task.value,
        **generation_fields(generation),
        **score_fields(result.verdict),
    }


class PredictionsWriter:
    """Appends one flushed line per prediction, so a killed run keeps all it finished."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.stream: IO[str] = open_output(path, append=resume, newline=None)

    def write(self, line: dict[str, Any]) -> None:
        self.stream.write(json_line(line) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()
