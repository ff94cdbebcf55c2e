"""Fast triage: a verdict and a score per task from one read of the model, no reasoning.

GuardReasoner ends every output with the same block::

    ---

    Answers:
    Request: harmful
    Completion: compliance
    Response: harmful

Fast triage feeds the input followed directly by the opening of that block and, at each
``Request:`` / ``Completion:`` / ``Response:``, reads the logits of the label words' first
tokens. The softmax over the two labels is the task's score, the higher one is forced as the
answer, and the next line follows from there, exactly as if the model had written it. The
reasoning is skipped, which is what makes it fast, and what costs accuracy: the cascade
(guardcli.core.guard) sends uncertain scores on to full reasoning.

A prompt-only sample (no response) is answered ``Completion: None`` / ``Response: None``
without asking the model, as GuardReasoner itself answers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from guardcli.core import tasks
from guardcli.core.engine import Choice, Choices
from guardcli.core.records import Label, ParseStatus, Scores, Verdict
from guardcli.core.tokenizer import TextCodec

# What the released models write between the reasoning and the labels (the teacher traces
# use "---\n\nAnswers: \n" in most outputs); the trailing space is theirs.
ANSWERS_HEAD = "---\n\nAnswers: \n"


@dataclass(frozen=True)
class AnswerLine:
    """One line of the forced Answers block: a task of guardcli.core.tasks as triage reads it."""

    name: str  # the Verdict field
    score: str  # the Scores field: the probability of options[0]
    lead: str  # text appended before the label is read
    options: tuple[Label, Label]  # the flagging label first: its probability is the score


TASKS = tuple(
    AnswerLine(task.field, task.score, ("\n" if i else "") + task.answer + ":", task.labels)
    for i, task in enumerate(tasks.TASKS)
)


@dataclass(frozen=True)
class Thresholds:
    """The score at or above which each task's flagging label is forced, per Scores field.

    0.5 is the arg-max, what an uncalibrated bundle gets. A calibrated bundle records its own
    cuts (``calibration.thresholds`` in guardcli.json, fitted on a validation split by
    export.eval.calibrate) because a small model's label probabilities are biased: nano v1 put
    P(harmful) above 0.5 for almost every request.
    """

    request: float = 0.5
    refusal: float = 0.5
    response: float = 0.5

    @classmethod
    def from_calibration(cls, calibration: Mapping[str, Any] | None) -> Thresholds:
        found = (calibration or {}).get("thresholds") or {}
        values = {}
        for f in fields(cls):
            value = found.get(f.name, f.default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"calibration threshold {f.name}={value!r} is not in (0, 1)")
            values[f.name] = float(value)
        return cls(**values)


class Triage:
    """The forced-answer token plan for one tokenizer, built once."""

    def __init__(self, codec: TextCodec, thresholds: Thresholds | None = None) -> None:
        thresholds = thresholds or Thresholds()
        self._choices: list[Choice] = []
        for number, task in enumerate(TASKS):
            lead = codec.pieces((ANSWERS_HEAD if number == 0 else "") + task.lead)
            options = [codec.pieces(" " + label.value) for label in task.options]
            # Tokens both labels start with (a lone " " in some vocabularies) are part of the
            # lead: the choice is made at the first token where they differ.
            while all(len(o) > 1 for o in options) and len({o[0] for o in options}) == 1:
                lead.append(options[0][0])
                options = [o[1:] for o in options]
            cut = getattr(thresholds, task.score)
            self._choices.append(Choice(tuple(lead), tuple(tuple(o) for o in options), cut))

    def choices(self, has_response: bool) -> list[Choice]:
        return self._choices if has_response else self._choices[:1]

    def verdict(self, chosen: Choices, has_response: bool) -> Verdict:
        """The Verdict the forced Answers block says, with ``raw`` that block's text."""
        labels: dict[str, Label] = {}
        scores: dict[str, float] = {}
        for task, pick in zip(TASKS, chosen.picks, strict=False):
            labels[task.name] = task.options[pick.index]
            scores[task.score] = pick.probs[0]
        if not has_response:
            for spec in tasks.TASKS:
                if spec.judges_response:
                    labels[spec.field] = Label.NONE
        lines = (f"{task.lead.strip()} {_written(labels[task.name])}" for task in TASKS)
        return Verdict(
            **labels,
            status=ParseStatus.OK,
            raw=ANSWERS_HEAD + "\n".join(lines),
            scores=Scores(**scores),
        )


def _written(label: Label) -> str:
    """A label as GuardReasoner writes it ("None" is capitalised, the others are not)."""
    return "None" if label is Label.NONE else label.value


def uncertain(scores: Scores | None, band: tuple[float, float]) -> bool:
    """A harm score inside the band [low, high]: the fast answer is not trusted alone."""
    if scores is None:
        return True
    low, high = band
    return any(low <= s <= high for s in (scores.request, scores.response) if s is not None)
