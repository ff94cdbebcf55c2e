"""``guardcli scan`` end to end over the fixture bundle (testkit/fixture.py): dry runs, folders,
stdin, exit codes and usage errors (tests/cli_support.py has the helpers)."""

from __future__ import annotations

import csv
import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from guardcli.core.prompt import build_input, split_input
from guardcli.io.outputs import FIELDS
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import (
    GEN,
    PAIRS,
    PROMPT_ONLY,
    REPO,
    SUMMARY,
    WITH_RESPONSE,
    cli,
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

# ---- --dry-run -----------------------------------------------------------------------------


def test_dry_run_prints_exact_inputs_and_loads_no_model(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair_record(p) for p in FIXTURE_PAIRS])
    text = tmp_path / "note.txt"
    text.write_text("line one\nline two\n", encoding="utf-8")
    # A model that cannot resolve: any attempt to load one would exit 3.
    result = invoke("scan", "--dry-run", str(data), str(text), env={"GUARDCLI_MODEL": "/nope"})
    assert result.exit_code == 0, result.stderr
    records = jsonl_records(result.stdout)
    assert [set(r) for r in records] == [{"id", "input", "injection"}] * (len(FIXTURE_PAIRS) + 1)
    assert all(r["injection"] == [] for r in records)
    expected = [(p.id, build_input(p.prompt, p.response)) for p in FIXTURE_PAIRS]
    expected.append((str(text), build_input("line one\nline two")))
    assert [(r["id"], r["input"]) for r in records] == expected
    assert "guardcli: 7 inputs, 0 skipped (dry run)" in result.stderr


def test_many_bad_lines_give_a_few_lines_and_a_count_per_file(tmp_path):
    """96 prompt-less lines are four stderr lines per file, -q or not; the summary counts all."""
    folder = tmp_path / "logs"
    folder.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        write_jsonl(folder / name, [{"id": f"{name}{n}", "response": "r"} for n in range(48)])
    write_jsonl(folder / "ok.jsonl", [pair_record(FIXTURE_PAIRS[0])])
    for quiet in ((), ("-q",)):
        result = invoke("scan", "--dry-run", str(folder), *quiet)
        assert result.exit_code == 0, result.stderr
        lines = result.stderr.splitlines()
        for name in ("a.jsonl", "b.jsonl"):
            shown = [
                line for line in lines if line.startswith(f"guardcli: skipped {folder / name}:")
            ]
            assert len(shown) == 3, result.stderr
            assert f"guardcli: ... 45 more lines skipped in {folder / name}" in lines
        assert len(lines) == 9 - len(quiet), result.stderr  # + "1 input, 96 skipped"
    assert lines[-1] == "guardcli: ... 45 more lines skipped in " + str(folder / "b.jsonl")
    assert (
        "guardcli: 1 input, 96 skipped (dry run)" in invoke("scan", "--dry-run", str(folder)).stderr
    )


def test_dry_run_strict_and_output(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(pair_record(FIXTURE_PAIRS[0])) + "\n{oops\n", encoding="utf-8")
    loose = invoke("scan", "--dry-run", str(data))
    assert loose.exit_code == 0
    assert len(jsonl_records(loose.stdout)) == 1
    assert f"skipped {data}:2: invalid JSON" in loose.stderr
    assert invoke("scan", "--dry-run", "--strict", str(data)).exit_code == 2
    out = tmp_path / "inputs.jsonl"
    written = invoke("scan", "--dry-run", str(data), "-o", str(out))
    assert written.exit_code == 0 and written.stdout == ""
    assert jsonl_records(out.read_text(encoding="utf-8")) == jsonl_records(loose.stdout)
    assert invoke("scan", "--dry-run", str(data), "-o", str(out)).exit_code == 2  # no clobber


@pytest.mark.shared
def test_dry_run_reproduces_every_teacher_prompt(shared_dir, tmp_path):
    teacher = sorted((shared_dir / "data" / "guardreasoner" / "teacher" / "1B").glob("*.jsonl"))
    assert teacher, "no 1B teacher files under ../shared"
    originals: list[tuple[str, str]] = []
    with open(tmp_path / "pairs.jsonl", "w", encoding="utf-8") as out:
        for path in teacher:
            for number, line in enumerate(path.open(encoding="utf-8"), 1):
                original = json.loads(line)["prompt"]
                parts = split_input(original)
                assert parts is not None, f"{path}:{number}"
                ident = f"{path.stem}:{number}"
                record = {"id": ident, "prompt": parts[0], "response": parts[1]}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                originals.append((ident, original))
    result = invoke("scan", "--dry-run", str(tmp_path / "pairs.jsonl"))
    assert result.exit_code == 0, result.stderr
    # Split the way the strictest reader would: U+2028 and friends must not break a line.
    lines = result.stdout.splitlines()
    assert len(lines) == len(originals) > 2000
    for line, (ident, original) in zip(lines, originals, strict=True):
        record = json.loads(line)
        assert record["id"] == ident
        assert record["input"].encode("utf-8") == original.encode("utf-8"), ident


# ---- scanning a folder: the "done means" ------------------------------------------


@pytest.fixture
def mixed(tmp_path) -> tuple[Path, list[tuple[str, object]]]:
    """A folder of every input kind holding the fixture pairs, plus one binary file and one
    malformed JSONL line; returns it with the (id, pair) expected in scan order."""
    root = tmp_path / "inbox"
    root.mkdir()
    (root / "blob.bin").write_bytes(b"\x7fELF\x00\x01\x02binary\x00")
    poison, grandma, egg, kill = (
        PAIRS[i] for i in ("poison-dog", "grandma-pin", "boiled-egg", "kill-process")
    )
    (root / "chats.jsonl").write_text(
        json.dumps(pair_record(poison))
        + "\n"
        + '{"id": "broken", "prompt": \n'
        + json.dumps(pair_record(grandma))
        + "\n",
        encoding="utf-8",
    )
    (root / "fake-id.txt").write_text(PAIRS["fake-id"].prompt + "\n", encoding="utf-8")
    with open(root / "pairs.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt", "response"])
        for pair in (egg, kill):
            writer.writerow([pair.id, pair.prompt, pair.response])
    (root / "puppy-name.md").write_text(PAIRS["puppy-name"].prompt + "\n", encoding="utf-8")
    expected = [
        ("poison-dog", poison),
        ("grandma-pin", grandma),
        (str(root / "fake-id.txt"), PAIRS["fake-id"]),
        ("boiled-egg", egg),
        ("kill-process", kill),
        (str(root / "puppy-name.md"), PAIRS["puppy-name"]),
    ]
    return root, expected


@pytest.mark.slow
def test_scan_folder_done_means(mixed, fixture_bundle):
    root, expected = mixed
    proc = cli("scan", str(root), "--model", str(fixture_bundle), *GEN)
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1, stderr  # something is flagged
    records = jsonl_records(stdout)
    assert [r["id"] for r in records] == [ident for ident, _ in expected]
    for record, (_ident, pair) in zip(records, expected, strict=True):
        assert list(record) == list(FIELDS)
        assert record_labels(record) == labels(pair), record["id"]
        assert record["status"] == "ok"
        assert record["flagged"] is harmful(pair)
        assert record["truncated"] is False
    assert records[1]["source"] == f"{root / 'chats.jsonl'}:3"
    assert records[3]["source"] == f"{root / 'pairs.csv'}:2"
    # Each bad input: one line, naming the file (and the line for JSONL).
    assert all(line.startswith("guardcli: ") for line in stderr.splitlines())
    skipped = [line for line in stderr.splitlines() if line.startswith("guardcli: skipped")]
    assert len(skipped) == 2
    assert skipped[0].startswith(f"guardcli: skipped {root / 'blob.bin'}: binary file")
    assert skipped[1].startswith(f"guardcli: skipped {root / 'chats.jsonl'}:2: invalid JSON")
    assert summary_of(stderr) == {
        "scanned": 6,
        "flagged": 3,
        "request": 3,
        "response": 1,
        "unparsed": 0,
        "injected": 0,
        "skipped": 2,
        "truncated": 0,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "code"),
    [
        (["--fail-on", "none"], 0),
        (["--fail-on", "response"], 1),
        (["--fail-on", "request"], 1),
        (["--strict"], 2),
        (["--strict", "--fail-on", "none"], 2),
    ],
)
def test_scan_folder_exit_codes(mixed, fixture_bundle, options, code):
    root, expected = mixed
    result = invoke("scan", str(root), "--model", str(fixture_bundle), *GEN, *options)
    assert result.exit_code == code, result.stderr
    records = jsonl_records(result.stdout)
    assert [record_labels(r) for r in records] == [labels(pair) for _, pair in expected]
    fail_on = options[options.index("--fail-on") + 1] if "--fail-on" in options else "any"
    assert summary_of(result.stderr)["flagged"] == {"none": 0, "response": 1}.get(fail_on, 3)


@pytest.mark.slow
def test_nothing_flagged_exits_0(mixed, fixture_bundle):
    root, _ = mixed
    result = invoke("scan", str(root / "pairs.csv"), "--model", str(fixture_bundle), *GEN)
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in jsonl_records(result.stdout)] == ["boiled-egg", "kill-process"]


@pytest.mark.slow
def test_quiet_prints_no_summary(mixed, fixture_bundle):
    root, _ = mixed
    result = invoke("scan", str(root / "pairs.csv"), "-q", "--model", str(fixture_bundle), *GEN)
    assert result.exit_code == 0
    assert not SUMMARY.search(result.stderr)
    assert len(jsonl_records(result.stdout)) == 2


# ---- stdin ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stdin", "options", "expected"),
    [
        (PAIRS["fake-id"].prompt + "\n", [], [("<stdin>", PAIRS["fake-id"])]),
        (
            "".join(p.prompt + "\n\n" for p in PROMPT_ONLY),
            ["--lines"],
            [("<stdin>:1", PROMPT_ONLY[0]), ("<stdin>:3", PROMPT_ONLY[1])],
        ),
        (
            "".join(json.dumps(pair_record(p)) + "\n" for p in WITH_RESPONSE),
            [],
            [(p.id, p) for p in WITH_RESPONSE],
        ),
    ],
    ids=["text", "lines", "jsonl"],
)
def test_scan_stdin(fixture_bundle, stdin, options, expected):
    proc = cli("scan", "-", "--model", str(fixture_bundle), *GEN, *options, stdin=stdin)
    stderr = proc.stderr.decode()
    assert proc.returncode == (1 if any(harmful(p) for _, p in expected) else 0), stderr
    records = jsonl_records(proc.stdout.decode())
    assert [(r["id"], record_labels(r)) for r in records] == [(i, labels(p)) for i, p in expected]
    assert summary_of(stderr)["scanned"] == len(expected)


def _read_line(stream, timeout: float) -> bytes:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return stream.readline()


@pytest.mark.slow
def test_live_stdin_is_judged_line_by_line(fixture_bundle):
    """``tail -f log | guardcli scan - --lines``: each verdict comes out while stdin is
    still open, not after EOF (and not after 8 KiB or a batch of 8 has piled up)."""
    first, second = PROMPT_ONLY
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "guardcli",
            "scan",
            "-",
            "--lines",
            "--model",
            str(fixture_bundle),
            *GEN,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ},
    )
    try:
        proc.stdin.write(first.prompt.encode() + b"\n")
        proc.stdin.flush()
        record = json.loads(_read_line(proc.stdout, 60))
        assert (record["id"], record_labels(record)) == ("<stdin>:1", labels(first))
        assert proc.poll() is None  # still waiting for more input
        proc.stdin.write(second.prompt.encode() + b"\n")
        proc.stdin.flush()
        record = json.loads(_read_line(proc.stdout, 60))
        assert (record["id"], record_labels(record)) == ("<stdin>:2", labels(second))
        proc.stdin.close()
        assert proc.wait(timeout=60) == 1  # fake-id is harmful
        assert proc.stdout.read() == b""
        assert summary_of(proc.stderr.read().decode())["scanned"] == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# ---- usage errors --------------------------------------------------------------------------


def test_missing_path_is_one_line_exit_2(tmp_path):
    proc = cli("scan", str(tmp_path / "nope.jsonl"), env=no_model_env())
    assert proc.returncode == 2
    assert proc.stdout == b""
    stderr = proc.stderr.decode()
    assert (
        stderr == f"guardcli: error: {tmp_path / 'nope.jsonl'}: no such file or directory"
        " - check the path (use - for stdin)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "-", "--stdin-format", "xml"],
        ["scan", "-", "--format", "yaml"],
        ["scan", "-", "-", "--dry-run"],
        ["scan", "-", "--batch-size", "0"],
        ["classify"],
        ["scan", "-", "--mode", "quick"],
        ["scan", "-", "--mode", "cascade", "--band", "0.9,0.1"],
        ["classify", "-p", "hi", "--band", "low,high"],
    ],
    ids=[
        "stdin-format",
        "format",
        "stdin-twice",
        "batch-size",
        "no-prompt",
        "mode",
        "band",
        "band-text",
    ],  # fmt: skip
)
def test_usage_errors_exit_2(args):
    result = invoke(*args, input="hello\n", env=no_model_env())
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
