"""Results -> records -> JSONL, CSV, JSON, SARIF (guardcli.io.sarif) or a terminal table.

A batch scan can run for hours and be killed at any moment, so every file writer puts each
result on disk (flushed) the moment it exists: a killed run loses nothing it finished, and
``--resume`` picks up from the JSONL it left. The table (guardcli.io.table) is for people
and is printed once at the end, every cell through guardcli.io.sanitize. JSONL, JSON and CSV
are data: byte-exact in a file or a pipe, but on a terminal JSON escapes what a terminal would
act on or hide (still the same strings to any JSON reader) and CSV cells are cleaned for
display.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from guardcli.core.gate import check as check_fail_on
from guardcli.core.gate import flagged
from guardcli.core.records import Generation, Result, Verdict, Window
from guardcli.core.tasks import FIELDS as TASK_FIELDS
from guardcli.core.tasks import SCORE_FIELDS
from guardcli.errors import UsageError, one_of
from guardcli.io.sanitize import clean_terminal, terminal_json

FORMATS = ("table", "json", "jsonl", "csv", "sarif")  # sarif: guardcli.io.sarif
FIELDS = (
    "id",
    "source",
    *TASK_FIELDS,  # request, completion, response
    "flagged",
    "injection",  # the template markers the input carried (guardcli.core.injection.KINDS)
    "status",
    "prompt_tokens",
    "output_tokens",
    "latency_ms",
    "finish",
    "truncated",
    "mode",
    *(f"{name}_score" for name in SCORE_FIELDS),  # request, refusal, response
    "windows",  # how many windows a long input was judged in (--long chunk); 1 if it fit
    "window",  # the first window that flagged: {index, count, prompt, response} spans, or null
)


def result_record(result: Result, *, reasoning: bool, fail_on: str = "any") -> dict[str, Any]:
    """The one public shape of a result; every file format is a view of it.

    Key order is part of the contract (CSV columns follow it). ``result.extra`` adds keys
    after ours but never replaces one of ours.
    """
    verdict, generation = result.verdict, result.generation
    record: dict[str, Any] = {
        "id": result.sample.id,
        "source": result.sample.source,
        **{field: getattr(verdict, field).value for field in TASK_FIELDS},
        "flagged": flagged(verdict, fail_on),
        "injection": list(result.injection),
        "status": verdict.status.value,
        "prompt_tokens": generation.prompt_tokens if generation else None,
        **generation_fields(generation),
        # P(harmful request), P(refusal), P(harmful response) from the label tokens, for
        # thresholds and ROC curves; null where triage did not run (--mode reason).
        **score_fields(verdict),
        "windows": result.windows,
        "window": window_field(result.window),
    }
    if reasoning:
        record["reasoning"] = {
            "tasks": [
                {"task": task.task, "steps": list(task.steps), "conclusion": task.conclusion}
                for task in verdict.reasoning
            ],
            "text": verdict.raw,
        }
    for key, value in result.extra.items():
        record.setdefault(key, value)
    return record


def generation_fields(generation: Generation | None) -> dict[str, Any]:
    """What the engine reported for one sample, as record keys (all None without a generation)."""
    g = generation
    return {
        "output_tokens": g.output_tokens if g else None,
        "latency_ms": round(g.latency_s * 1000) if g else None,
        "finish": g.finish if g else None,
        "truncated": g.truncated_input if g else None,
        "mode": g.mode if g else None,
    }


def window_field(window: Window | None) -> dict[str, Any] | None:
    """Where in a long input the flagging window was: [start, end) characters of the prompt
    and of the response, so the harmful passage can be found in the file."""
    if window is None:
        return None
    return {
        "index": window.index,
        "count": window.count,
        "prompt": list(window.prompt),
        "response": None if window.response is None else list(window.response),
    }


def score_fields(verdict: Verdict) -> dict[str, float | None]:
    scores = verdict.scores
    values = {name: None if scores is None else getattr(scores, name) for name in SCORE_FIELDS}
    return {
        f"{name}_score": None if value is None else round(value, 6)
        for name, value in values.items()
    }


# Line breaks to str.splitlines() and to JavaScript, but not to JSON: left raw they would cut a
# JSONL record in two for any reader that splits lines the Python way.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_line(record: dict[str, Any]) -> str:
    """One JSON line: readable UTF-8, but never a character that could split the line or
    (a lone surrogate) fail to encode. Every JSONL guardcli writes goes through here."""
    text = json.dumps(record, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, default=str)
    for char, escaped in _LINE_BREAKS.items():
        if char in text:
            text = text.replace(char, escaped)
    return text


# ---- writers -----------------------------------------------------------------------------------


class Writer:
    """``write`` each result as it finishes, ``close`` once; also a context manager."""

    def __init__(
        self, *, reasoning: bool = False, fail_on: str = "any", terminal: bool = False
    ) -> None:
        self.reasoning = reasoning
        self.fail_on = check_fail_on(fail_on)
        self.terminal = terminal  # a person reads the stream: nothing reaches it raw
        self.closed = False

    def record(self, result: Result) -> dict[str, Any]:
        return result_record(result, reasoning=self.reasoning, fail_on=self.fail_on)

    def json_text(self, result: Result) -> str:
        line = json_line(self.record(result))
        return terminal_json(line) if self.terminal else line

    def write(self, result: Result) -> None:
        raise NotImplementedError

    def close(self, *, complete: bool = True) -> None:
        """``complete=False``: the run was cut short (Ctrl-C, an error); see JsonWriter."""
        self.closed = True

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlWriter(Writer):
    """One line per result, flushed at once: the format --resume reads back."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    def write(self, result: Result) -> None:
        # One write call per line: a kill can cut a line short but never interleave two.
        self.stream.write(self.json_text(result) + "\n")
        self.stream.flush()


class CsvWriter(Writer):
    """Columns from the first record; reasoning is its raw text (a cell cannot nest)."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream
        self._writer: csv.DictWriter | None = None

    def write(self, result: Result) -> None:
        record = self.record(result)
        if "reasoning" in record:
            record["reasoning"] = record["reasoning"]["text"]
        record["injection"] = ";".join(record["injection"])  # a cell per kind list, "" if none
        row = {key: _csv_cell(value) for key, value in record.items()}
        if self.terminal:
            row = {k: clean_terminal(v) if isinstance(v, str) else v for k, v in row.items()}
        if self._writer is None:
            self._writer = csv.DictWriter(self.stream, fieldnames=list(row), extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow(row)
        self.stream.flush()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):  # as in the JSON outputs, not Python's "True"
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


class JsonWriter(Writer):
    """A JSON array, written as it grows: a killed run leaves a file without its closing
    ``]``, which every JSON reader rejects, rather than a valid but silently short list."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream
        self.count = 0
        stream.write("[")
        stream.flush()

    def write(self, result: Result) -> None:
        self.stream.write(("," if self.count else "") + "\n  " + self.json_text(result))
        self.stream.flush()
        self.count += 1

    def close(self, *, complete: bool = True) -> None:
        if not self.closed and complete:
            self.stream.write("\n]\n" if self.count else "]\n")
            self.stream.flush()
        super().close()


def is_terminal(stream: IO[str]) -> bool:
    """Whether a person is reading ``stream`` (a tty), not a file or a pipe."""
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def make_writer(
    fmt: str, stream: IO[str], *, reasoning: bool, fail_on: str, console: Any = None
) -> Writer:
    options = {"reasoning": reasoning, "fail_on": fail_on, "terminal": is_terminal(stream)}
    if fmt == "jsonl":
        return JsonlWriter(stream, **options)
    if fmt == "csv":
        return CsvWriter(stream, **options)
    if fmt == "json":
        return JsonWriter(stream, **options)
    if fmt == "sarif":
        from guardcli.io.sarif import SarifWriter

        return SarifWriter(stream, **options)
    if fmt == "table":
        from guardcli.io.table import TableWriter, fits_terminal

        if console is None:
            from rich.console import Console

            console = Console(file=stream, highlight=False)
        return TableWriter(console, fit=fits_terminal(console), **options)
    raise UsageError(f"--format {fmt!r}", hint="use " + one_of(FORMATS))
