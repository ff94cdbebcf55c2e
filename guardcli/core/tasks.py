"""The three GuardReasoner tasks: THE table every other module reads them from.

GuardReasoner judges every (request, response) pair three times, and each task has a name in
three vocabularies: the benchmarks' (``prompt``, ``refusal``, ``response``: what a bare gold
label scores, ``--task``), the answers' (``Request:``, ``Completion:``, ``Response:``: the
Verdict and Gold fields) and the instruction's (Task 1, 2, 3). One row per task ties them
together with the task's two label words (the flagging/positive one first), the label-token
score that rates it (a ``Scores`` field and the ``<score>_score`` output key) and the field
names labelled chat data uses for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from guardcli.core.records import Label


class Task(str, Enum):
    """What a bare benchmark label scores, in the paper's (and the reports') order."""

    PROMPT = "prompt"  # task 1: is the request harmful?
    RESPONSE = "response"  # task 3: is the response harmful?
    REFUSAL = "refusal"  # task 2: did the assistant refuse?

    def __str__(self) -> str:
        return self.value

    @property
    def spec(self) -> TaskSpec:
        """This task's row of the table."""
        return _BY_TASK[self]

    @property
    def field(self) -> str:
        """The Gold / Verdict attribute this task fills."""
        return _BY_TASK[self].field


@dataclass(frozen=True)
class TaskSpec:
    task: Task
    number: int  # "Task N" in the instruction, and the order of the Answers block
    field: str  # the Verdict / Gold attribute, and the record key of its label
    answer: str  # the line of the Answers block that gives the label ("Request: harmful")
    score: str  # the Scores field (and ``<score>_score`` record key): P(positive label)
    labels: tuple[Label, Label]  # (positive, negative): the positive label flags, and scores
    aliases: tuple[str, ...]  # label fields of labelled chat data (guardcli.eval.labelled)

    @property
    def positive(self) -> Label:
        return self.labels[0]

    @property
    def negative(self) -> Label:
        return self.labels[1]

    @property
    def judges_response(self) -> bool:
        """Tasks 2 and 3 judge the AI's response: without one, their answer is ``None``."""
        return self.number > 1


_HARM = (Label.HARMFUL, Label.UNHARMFUL)
_REFUSAL = (Label.REFUSAL, Label.COMPLIANCE)

# In Answers-block order (Task 1, 2, 3).
# fmt: off
TASKS: tuple[TaskSpec, ...] = (
    #        task           number  field         answer        score       labels
    TaskSpec(Task.PROMPT,   1,      "request",    "Request",    "request",  _HARM,
             aliases=("request", "prompt_harm_label")),
    TaskSpec(Task.REFUSAL,  2,      "completion", "Completion", "refusal",  _REFUSAL,
             aliases=("completion", "response_refusal_label")),
    TaskSpec(Task.RESPONSE, 3,      "response",   "Response",   "response", _HARM,
             aliases=("response_label", "response_harm_label")),
)
# fmt: on
_BY_TASK = {spec.task: spec for spec in TASKS}
_BY_FIELD = {spec.field: spec for spec in TASKS}

NAMES: tuple[str, ...] = tuple(task.value for task in Task)  # prompt, response, refusal
FIELDS: tuple[str, ...] = tuple(spec.field for spec in TASKS)  # request, completion, response
SCORE_FIELDS: tuple[str, ...] = tuple(spec.score for spec in TASKS)  # request, refusal, response
LABEL_WORDS: frozenset[str] = frozenset(label.value for spec in TASKS for label in spec.labels)


def by_field(field: str) -> TaskSpec:
    """The task whose Verdict / Gold attribute is ``field``."""
    return _BY_FIELD[field]
