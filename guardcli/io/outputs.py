"""Results -> records -> JSONL, CSV, JSON or a terminal table.

A batch scan can run for hours and be killed at any moment, so every file writer puts each
result on disk (flushed) the moment it exists: a killed run loses nothing it finished, and
``--resume`` picks up from the JSONL it left. The table is for people and is printed once at
the end, every cell through guardcli.io.sanitize. JSONL, JSON and CSV are data: byte-exact
in a file or a pipe, but on a terminal JSON escapes what a terminal would act on or hide
(still the same strings to any JSON reader) and CSV cells are cleaned for display.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from guardcli.core.gate import check as check_fail_on
from guardcli.core.gate import flagged
from guardcli.core.records import Generation, Result, Verdict
from guardcli.core.tasks import FIELDS as TASK_FIELDS
from guardcli.core.tasks import SCORE_FIELDS
from guardcli.errors import UsageError, one_of
from guardcli.io.sanitize import clean_terminal, one_line, terminal_json

FORMATS = ("table", "json", "jsonl", "csv")
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


class TableWriter(Writer):
    """A rich table printed at close. Cells are cut to one line: the table is a summary,
    the JSONL is the record."""

    def __init__(self, console: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.console = console
        self.rows: list[dict[str, Any]] = []

    def write(self, result: Result) -> None:
        self.rows.append(self.record(result))

    def close(self, *, complete: bool = True) -> None:
        if not self.closed and self.rows:  # what finished is worth showing even when cut short
            self.console.print(self._table())
        super().close()

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(expand=False, highlight=False)
        table.add_column("id", overflow="ellipsis", no_wrap=True, max_width=32)
        table.add_column("source", overflow="ellipsis", no_wrap=True, max_width=40)
        for name in (*TASK_FIELDS, "status"):
            table.add_column(name, overflow="ellipsis", no_wrap=True)
        table.add_column("tokens", justify="right", overflow="ellipsis", no_wrap=True)
        table.add_column("latency", justify="right", overflow="ellipsis", no_wrap=True)
        scored = any(record["request_score"] is not None for record in self.rows)
        if scored:
            table.add_column("p(harm) req/resp", justify="right", no_wrap=True)
        injected = any(record["injection"] for record in self.rows)
        if injected:
            table.add_column("injection", overflow="fold")
        for record in self.rows:
            table.add_row(
                # Untrusted: cleaned, and a Text so rich never reads it as markup.
                Text(one_line(str(record["id"]), 32)),
                Text(one_line(str(record["source"]), 40)),
                *(_label(record[name]) for name in TASK_FIELDS),
                _label(record["status"]),
                _tokens(record),
                "-" if record["latency_ms"] is None else f"{record['latency_ms'] / 1000:.1f}s",
                *([_harm_scores(record)] if scored else []),
                *([_injection(record["injection"])] if injected else []),
            )
        return table


_STYLES = {"harmful": "bold red", "unknown": "yellow", "failed": "yellow", "partial": "yellow"}


def _label(value: str) -> str:
    """Labels and statuses are our own enum values, so styling them is safe."""
    style = _STYLES.get(value)
    return f"[{style}]{value}[/]" if style else value


def _injection(kinds: list[str]) -> str:
    """Our own vocabulary (guardcli.core.injection.KINDS), so styling it is safe."""
    return f"[bold red]{', '.join(kinds)}[/]" if kinds else "-"


def _harm_scores(record: dict[str, Any]) -> str:
    return "/".join(
        "-" if record[key] is None else f"{record[key]:.2f}"
        for key in ("request_score", "response_score")
    )


def _tokens(record: dict[str, Any]) -> str:
    if record["prompt_tokens"] is None:
        return "-"
    return f"{record['prompt_tokens']}+{record['output_tokens']}"


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
    if fmt == "table":
        if console is None:
            from rich.console import Console

            console = Console(file=stream, highlight=False)
        return TableWriter(console, **options)
    raise UsageError(f"--format {fmt!r}", hint="use " + one_of(FORMATS))
