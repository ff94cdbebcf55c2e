"""Streamed model text -> the sections the reasoning pane shows, recomputed as the text grows.

Pure text work, no Textual: the pane calls ``sections`` after every streamed piece, so it
must be cheap and must give the same answer for a finished text as for the same text
restored from history. Labels are never read here (``guardcli.core.parse`` owns that); this only
decides where each task's reasoning starts so the pane can group it while it streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TASK_QUESTIONS = {
    1: "is the request harmful?",
    2: "did the AI refuse or comply?",
    3: "is the response harmful?",
}

# A task header counts once its line is complete or at the end of what has streamed so far;
# a half-written "# Ta" stays in the previous section for a token or two, then moves.
_TASK_HEADER = re.compile(r"^#\s*Task\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
# The Answers block starts a line. The reasoning may use the word "answers" mid-sentence;
# that must not open the block early, so only a line starting "Answers:" does.
_ANSWERS = re.compile(r"^\s*Answers\s*:", re.IGNORECASE | re.MULTILINE)
_RULE = re.compile(r"^\s*-{3,}\s*$")


@dataclass(frozen=True)
class Section:
    key: str  # stable while streaming: "task-1", "task-2", ..., "answers"
    title: str
    body: str


def _tidy(body: str) -> str:
    """Drop the ``---`` separators and blank edges; keep every other line as written."""
    lines = [line.rstrip() for line in body.splitlines() if not _RULE.match(line)]
    return "\n".join(lines).strip("\n")


def task_title(number: int) -> str:
    question = TASK_QUESTIONS.get(number)
    return f"Task {number} · {question}" if question else f"Task {number}"


def sections(text: str) -> list[Section]:
    """Task sections in order, then the Answers block once it has started.

    Text before the first header belongs to task 1 (models usually omit ``# Task 1``), as in
    ``guardcli.core.parse.split_reasoning``. A task repeated by the model gets its own section.
    """
    answers = max(_ANSWERS.finditer(text), key=lambda m: m.start(), default=None)  # the last
    body = text[: answers.start()] if answers else text
    found: list[tuple[int, str]] = []
    headers = list(_TASK_HEADER.finditer(body))
    lead = body[: headers[0].start()] if headers else body
    if lead.strip():
        found.append((1, lead))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(body)
        found.append((int(header.group(1)), body[header.end() : end]))
    result: list[Section] = []
    seen: dict[int, int] = {}
    for number, section in found:
        seen[number] = seen.get(number, 0) + 1
        key = f"task-{number}" if seen[number] == 1 else f"task-{number}-{seen[number]}"
        result.append(Section(key, task_title(number), _tidy(section)))
    if answers is not None:
        result.append(Section("answers", "Answers", _tidy(text[answers.end() :])))
    return result
