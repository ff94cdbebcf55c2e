"""The one judging path: a labelled benchmark file's items through Guard, as Judged items.

``guardcli eval`` and the training pipeline's evaluation stage (export.eval.evaluate) both read a
file with ``labelled_file``, judge it with ``judge_file`` and score the result with
guardcli.eval.scoring, so a number in a model card and a number a user measures come from the
same code. Every item is judged through ``Guard`` (the runtime's own path: prompt, engine,
parser).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from guardcli.core.guard import Guard
from guardcli.core.records import Result, Skip
from guardcli.core.tasks import Task
from guardcli.eval.benchmarks import benchmark_of, task_of
from guardcli.eval.labelled import LabelledSample, checked_path, load_labelled
from guardcli.eval.scoring import Judged


def pick(items: Sequence[LabelledSample], limit: int | None, seed: int = 0) -> list:
    """At most ``limit`` items, a seeded random subset kept in file order.

    Benchmark files are often sorted by label or source, so "the first N" would be a biased
    slice; a seeded subset is representative and the same on every run.
    """
    if limit is None or limit >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


@dataclass(frozen=True)
class LabelledFile:
    """A benchmark file's items that carry a gold label for the task it scores."""

    path: str
    name: str  # the benchmark's name, or the file's stem
    task: Task
    items: tuple[LabelledSample, ...]  # after ``limit``
    skips: tuple[Skip, ...]  # records that could not be read
    unlabelled: int  # readable records without a gold label for the task


def labelled_file(
    path: str | Path, *, task: str | Task | None = None, limit: int | None = None, seed: int = 0
) -> LabelledFile:
    """Read and check a whole file before any model time is spent on it."""
    the_task = task_of(checked_path(path), task)
    items: list[LabelledSample] = []
    skips: list[Skip] = []
    unlabelled = 0
    for item in load_labelled(path, task=the_task):
        if isinstance(item, Skip):
            skips.append(item)
        elif getattr(item.gold, the_task.field) not in the_task.spec.labels:
            unlabelled += 1
        else:
            items.append(item)
    found = benchmark_of(path)
    return LabelledFile(
        path=str(path),
        name=found.name if found else Path(path).stem,
        task=the_task,
        items=tuple(pick(items, limit, seed)),
        skips=tuple(skips),
        unlabelled=unlabelled,
    )


def judge_file(
    guard: Guard,
    labelled: LabelledFile,
    *,
    done: Mapping[str, dict] | None = None,
    on_result: Callable[[LabelledSample, Result], None] | None = None,
) -> list[Judged]:
    """Every item of ``labelled`` as a Judged, ready for either scoring mode.

    Items whose id is in ``done`` (records of a resumed predictions file) are not run again:
    their recorded output is used. Only items of this run's selection count, so a resumed file
    written with another ``--limit`` cannot change what is scored.
    """
    from guardcli.eval.predictions import judged_of

    done = done or {}
    task = labelled.task
    judged = [
        judged_of(done[item.sample.id], item.sample.source, task)
        for item in labelled.items
        if item.sample.id in done
    ]
    todo = [item for item in labelled.items if item.sample.id not in done]
    for item, result in zip(todo, guard.run(item.sample for item in todo), strict=True):
        generation = result.generation
        judged.append(
            Judged(
                where=item.sample.source,
                label=getattr(item.gold, task.field).value,
                gold=getattr(item.gold, task.field),
                predict=result.verdict.raw,
                output_tokens=generation.output_tokens if generation else None,
                latency_s=generation.latency_s if generation else None,
                score=_score(result, task),
            )
        )
        if on_result is not None:
            on_result(item, result)
    return judged


def _score(result, task: Task) -> float | None:  # noqa: ANN001 - Result
    scores = result.verdict.scores
    return None if scores is None else getattr(scores, task.spec.score)
