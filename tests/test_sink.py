"""Output files: resuming a JSONL output a killed run left behind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from guardcli.core.guard import MODES
from guardcli.core.records import Generation, Scores
from guardcli.errors import InputError, UsageError
from guardcli.io.outputs import JsonlWriter, json_line, result_record
from guardcli.io.sink import check_resumable, check_same_mode, load_done
from tests.test_outputs import make_result


def _write_jsonl(path: Path, ids: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream, JsonlWriter(stream) as writer:
        for ident in ids:
            writer.write(make_result(ident))


def test_resume_reads_ids(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    _write_jsonl(path, ["a", "b", "c#2"])
    before = path.read_bytes()
    assert load_done(path) == {"a", "b", "c#2"}
    assert path.read_bytes() == before  # a clean file is not touched


def test_resume_truncates_a_cut_off_last_line(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    _write_jsonl(path, ["a", "b"])
    good = path.read_bytes()
    with path.open("a", encoding="utf-8") as stream:
        stream.write('{"id": "c", "source": "in.jsonl:3", "requ')  # killed mid-write
    assert load_done(path) == {"a", "b"}
    assert path.read_bytes() == good
    # Appending continues cleanly and the next resume sees every record.
    with path.open("a", encoding="utf-8", newline="") as stream, JsonlWriter(stream) as writer:
        writer.write(make_result("c"))
    assert load_done(path) == {"a", "b", "c"}
    assert [json.loads(line)["id"] for line in path.read_text("utf-8").splitlines()] == [
        "a",
        "b",
        "c",
    ]


def test_resume_drops_a_complete_record_missing_its_newline(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    _write_jsonl(path, ["a"])
    good = path.read_bytes()
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps({"id": "b"}))
    assert load_done(path) == {"a"}
    assert path.read_bytes() == good


def test_resume_refuses_a_bad_line_in_the_middle(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    _write_jsonl(path, ["a"])
    with path.open("a", encoding="utf-8") as stream:
        stream.write("not json at all\n")
        stream.write(json.dumps({"id": "c"}) + "\n")
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"cannot resume: .*out\.jsonl:2") as caught:
        load_done(path)
    assert "move the file away or fix the line" in str(caught.value)
    assert path.read_bytes() == before  # never truncate on a guess


def test_resume_of_an_empty_file(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"")
    assert load_done(path) == set()


def test_check_resumable(tmp_path: Path):
    check_resumable(tmp_path / "new.jsonl", "jsonl")
    for fmt in ("csv", "json", "table"):
        with pytest.raises(UsageError, match="JSONL"):
            check_resumable(tmp_path / "out.jsonl", fmt)
    with pytest.raises(UsageError):
        check_resumable(tmp_path, "jsonl")


def _made(mode: str, scored: bool) -> dict:
    """A real record as scan writes it, from a verdict made in ``mode`` (with triage scores
    or without)."""
    result = make_result("a", generation=Generation("t", 1, 1, 0.1, "answers", mode=mode))
    if scored:
        verdict = dataclasses.replace(result.verdict, scores=Scores(0.9, 0.1, 0.2))
        result = dataclasses.replace(result, verdict=verdict)
    return json.loads(json_line(result_record(result, reasoning=False)))


@pytest.mark.parametrize(
    ("made", "scored", "resumable_with"),
    [
        ("reason", False, {"reason"}),  # --mode reason
        ("fast", True, {"fast", "cascade"}),  # --mode fast, or cascade's triage
        ("reason", True, {"cascade"}),  # cascade's reasoned samples keep their scores
    ],
)
def test_a_file_resumes_only_with_the_mode_that_wrote_it(tmp_path, made, scored, resumable_with):
    path = tmp_path / "out.jsonl"
    records = [_made(made, scored)]
    for mode in MODES:
        if mode in resumable_with:
            check_same_mode(path, records, mode)
            continue
        with pytest.raises(UsageError, match=f"this run is --mode {mode}") as caught:
            check_same_mode(path, records, mode)
        written = "|".join(m for m in MODES if m in resumable_with)
        assert f"resume with --mode {written}, or choose another --output" in str(caught.value)
