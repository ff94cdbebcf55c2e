"""Samples with gold labels: benchmark files, labelled JSONL and model predictions.

Distillation keeps a teacher's trace only when its Answers agree with the gold labels, and
``guardcli eval`` scores a model against them, so both read labelled data through here. Three
record shapes are recognised, record by record, in ``.json`` (a list or one object) and
``.jsonl`` files::

    {"instruction", "input", "output"}    GuardReasoner benchmark / training data
    {"prompt", "label", "predict"}        GuardReasoner generated_predictions.jsonl
    {"prompt", "response", <labels>}      labelled chats (also chat "messages", like scan)

A gold ``output``/``label`` is a bare word (``harmful``, ``unharmful``, ``refusal``,
``compliance``), which scores the one task of its benchmark (``task_of`` the file name, or the
caller's ``task``), or an ``Answers:`` block, which labels up to all three tasks. In labelled
chats the labels are fields: ``request`` or ``prompt_harm_label`` (task 1), ``completion`` or
``response_refusal_label`` (task 2), ``response_label`` or ``response_harm_label`` (task 3), or
a bare ``label`` for the file's task; ``response`` is always the AI assistant's text, never a
label. ``null`` means "not labelled".

``None`` in gold data is ambiguous, so it is read by context: in task 1 it always means "not
labelled" (SafeRLHF's ``Request: None``); in tasks 2 and 3 it means "no response" (Label.NONE)
when the sample has no response, else "not labelled". Labels the data does not give stay
``None``; ``implied`` adds the one answer the format allows for prompt-only samples.

Bad records become ``Skip`` lines naming ``file:line`` (JSONL) or
``file#item`` (JSON), read with the same code and messages as ``guardcli scan``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

from guardcli.core.parse import answers_region, read_labels
from guardcli.core.prompt import split_input
from guardcli.core.records import Label, Sample, Skip, Verdict
from guardcli.core.tasks import LABEL_WORDS, TASKS, Task, by_field
from guardcli.errors import InputError
from guardcli.eval.benchmarks import parse_task, task_of
from guardcli.io.inputs import read_objects, record_sample
from guardcli.io.sanitize import one_line

# ---- labels ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gold:
    """The gold answer per task; None = the data does not label that task."""

    request: Label | None = None
    completion: Label | None = None
    response: Label | None = None

    def labelled(self) -> tuple[tuple[str, Label], ...]:
        """(task field, label) for every labelled task, in task order."""
        return tuple(
            (f.name, getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) is not None
        )

    def __str__(self) -> str:
        return ", ".join(f"{name}={label}" for name, label in self.labelled()) or "unlabelled"


@dataclass(frozen=True)
class LabelledSample:
    sample: Sample
    gold: Gold


@dataclass(frozen=True)
class Prediction:
    """One line of a predictions file: the labelled input and what the model wrote for it."""

    item: LabelledSample
    output: str


@dataclass(frozen=True)
class Mismatch:
    task: str  # the task's field: "request" | "completion" | "response"
    gold: Label
    got: Label

    def __str__(self) -> str:
        return f"{self.task}: gold {self.gold}, model {self.got}"


def mismatches(verdict: Verdict, gold: Gold) -> tuple[Mismatch, ...]:
    """Every labelled task the verdict gets wrong (an unreadable answer is wrong)."""
    return tuple(
        Mismatch(name, label, getattr(verdict, name))
        for name, label in gold.labelled()
        if getattr(verdict, name) is not label
    )


def agrees(verdict: Verdict, gold: Gold) -> bool:
    """True when every labelled task matches. Loaders never yield an all-None Gold."""
    return not mismatches(verdict, gold)


def implied(item: LabelledSample) -> LabelledSample:
    """Fill tasks 2 and 3 with ``none`` for a sample without a response.

    The GuardReasoner format has exactly one right answer there (its training data says
    ``Completion: None``/``Response: None``), but prompt-only benchmarks label only task 1; a
    trace claiming a refusal of a response that does not exist is reasoning about nothing.
    """
    if item.sample.response is not None:
        return item
    gold = item.gold
    return replace(
        item,
        gold=replace(
            gold,
            completion=gold.completion or Label.NONE,
            response=gold.response or Label.NONE,
        ),
    )


class _Bad(Exception):
    """A record-level problem: becomes a Skip with this one-line reason."""


def _bare(value: object) -> Label | None:
    if isinstance(value, str) and value.strip().lower() in LABEL_WORDS:
        return Label(value.strip().lower())
    return None


def _field_label(name: str, value: object, field: str, has_response: bool) -> Label | None:
    """One label field's value, read by the None-by-context rule in the module docstring."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"'{name}' is not a string - use a label word or null")
    word = value.strip().lower()
    if word == "none":
        return Label.NONE if by_field(field).judges_response and not has_response else None
    label = _bare(word)
    words = by_field(field).labels
    if label not in words:
        allowed = " or ".join(str(w) for w in words)
        raise _Bad(f"'{name}' is {one_line(value, 30)!r} - use {allowed} (null: not labelled)")
    if not has_response and by_field(field).judges_response:
        raise _Bad(f"'{name}' labels a response, but the sample has none - fix the record")
    return label


def _from_answers(text: str, has_response: bool) -> Gold | None:
    """Gold from an ``Answers:`` block (a gold answer or a full training trace), or None."""
    region, found = answers_region(text)
    if not found:
        return None
    read = read_labels(region)
    labels: dict[str, Label | None] = {}
    for field, label in read.items():
        if label is Label.UNKNOWN:
            labels[field] = None
        elif label is Label.NONE:
            labels[field] = (
                Label.NONE if by_field(field).judges_response and not has_response else None
            )
        else:
            labels[field] = label
    return Gold(**labels)


def _from_word(label: Label, task: Task, has_response: bool) -> Gold:
    if label not in task.spec.labels:
        raise _Bad(f"label {label} does not fit the {task} task - pass the right --task")
    if task.spec.judges_response and not has_response:
        raise _Bad(f"a {task} label, but the sample has no response - fix the record")
    return Gold(**{task.field: label})


class _FileTask:
    """The task of a file's bare labels, worked out (and failing) only if one is met."""

    def __init__(self, path: str, task: str | Task | None) -> None:
        self.path = path
        self.given = None if task is None else parse_task(task)

    def get(self) -> Task:
        return self.given or task_of(self.path)


def _gold_value(value: object, name: str, file_task: _FileTask, has_response: bool) -> Gold:
    if not isinstance(value, str):
        raise _Bad(f"'{name}' is not a string - give a label word or an Answers block")
    word = _bare(value)
    if word is not None:
        return _from_word(word, file_task.get(), has_response)
    gold = _from_answers(value, has_response)
    if gold is None:
        shown = one_line(value, 40)
        raise _Bad(f"'{name}' ({shown!r}) is neither a label word nor an Answers block")
    return gold


def _fields_gold(obj: dict, file_task: _FileTask, has_response: bool) -> Gold:
    labels: dict[str, Label | None] = {}
    for field, names in ((task.field, task.aliases) for task in TASKS):
        found = {n: _field_label(n, obj[n], field, has_response) for n in names if n in obj}
        values = set(found.values())
        if len(values) > 1:
            raise _Bad(f"{' and '.join(found)} disagree - keep one of them")
        labels[field] = values.pop() if values else None
    gold = Gold(**labels)
    if obj.get("label") is not None:
        extra = _gold_value(obj["label"], "label", file_task, has_response)
        gold = _merge(gold, extra)
    return gold


def _merge(a: Gold, b: Gold) -> Gold:
    merged = {}
    for f in fields(Gold):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is not None and y is not None and x is not y:
            raise _Bad(f"two labels for {f.name} disagree ({x}, {y}) - keep one")
        merged[f.name] = x or y
    return Gold(**merged)


# ---- records -----------------------------------------------------------------------------------


def _split(text: object, name: str, where: str) -> Sample:
    pair = split_input(text) if isinstance(text, str) else None
    if pair is None:
        raise _Bad(f"'{name}' is not a GuardReasoner input (Human user: ... AI assistant: ...)")
    sample = record_sample({"prompt": pair[0], "response": pair[1]}, where)
    if isinstance(sample, Skip):
        raise _Bad(sample.reason)
    return sample


def _prediction(obj: dict, where: str, file_task: _FileTask) -> Prediction:
    sample = _split(obj.get("prompt"), "prompt", where)
    if not isinstance(obj["predict"], str):
        raise _Bad("'predict' is not a string - fix the record")
    if obj.get("label") is None:
        raise _Bad("no 'label' - a prediction needs its gold label")
    gold = _gold_value(obj["label"], "label", file_task, sample.response is not None)
    return Prediction(_checked(sample, gold), obj["predict"])


def _labelled(obj: dict, where: str, file_task: _FileTask) -> LabelledSample:
    if "predict" in obj:
        return _prediction(obj, where, file_task).item
    if "output" in obj and "input" in obj:  # GuardReasoner benchmark / training data
        sample = _split(obj["input"], "input", where)
        gold = _gold_value(obj["output"], "output", file_task, sample.response is not None)
        return _checked(sample, gold)
    sample = record_sample(obj, where)
    if isinstance(sample, Skip):
        raise _Bad(sample.reason)
    return _checked(sample, _fields_gold(obj, file_task, sample.response is not None))


def _checked(sample: Sample, gold: Gold) -> LabelledSample:
    if not gold.labelled():
        raise _Bad(
            "no gold label (request/prompt_harm_label, completion/response_refusal_label, "
            "response_label/response_harm_label, label, output) - label the record or drop it"
        )
    return LabelledSample(sample, gold)


def checked_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a string, or a one-line InputError saying it is not there: checked before
    anything is read from the name (a typo must not read as a file that names no benchmark)."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise InputError(f"{name}: is a folder", hint=f"name its files ({name}/*.json)")
    if not os.path.isfile(name):
        raise InputError(f"{name}: no such file", hint="check the path")
    return name


def load_labelled(
    path: str | os.PathLike[str], *, task: str | Task | None = None
) -> Iterator[LabelledSample | Skip]:
    """Every labelled sample in a .json/.jsonl file, and a Skip for every bad record.

    Raises InputError at once for a missing file, and when a bare label is met in a file
    whose name names no benchmark and no ``task`` was given.
    """
    name = checked_path(path)
    file_task = _FileTask(name, task)
    return _records(name, lambda obj, where: _labelled(obj, where, file_task))


def load_predictions(
    path: str | os.PathLike[str], *, task: str | Task | None = None
) -> Iterator[Prediction | Skip]:
    """Every prediction in a generated_predictions-style JSONL file ({prompt, label, predict})."""
    name = checked_path(path)
    file_task = _FileTask(name, task)
    return _records(name, lambda obj, where: _prediction_record(obj, where, file_task))


def read_prediction(obj: dict, where: str, task: str | Task) -> Prediction | Skip:
    """One predictions record already read from a file, or a Skip saying what is wrong with it.

    For readers that need the raw record as well (``guardcli eval --paper-compat`` scores the
    raw ``label`` and ``predict`` even where guardcli would refuse the record).
    """
    try:
        return _prediction_record(obj, where, _FileTask(where, task))
    except _Bad as exc:
        return Skip(where, str(exc))


def _prediction_record(obj: dict, where: str, file_task: _FileTask) -> Prediction:
    if "predict" not in obj:
        raise _Bad("no 'predict' field - not a predictions record ({prompt, label, predict})")
    return _prediction(obj, where, file_task)


def _records(name: str, read) -> Iterator:  # noqa: ANN001 - Callable[[dict, str], T]
    for found in read_objects(name):
        if isinstance(found, Skip):
            yield found
            continue
        where, obj = found
        try:
            yield read(obj, where)
        except _Bad as exc:
            yield Skip(where, str(exc))


def load_all(
    paths: list[str] | list[Path], *, task: str | Task | None = None
) -> tuple[list[LabelledSample], list[Skip]]:
    """Every file's samples, and every skip, in order (a convenience for small tools)."""
    items: list[LabelledSample] = []
    skips: list[Skip] = []
    for path in paths:
        for found in load_labelled(path, task=task):
            (skips if isinstance(found, Skip) else items).append(found)
    return items, skips
