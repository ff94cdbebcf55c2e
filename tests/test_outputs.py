"""Result records and the writers that put them on disk or on a terminal."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from guardcli.core.parse import parse
from guardcli.core.records import Generation, Result, Sample
from guardcli.errors import GuardError
from guardcli.io.outputs import (
    FIELDS,
    CsvWriter,
    JsonlWriter,
    JsonWriter,
    make_writer,
    result_record,
)
from guardcli.io.table import TableWriter

OUTPUT = (
    "## Reasoning Step 1: The request asks for something.\n"
    "## Conclusion for Task 1: The request is harmful.\n\n"
    "# Task 2\n\n## Reasoning Step 1: The AI complies.\n"
    "## Conclusion for Task 2: compliance.\n\n"
    "---\n\nAnswers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful\n"
)
SAFE = "Answers: \nRequest: unharmful\nCompletion: refusal\nResponse: unharmful\n"


def make_result(
    ident: str = "s1",
    text: str = OUTPUT,
    *,
    source: str = "in.jsonl:1",
    generation: Generation | None = None,
    extra: dict | None = None,
) -> Result:
    gen = generation or Generation(
        text=text, prompt_tokens=120, output_tokens=45, latency_s=1.2345, finish="answers"
    )
    return Result(
        sample=Sample(id=ident, prompt="p", response="r", source=source),
        verdict=parse(text),
        generation=gen,
        extra=extra or {},
    )


def test_result_record_shape():
    record = result_record(make_result(), reasoning=False)
    assert tuple(record) == FIELDS
    assert record == {
        "id": "s1",
        "source": "in.jsonl:1",
        "request": "harmful",
        "completion": "compliance",
        "response": "harmful",
        "flagged": True,
        "injection": [],
        "status": "ok",
        "prompt_tokens": 120,
        "output_tokens": 45,
        "latency_ms": 1234,
        "finish": "answers",
        "truncated": False,
        "mode": "reason",
        "request_score": None,
        "refusal_score": None,
        "response_score": None,
        "windows": 1,
        "window": None,
    }
    json.dumps(record)  # plain JSON types only


def test_scores_are_written_when_triage_ran():
    from dataclasses import replace

    from guardcli.core.records import Scores

    result = make_result()
    scored = replace(result, verdict=replace(result.verdict, scores=Scores(0.91234567, 0.1, None)))
    record = result_record(scored, reasoning=False)
    assert (record["request_score"], record["refusal_score"], record["response_score"]) == (
        0.912346,
        0.1,
        None,
    )


def test_result_record_reasoning_and_extra():
    result = make_result(extra={"score": 0.9, "id": "must not replace ours"})
    record = result_record(result, reasoning=True)
    assert list(record) == [*FIELDS, "reasoning", "score"]
    assert record["id"] == "s1"
    assert record["reasoning"]["text"] == OUTPUT
    assert record["reasoning"]["tasks"] == [
        {
            "task": 1,
            "steps": ["The request asks for something."],
            "conclusion": "The request is harmful.",
        },
        {"task": 2, "steps": ["The AI complies."], "conclusion": "compliance."},
    ]


def test_result_record_without_generation():
    result = Result(sample=Sample(id="d", prompt="p", source="x"), verdict=parse(SAFE))
    record = result_record(result, reasoning=False)
    for key in ("prompt_tokens", "output_tokens", "latency_ms", "finish", "truncated"):
        assert record[key] is None
    assert record["flagged"] is False


def test_jsonl_round_trip_and_flush():
    class Tracking(io.StringIO):
        flushes = 0

        def flush(self):
            Tracking.flushes += 1
            super().flush()

    stream = Tracking()
    results = [make_result("a"), make_result("ü \u2028 \u2029 \x85 b", SAFE)]
    with JsonlWriter(stream, reasoning=True, fail_on="request") as writer:
        writer.write(results[0])
        assert stream.getvalue().endswith("\n")  # on disk before the next result exists
        writer.write(results[1])
    assert Tracking.flushes >= 2
    lines = stream.getvalue().splitlines()  # as a careless reader would split them
    assert len(lines) == 2
    assert [json.loads(line) for line in lines] == [
        result_record(r, reasoning=True, fail_on="request") for r in results
    ]


def test_csv_quotes_newlines_and_commas():
    stream = io.StringIO()
    tricky = 'id, with "quotes"\nand a newline'
    with CsvWriter(stream, reasoning=True) as writer:
        writer.write(make_result(tricky, source="a,b.csv:2"))
        writer.write(make_result("plain", SAFE, generation=None))
    rows = list(csv.reader(io.StringIO(stream.getvalue())))
    assert rows[0] == [*FIELDS, "reasoning"]
    assert rows[1][:8] == [
        tricky,
        "a,b.csv:2",
        "harmful",
        "compliance",
        "harmful",
        "true",
        "",
        "ok",
    ]
    assert rows[1][-1] == OUTPUT  # the raw reasoning text, newlines and all
    assert rows[2][5] == "false"
    assert len(rows) == 3


def test_csv_generation_none_is_empty_cells():
    stream = io.StringIO()
    result = Result(sample=Sample(id="d", prompt="p", source="x"), verdict=parse(SAFE))
    with CsvWriter(stream) as writer:
        writer.write(result)
    row = dict(zip(*csv.reader(io.StringIO(stream.getvalue())), strict=True))
    assert row["prompt_tokens"] == "" and row["truncated"] == ""


def test_json_writer_partial_then_complete():
    stream = io.StringIO()
    writer = JsonWriter(stream)
    assert stream.getvalue() == "["
    writer.write(make_result("a"))
    writer.write(make_result("b"))
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())  # killed now: the file is visibly incomplete
    writer.close()
    writer.close()  # idempotent
    assert [item["id"] for item in json.loads(stream.getvalue())] == ["a", "b"]


def test_json_writer_cut_short_stays_visibly_incomplete():
    stream = io.StringIO()
    writer = JsonWriter(stream)
    writer.write(make_result("a"))
    writer.close(complete=False)  # Ctrl-C: never a valid but silently short list
    assert writer.closed and not stream.getvalue().rstrip().endswith("]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())


def test_json_writer_empty():
    stream = io.StringIO()
    JsonWriter(stream).close()
    assert json.loads(stream.getvalue()) == []


def _console(width: int = 200, *, color: bool = False) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        color_system="truecolor" if color else None,
        highlight=False,
    )
    return console, buffer


def test_table_sanitizes_untrusted_cells():
    console, buffer = _console()
    hostile = "\x1b[31mred\x1b[0m[bold]x\x1b]0;title\x07"
    with TableWriter(console) as writer:
        writer.write(make_result(hostile, source="[link=https://evil]f[/link]:1"))
    shown = buffer.getvalue()
    assert "\x1b" not in shown
    assert "red[bold]x" in shown  # markup printed literally, not applied
    assert "[link=https://evil]f[/link]:1" in shown
    assert "title" not in shown


def test_table_with_colour_keeps_only_our_escapes():
    console, buffer = _console(color=True)
    with TableWriter(console) as writer:
        writer.write(make_result("\x1b]8;;https://evil\x1b\\id\x1b]8;;\x1b\\\x1b[2J"))
    shown = buffer.getvalue()
    assert "\x1b]" not in shown  # no OSC: no hyperlink, no title
    assert "\x1b[2J" not in shown
    assert "harmful" in shown and "id" in shown


def test_table_stays_within_the_console_width():
    console, buffer = _console(width=70)
    with TableWriter(console) as writer:
        writer.write(make_result("x" * 200, source="y" * 200))
        writer.write(make_result("line\nbreak", SAFE))
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 70 for line in lines)
    # Borders, header, separator, and exactly one line per row: nothing wraps.
    assert len(lines) == 6


def test_table_prints_nothing_for_no_results():
    console, buffer = _console()
    TableWriter(console).close()
    assert buffer.getvalue() == ""


@pytest.mark.parametrize(
    ("fmt", "kind"), [("jsonl", JsonlWriter), ("csv", CsvWriter), ("json", JsonWriter)]
)
def test_make_writer(fmt, kind):
    assert isinstance(make_writer(fmt, io.StringIO(), reasoning=False, fail_on="any"), kind)


def test_make_writer_table_and_errors():
    stream = io.StringIO()
    writer = make_writer("table", stream, reasoning=False, fail_on="none")
    writer.write(make_result())
    writer.close()
    assert "harmful" in stream.getvalue()
    with pytest.raises(GuardError):
        make_writer("xml", io.StringIO(), reasoning=False, fail_on="any")
    with pytest.raises(GuardError):
        make_writer("jsonl", io.StringIO(), reasoning=False, fail_on="sometimes")


def test_jsonl_survives_a_lone_surrogate_in_an_id(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    with path.open("w", encoding="utf-8") as stream, JsonlWriter(stream) as writer:
        writer.write(make_result("bad \ud800 id"))
    assert json.loads(path.read_text("utf-8"))["id"] == "bad \ud800 id"
