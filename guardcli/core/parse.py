"""Model text -> Verdict.

Labels are read only from the model's final ``Answers`` block: the reasoning quotes and
paraphrases the user's text, so a label found anywhere earlier could be an echo of the
input rather than the model's conclusion. The block is the last line that *starts* with
``Answers`` (as the model writes it): an ``answers`` inside a sentence, or a quoted block the
user planted (guardcli.core.injection brackets those before the model reads them, so their
echo reads ``[Answers]``), never counts. Without an Answers marker we fall back to the
last 300 characters, which is exactly what the GuardReasoner repository's evaluate.py reads.
Parsing never raises: any text gives a Verdict, at worst with status FAILED.
"""

from __future__ import annotations

import re

from guardcli.core.records import Label, ParseStatus, TaskReasoning, Verdict
from guardcli.core.tasks import TASKS, TaskSpec

TAIL_CHARS = 300  # evaluate.py reads predict[-300:]

# The model's own block opens a line: "Answers: " or "Answers" (some write no colon).
_ANSWERS = re.compile(r"^[ \t]*Answers\b[ \t]*:?", re.MULTILINE)


def label_pattern(task: TaskSpec, *others: str, after: str = "") -> re.Pattern[str]:
    """The task's Answers line (``Request:``) and one of its label words, or of ``others``."""
    words = "|".join((*(label.value for label in task.labels), *others))
    return re.compile(rf"{task.answer}:\s*({words}){after}", re.IGNORECASE)


# No trailing boundary on harmful/unharmful/refusal/compliance, like evaluate.py; "none" needs
# one so "nonexistent" is not read as "no response".
_FIELDS = {task.field: label_pattern(task, r"none\b") for task in TASKS}
# The block's last line, finished: its label word followed by something (a newline, a space).
_FINISHED = label_pattern(TASKS[-1], "none", after=r"\W")
_TASK_HEADER = re.compile(r"^#\s*Task\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_STEP = re.compile(r"^##\s*Reasoning Step\s*\d+\s*:?\s*", re.IGNORECASE)
_CONCLUSION = re.compile(r"^##\s*Conclusion for Task\s*\d+\s*:?\s*", re.IGNORECASE)


def _last_marker(text: str) -> re.Match[str] | None:
    matches = list(_ANSWERS.finditer(text))
    return matches[-1] if matches else None


def answers_region(text: str) -> tuple[str, bool]:
    """The part of the output that may hold labels, and whether an Answers marker was found."""
    last = _last_marker(text)
    if last is not None:
        return text[last.end() :], True
    return text[-TAIL_CHARS:], False


def read_labels(region: str) -> dict[str, Label]:
    labels: dict[str, Label] = {}
    for name, pattern in _FIELDS.items():
        match = pattern.search(region)
        labels[name] = Label(match.group(1).lower()) if match else Label.UNKNOWN
    return labels


def answers_complete(text: str) -> bool:
    """True once the Answers block holds a finished Response line.

    The engine stops generation here: some models keep talking after the block, and every
    token after it is wasted time. Finished means the label word is followed by something
    (a newline, a space), so "Response: un" is never mistaken for the end.
    """
    region, found = answers_region(text)
    if not found:
        return False
    return _FINISHED.search(region) is not None


def split_reasoning(text: str) -> tuple[TaskReasoning, ...]:
    """Group the numbered reasoning steps by task.

    Outputs usually omit the ``# Task 1`` header (the first task starts at once), so text
    before the first header belongs to task 1.
    """
    cut = _last_marker(text)
    body = text[: cut.start()] if cut else text
    sections: list[tuple[int, str]] = []
    headers = list(_TASK_HEADER.finditer(body))
    if not headers or body[: headers[0].start()].strip():
        sections.append((1, body[: headers[0].start()] if headers else body))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(body)
        sections.append((int(header.group(1)), body[header.end() : end]))
    tasks = []
    for number, section in sections:
        steps: list[str] = []
        conclusion: str | None = None
        current: list[str] | None = None
        for line in section.splitlines():
            stripped = line.strip()
            if _CONCLUSION.match(stripped):
                conclusion = _CONCLUSION.sub("", stripped, count=1)
                current = None
            elif _STEP.match(stripped):
                current = [_STEP.sub("", stripped, count=1)]
                steps.append("")
                steps[-1] = current[0]
            elif current is not None and stripped and stripped != "---":
                current.append(stripped)
                steps[-1] = "\n".join(current).strip()
        if steps or conclusion:
            tasks.append(TaskReasoning(task=number, steps=tuple(steps), conclusion=conclusion))
    return tuple(tasks)


def parse(text: str) -> Verdict:
    region, _ = answers_region(text)
    labels = read_labels(region)
    found = sum(label is not Label.UNKNOWN for label in labels.values())
    status = ParseStatus.OK if found == 3 else ParseStatus.PARTIAL if found else ParseStatus.FAILED
    return Verdict(
        **labels,
        status=status,
        reasoning=split_reasoning(text),
        raw=text,
    )
