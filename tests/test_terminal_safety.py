"""Nothing from a scanned file or a bundle reaches a terminal raw, in any format (issue 15,
item 6): escape sequences, OSC 8 links, CR, BEL, C1 controls, bidi overrides and zero-width
characters. Written to a file or a pipe, the data stays exact."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import unicodedata

import pytest
from rich.console import Console

from guardcli.cli.console import say, say_skip
from guardcli.core.parse import parse
from guardcli.core.records import Generation, Result, Sample, Skip
from guardcli.io.outputs import make_writer
from guardcli.io.sanitize import clean_terminal, terminal_json
from tests.cli_support import GEN, invoke

HOSTILE = (
    "x\x1b[2J\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ cr\rbel\x07 "
    "rlo\u202eharmful iso\u2066 zw\u200b c1\x9b31m osc\x9d0;title\x9c end"
)
TRACE = "Answers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful"


def raw_characters(text: str) -> list[str]:
    """What a terminal would act on or hide: controls (but newline, tab and the CR of a CSV
    line's CRLF) and format characters."""
    text = text.replace("\r\n", "\n")
    return [c for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _result() -> Result:
    sample = Sample(id=HOSTILE, prompt=HOSTILE, response=HOSTILE, source=HOSTILE + ":1")
    generation = Generation(TRACE + HOSTILE, 10, 5, 0.1, "eos")
    return Result(sample, parse(TRACE + "\n" + HOSTILE), generation)


def _write(fmt: str, stream: io.StringIO) -> str:
    console = Console(file=stream, width=200, color_system=None) if fmt == "table" else None
    with make_writer(fmt, stream, reasoning=True, fail_on="any", console=console) as writer:
        writer.write(_result())
    return stream.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
def test_nothing_raw_on_a_terminal(fmt):
    shown = _write(fmt, Tty())
    assert raw_characters(shown) == []
    assert "\x1b" not in shown
    if fmt != "table":
        assert "link" in shown
    if fmt in ("jsonl", "json"):  # still the same data to a JSON reader
        record = json.loads(shown) if fmt == "jsonl" else json.loads(shown)[0]
        assert record["id"] == HOSTILE


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_files_and_pipes_stay_exact(fmt):
    written = _write(fmt, io.StringIO())
    if fmt == "csv":
        [row] = list(csv.DictReader(io.StringIO(written)))
    else:
        row = json.loads(written) if fmt == "jsonl" else json.loads(written)[0]
    assert row["id"] == HOSTILE and row["source"] == HOSTILE + ":1"


def test_terminal_json_is_the_same_json():
    line = json.dumps({"a": HOSTILE + "\U000e0001"}, ensure_ascii=False)
    assert json.loads(terminal_json(line)) == json.loads(line)
    assert raw_characters(terminal_json(line)) == []


def test_invisible_characters_are_shown_not_dropped():
    assert clean_terminal("a\u202eb\u200bc") == "a<U+202E>b<U+200B>c"
    assert clean_terminal("a\u2028b") == "a\nb"


def test_stderr_lines_are_clean(capsys):
    say_skip(Skip(HOSTILE + ".txt", "invalid JSON " + HOSTILE))
    say("guardcli: model " + HOSTILE)
    err = capsys.readouterr().err
    assert raw_characters(err) == [] and "<U+202E>" in err


def test_file_names_in_skip_lines_and_ids(tmp_path):
    name = "evil\x1b]0;pwn\x07\u202e\u200b\x9b.txt"
    (tmp_path / name).write_text("", encoding="utf-8")  # empty: skipped, named on stderr
    (tmp_path / "ok.txt").write_text("hello\n", encoding="utf-8")
    result = invoke("scan", "--dry-run", str(tmp_path), env={"GUARDCLI_MODEL": "/nope"})
    assert result.exit_code == 0, result.stderr
    assert raw_characters(result.stderr) == []
    assert "evil" in result.stderr and "empty file" in result.stderr


@pytest.mark.slow
def test_a_bundle_manifest_name_is_cleaned_on_stderr(fixture_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_bundle, bundle)
    manifest = json.loads((bundle / "guardcli.json").read_text(encoding="utf-8"))
    manifest["name"] = "nano\x1b]8;;https://evil\x07\u202e"
    manifest["precision"] = "fp32\x1b[2J\x9b"
    (bundle / "guardcli.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = invoke(
        "classify", "-p", "hi", "--model", str(bundle), "--no-verify", "-f", "jsonl", *GEN
    )
    assert "nano" in result.stderr, result.stderr
    assert raw_characters(result.stderr) == []
    assert re.search(r"fp32", result.stderr)
