"""The terminal table (guardcli.io.table): the verdict is never cut, ids and sources are cut
in the middle, a narrow terminal loses source first, and a pipe gets the whole table."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from rich.console import Console

from guardcli.core.parse import parse
from guardcli.core.records import Generation, Result, Sample, Scores
from guardcli.io.outputs import make_writer
from guardcli.io.table import ID_CAP, TableWriter, middle_cut
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, PAIRS, cli, invoke, labels, pair_record, write_jsonl

HARMFUL = "Answers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful\n"
LONG_ID = "conversation-0001-from-the-support-queue-of-november"
LONG_SOURCE = "logs/2026/11/support-chats-export-from-the-helpdesk.jsonl:17"


def _result(ident: str = LONG_ID, *, fast: bool = False, source: str = LONG_SOURCE) -> Result:
    verdict = parse(HARMFUL)
    if fast:
        verdict = dataclasses.replace(verdict, scores=Scores(0.91, 0.12, 0.88))
    generation = Generation(
        text=HARMFUL, prompt_tokens=123, output_tokens=45, latency_s=1.5, finish="answers"
    )
    return Result(Sample(ident, "p", "r", source), verdict, generation)


def _render(width: int, *, fast: bool, rows: int = 3) -> list[str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    with TableWriter(console) as writer:
        for n in range(rows):
            writer.write(_result(f"{LONG_ID}-{n}", fast=fast))
    return buffer.getvalue().splitlines()


def _header(lines: list[str]) -> list[str]:
    """Column names from the header line(s): the folded score header spans two."""
    cells = [[c.strip() for c in line.strip("┃").split("┃")] for line in lines if "┃" in line]
    return [" ".join(filter(None, parts)) for parts in zip(*cells, strict=True)]


def _rows(lines: list[str]) -> list[list[str]]:
    return [[c.strip() for c in line.strip("│").split("│")] for line in lines if "│" in line]


@pytest.mark.parametrize("fast", [False, True], ids=["reason", "fast"])
@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_verdict_is_never_cut(width, fast):
    lines = _render(width, fast=fast)
    assert all(len(line) <= width for line in lines)
    header = _header(lines)
    assert header[0] == "id"
    assert {"request", "completion", "response"} <= set(header)
    if fast:
        assert header[-1] == "p(harm) req/resp"
    for row in _rows(lines):
        cells = dict(zip(header, row, strict=True))
        assert (cells["request"], cells["completion"], cells["response"]) == (
            "harmful",
            "compliance",
            "harmful",
        )
        if fast:
            assert cells["p(harm) req/resp"] == "0.91/0.88"
        # The id keeps its head and its tail; only the middle goes.
        assert len(cells["id"]) >= 6 and cells["id"][:3] == "con"
        assert "…" in cells["id"] and cells["id"][-1] in "012"


def test_a_narrow_terminal_drops_source_first():
    wide, narrow = _header(_render(160, fast=True)), _header(_render(80, fast=True))
    assert wide == [
        "id",
        "source",
        "request",
        "completion",
        "response",
        "status",
        "tokens",
        "latency",
        "p(harm) req/resp",
    ]
    assert "source" not in narrow and "status" in narrow
    at_120 = _header(_render(120, fast=True))
    assert "source" in at_120  # 120 columns fit everything, cut in the middle


def test_ids_that_fit_are_shown_whole():
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None, highlight=False)
    with TableWriter(console) as writer:
        writer.write(_result("s1", source="in.jsonl:1"))
    [row] = _rows(buffer.getvalue().splitlines())
    assert row[:2] == ["s1", "in.jsonl:1"]


def test_middle_cut():
    assert middle_cut("abcdefghij", 10) == "abcdefghij"
    assert middle_cut("abcdefghij", 5) == "ab…ij"
    assert middle_cut("abcdefghij", 4) == "ab…j"
    assert middle_cut("abcdefghij", 1) == "…"
    assert len(middle_cut("x" * 100, 7)) == 7


def test_a_pipe_gets_the_whole_table(monkeypatch):
    """No terminal and no COLUMNS: nothing to fit, so nothing is cut beyond the caps."""
    monkeypatch.delenv("COLUMNS", raising=False)
    stream = io.StringIO()
    with make_writer("table", stream, reasoning=False, fail_on="any") as writer:
        writer.write(_result(fast=True))
        writer.write(_result("short", fast=True, source="a.txt"))
    lines = stream.getvalue().splitlines()
    assert "source" in _header(lines)
    rows = _rows(lines)
    assert rows[0][0] == middle_cut(LONG_ID, ID_CAP) and len(rows[0][0]) == ID_CAP
    assert rows[1][:2] == ["short", "a.txt"]


def test_table_reasoning_follows_the_table():
    stream = io.StringIO()
    console = Console(file=stream, width=100, color_system=None, highlight=False)
    trace = "## Reasoning Step 1: [bold]x[/] asks for harm.\n" + HARMFUL
    with TableWriter(console, reasoning=True) as writer:
        writer.write(dataclasses.replace(_result("s1"), verdict=parse(trace)))
    shown = stream.getvalue()
    assert shown.index("┃ id") < shown.index("s1 ─") < shown.index("## Reasoning Step 1")
    assert "[bold]x[/] asks for harm." in shown  # untrusted text is never markup


# ---- through the CLI, on the fixture model -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("columns", ["80", None], ids=["80-columns", "piped"])
def test_scan_table_shows_every_label_in_fast_mode(tmp_path, fixture_bundle, columns):
    pairs = [pair_record(p, id=f"{p.id}-{'x' * 40}") for p in FIXTURE_PAIRS]
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    args = ["scan", str(data), "--mode", "fast", "-f", "table", "-m", str(fixture_bundle)]
    result = cli(*args, *GEN, env={"COLUMNS": columns})
    assert result.returncode in (0, 1), result.stderr
    lines = result.stdout.decode().splitlines()
    if columns:
        assert all(len(line) <= int(columns) for line in lines)
    header = _header(lines)
    assert header[0] == "id"
    rows = _rows(lines)
    assert len(rows) == len(FIXTURE_PAIRS)
    for row, pair in zip(rows, FIXTURE_PAIRS, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["id"].startswith(pair.id[:3]) and cells["id"].endswith("x")
        assert re.fullmatch(r"[\d.]+/([\d.]+|-)", cells["p(harm) req/resp"])
        for name in ("request", "completion", "response"):
            assert cells[name] in {"harmful", "unharmful", "refusal", "compliance", "none"}
    if not columns:  # a pipe: source and every column are there
        assert "source" in header and "latency" in header


@pytest.mark.slow
def test_scan_table_reasoning_when_piped(tmp_path, fixture_bundle):
    pair = PAIRS["poison-dog"]
    data = write_jsonl(tmp_path / "one.jsonl", [pair_record(pair)])
    args = ["scan", str(data), "-f", "table", "--reasoning", "-m", str(fixture_bundle), *GEN]
    result = invoke(*args)  # CliRunner: stdout is not a terminal
    assert result.exit_code == 1, result.stderr
    for label in labels(pair):
        assert f" {label} " in result.stdout
    assert "## Conclusion for Task 2: The AI assistant's response is a refusal." in result.stdout
    assert result.stdout.index("┃ id") < result.stdout.index("## Conclusion for Task 2")
