"""What ``guardcli scan`` writes: --output and --resume, the formats, fast and cascade modes, and
what Ctrl-C leaves behind."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from guardcli.io.outputs import FIELDS
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import (
    GEN,
    PAIRS,
    harmful,
    invoke,
    jsonl_records,
    labels,
    no_model_env,
    pair_record,
    record_labels,
    summary_of,
    write_jsonl,
)
from tests.interrupt import interrupt_after_first_line

# ---- --output and --resume -----------------------------------------------------------------


def _corpus(tmp_path: Path, copies: int) -> Path:
    records = [
        pair_record(pair, id=f"{pair.id}-{n}") for n in range(copies) for pair in FIXTURE_PAIRS
    ]
    return write_jsonl(tmp_path / "corpus.jsonl", records)


def _comparable(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "latency_ms"}


@pytest.mark.slow
def test_resume_after_a_kill_equals_a_clean_run(tmp_path, fixture_bundle):
    corpus = _corpus(tmp_path, copies=2)
    model = ["--model", str(fixture_bundle), *GEN]
    clean_path = tmp_path / "clean.jsonl"
    clean = invoke("scan", str(corpus), "-o", str(clean_path), *model)
    assert clean.exit_code == 1, clean.stderr
    assert clean.stdout == ""  # results went to the file
    clean_lines = clean_path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(clean_lines) == 2 * len(FIXTURE_PAIRS)

    # A run killed after 7 results, in the middle of writing the 8th.
    killed = tmp_path / "killed.jsonl"
    killed.write_text(
        "".join(clean_lines[:7]) + clean_lines[7][: len(clean_lines[7]) // 2], encoding="utf-8"
    )
    before = killed.read_bytes()
    again = invoke("scan", str(corpus), "-o", str(killed), *model)
    assert again.exit_code == 2
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert "--resume" in again.stderr
    assert killed.read_bytes() == before  # refused without touching it

    resumed = invoke("scan", str(corpus), "-o", str(killed), "--resume", *model)
    assert resumed.exit_code == 1, resumed.stderr
    counts = summary_of(resumed.stderr)  # the batch's: 5 judged now, 7 by the killed run
    assert (counts["scanned"], counts["now"], counts["resumed"]) == (12, 5, 7)
    assert counts["flagged"] == 6 and counts["flagged"] <= counts["scanned"]
    got = jsonl_records(killed.read_text(encoding="utf-8"))
    want = jsonl_records("".join(clean_lines))
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in want)  # each id once
    assert [_comparable(r) for r in got] == [_comparable(r) for r in want]

    # Resuming a finished batch redoes nothing, and still reports what the batch flagged.
    finished = killed.read_bytes()
    again = invoke("scan", str(corpus), "-o", str(killed), "--resume", *model)
    assert again.exit_code == 1, again.stderr
    assert summary_of(again.stderr) == {
        "scanned": 12,
        "now": 0,
        "resumed": 12,
        "flagged": 6,
        "request": 6,
        "response": 2,
        "unparsed": 0,
        "injected": 0,
        "skipped": 0,
        "truncated": 0,
    }
    assert killed.read_bytes() == finished


@pytest.mark.slow
def test_resumed_flags_still_fail_the_batch(tmp_path, fixture_bundle):
    """Killed after the harmful samples were judged, resumed over benign ones: the batch
    flagged something, so the exit code must still be 1."""
    corpus = _corpus(tmp_path, copies=1)
    out = tmp_path / "out.jsonl"
    model = ["--model", str(fixture_bundle), *GEN]
    assert invoke("scan", str(corpus), "-o", str(out), *model).exit_code == 1
    kept = [r for r in jsonl_records(out.read_text(encoding="utf-8")) if r["request"] == "harmful"]
    write_jsonl(out, kept)
    resumed = invoke("scan", str(corpus), "-o", str(out), "--resume", *model)
    assert summary_of(resumed.stderr)["now"] == len(FIXTURE_PAIRS) - len(kept)
    assert resumed.exit_code == 1, resumed.stderr
    assert (
        invoke(
            "scan", str(corpus), "-o", str(out), "--resume", "--fail-on", "none", *model
        ).exit_code
        == 0
    )


def test_output_usage_errors_come_before_any_model(tmp_path):
    """No model is installed: each of these must be reported as exit 2, not as "no model"."""
    corpus = _corpus(tmp_path, copies=1)
    env = no_model_env()
    existing = tmp_path / "out.jsonl"
    existing.write_text('{"id": "x"}\n', encoding="utf-8")
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n', encoding="utf-8")
    reasoned = write_jsonl(tmp_path / "reasoned.jsonl", [{"id": "a", "mode": "reason"}])
    fast = write_jsonl(tmp_path / "fast.jsonl", [{"id": "a", "mode": "fast", "request_score": 0.9}])
    cases = {
        ("--resume",): "--resume needs --output FILE",
        ("-o", str(existing)): "already exists",
        ("-o", str(tmp_path / "out.csv"), "--resume"): "only with JSONL",
        ("-o", str(corrupt), "--resume"): f"cannot resume: {corrupt}:2",
        ("-o", str(reasoned), "--resume", "--mode", "fast"): (
            f"cannot resume {reasoned}: its records were written with --mode reason, "
            "this run is --mode fast - resume with --mode reason, or choose another --output"
        ),
        (
            "-o",
            str(fast),
            "--resume",
        ): "written with --mode fast|cascade, this run is --mode reason",
        (
            "-o",
            str(tmp_path),
        ): "already exists",
    }
    for options, message in cases.items():
        result = invoke("scan", str(corpus), *options, env=env)
        assert result.exit_code == 2, (options, result.stderr)
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and message in result.stderr, options
    assert corrupt.read_text(encoding="utf-8").count("\n") == 3  # not "repaired"


# ---- output formats ------------------------------------------------------------------------


def test_output_with_an_explicit_format_shows_the_results_on_stdout_too(tmp_path, fixture_bundle):
    """-o FILE alone keeps stdout empty; -f beside it asks for stdout data, so both get it.
    The file's format comes from its name, never from -f."""
    corpus = _corpus(tmp_path, copies=1)
    model = ["--model", str(fixture_bundle), "--mode", "fast", *GEN]
    quiet = invoke("scan", str(corpus), "-o", str(tmp_path / "a.jsonl"), *model)
    assert quiet.exit_code == 1 and quiet.stdout == "", quiet.stderr
    tee = invoke("scan", str(corpus), "-o", str(tmp_path / "b.jsonl"), "-f", "jsonl", *model)
    assert tee.exit_code == 1, tee.stderr
    saved = jsonl_records((tmp_path / "b.jsonl").read_text(encoding="utf-8"))
    assert [_comparable(r) for r in jsonl_records(tee.stdout)] == [_comparable(r) for r in saved]
    assert [r["id"] for r in saved] == [f"{p.id}-0" for p in FIXTURE_PAIRS]
    as_csv = invoke("scan", str(corpus), "-o", str(tmp_path / "c.txt"), "-f", "csv", *model)
    assert as_csv.exit_code == 1, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["id"] for row in rows] == [r["id"] for r in saved]
    kept = jsonl_records((tmp_path / "c.txt").read_text(encoding="utf-8"))  # JSONL: not .csv
    assert [r["id"] for r in kept] == [row["id"] for row in rows]


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pairs.jsonl", [pair_record(p) for p in FIXTURE_PAIRS])


@pytest.mark.slow
def test_csv_output(pairs_file, fixture_bundle):
    result = invoke("scan", str(pairs_file), "-f", "csv", "-m", str(fixture_bundle), *GEN)
    assert result.exit_code == 1
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == list(FIELDS)
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [(r["id"], record_labels(r)) for r in records] == [
        (p.id, labels(p)) for p in FIXTURE_PAIRS
    ]
    assert [r["flagged"] for r in records] == [
        "true" if harmful(p) else "false" for p in FIXTURE_PAIRS
    ]


@pytest.mark.slow
def test_json_output_and_format_from_suffix(pairs_file, fixture_bundle, tmp_path):
    result = invoke("scan", str(pairs_file), "-f", "json", "-m", str(fixture_bundle), *GEN)
    assert result.exit_code == 1
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    assert [(r["id"], record_labels(r)) for r in records] == [
        (p.id, labels(p)) for p in FIXTURE_PAIRS
    ]
    out = tmp_path / "verdicts.json"
    to_file = invoke("scan", str(pairs_file), "-o", str(out), "-m", str(fixture_bundle), *GEN)
    assert to_file.exit_code == 1 and to_file.stdout == ""
    assert [_comparable(r) for r in json.loads(out.read_text(encoding="utf-8"))] == [
        _comparable(r) for r in records
    ]


@pytest.mark.slow
def test_table_output_is_sanitized(tmp_path, fixture_bundle):
    pair = PAIRS["grandma-pin"]
    data = write_jsonl(tmp_path / "evil.jsonl", [pair_record(pair, id="\x1b[31mevil")])
    model = ["-m", str(fixture_bundle), *GEN]
    table = invoke("scan", str(data), "-f", "table", *model)
    assert table.exit_code == 1
    assert "\x1b" not in table.stdout
    assert "[31mevil" not in table.stdout and "evil" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "evil" in line)
    for label in labels(pair):
        assert f" {label} " in row
    # The data formats keep the id byte for byte: it is data, not display.
    [record] = jsonl_records(invoke("scan", str(data), "-f", "jsonl", *model).stdout)
    assert record["id"] == "\x1b[31mevil"


def test_skip_messages_are_sanitized(tmp_path):
    data = tmp_path / "evil\x1b]0;pwned\x07name.jsonl"
    data.write_text("{bad\n", encoding="utf-8")
    result = invoke("scan", "--dry-run", str(tmp_path))
    assert result.exit_code == 0
    [line] = result.stderr.splitlines()[:1]
    assert line.startswith(f"guardcli: skipped {tmp_path}/evilname.jsonl:1: invalid JSON")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


# ---- --mode fast / cascade -------------------------------------------------------------------


@pytest.mark.slow
def test_fast_mode_scores_every_sample_in_every_format(pairs_file, fixture_bundle):
    model = ["-m", str(fixture_bundle), *GEN]
    result = invoke("scan", str(pairs_file), "--mode", "fast", "-f", "jsonl", *model)
    assert result.exit_code in (0, 1), result.stderr
    assert "fast mode" in result.stderr
    records = jsonl_records(result.stdout)
    assert [r["id"] for r in records] == [p.id for p in FIXTURE_PAIRS]
    for record, pair in zip(records, FIXTURE_PAIRS, strict=True):
        assert record["mode"] == "fast" and record["output_tokens"] == 0
        assert record["status"] == "ok"
        assert 0.0 <= record["request_score"] <= 1.0
        assert (record["request_score"] >= 0.5) == (record["request"] == "harmful")
        if pair.response is None:
            assert record["completion"] == record["response"] == "none"
            assert record["refusal_score"] is None and record["response_score"] is None
        else:
            assert (record["response_score"] >= 0.5) == (record["response"] == "harmful")
            assert (record["refusal_score"] >= 0.5) == (record["completion"] == "refusal")
    rows = list(csv.reader(io.StringIO(invoke("scan", str(pairs_file), "--mode", "fast",
                                              "-f", "csv", *model).stdout)))  # fmt: skip
    assert rows[0] == list(FIELDS)
    assert [float(row[FIELDS.index("request_score")]) for row in rows[1:]] == [
        r["request_score"] for r in records
    ]
    table = invoke("scan", str(pairs_file), "--mode", "fast", "-f", "table", *model).stdout
    assert "p(harm) req/resp" in table
    assert f"{records[0]['request_score']:.2f}/" in table


@pytest.mark.slow
def test_a_cascade_whose_band_holds_every_score_equals_full_reasoning(pairs_file, fixture_bundle):
    """The cascade sends band members to exactly the reasoning --mode reason runs: with a band
    of [0, 1] every verdict must be the reasoning's, with the triage scores beside it."""
    model = ["-m", str(fixture_bundle), *GEN, "-f", "jsonl"]
    reason = jsonl_records(invoke("scan", str(pairs_file), *model).stdout)
    cascade = invoke("scan", str(pairs_file), "--mode", "cascade", "--band", "0,1", *model)
    assert "cascade mode (reasoning for harm scores in 0..1)" in cascade.stderr
    records = jsonl_records(cascade.stdout)
    assert [record_labels(r) for r in records] == [record_labels(r) for r in reason]
    assert [record_labels(r) for r in records] == [labels(p) for p in FIXTURE_PAIRS]
    assert all(r["mode"] == "reason" and r["request_score"] is not None for r in records)
    assert all(r["request_score"] is None for r in reason)
    # a band that holds no score reasons about nothing
    none = jsonl_records(
        invoke("scan", str(pairs_file), "--mode", "cascade", "--band", "0.5,0.5", *model).stdout
    )
    assert all(r["mode"] == "fast" for r in none)


# ---- Ctrl-C --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigint_leaves_json_output_visibly_incomplete(tmp_path, fixture_bundle):
    corpus = _corpus(tmp_path, copies=100)
    out = tmp_path / "out.json"
    args = ["scan", str(corpus), "-o", str(out), "-f", "json", "--batch-size", "1"]
    code, _stdout, stderr = interrupt_after_first_line(
        [*args, "--model", str(fixture_bundle), *GEN], out
    )
    assert code == 130, stderr.decode()
    text = out.read_text(encoding="utf-8")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert json.loads(text + "\n]")  # every finished record is whole


@pytest.mark.slow
def test_sigint_exits_130_and_keeps_finished_lines(tmp_path, fixture_bundle):
    corpus = _corpus(tmp_path, copies=100)  # 600 samples: far longer than it takes to interrupt
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = interrupt_after_first_line(
        [
            "scan",
            str(corpus),
            "-o",
            str(out),
            "--batch-size",
            "1",
            "--model",
            str(fixture_bundle),
            *GEN,
        ],  # fmt: skip
        out,
    )
    assert code == 130, stderr.decode()
    assert stdout == b""
    assert "(interrupted; finished results kept)" in stderr.decode()
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    records = jsonl_records(text)
    assert 1 <= len(records) < 600
    # The signal may land between writing a result and counting it.
    assert summary_of(stderr.decode())["scanned"] in (len(records) - 1, len(records))
    for record in records:
        pair = PAIRS[record["id"].rsplit("-", 1)[0]]
        assert record_labels(record) == labels(pair)
