"""The ``guardcli`` command line end to end, over the fixture bundle (export/fixture.py), whose
model writes known GuardReasoner traces: so labels, exit codes and what lands on stdout versus
stderr are checked against what the model really said.

Most tests run in-process through typer's CliRunner (stdout and stderr captured separately).
A real subprocess is used only where the process itself is the point: stdin pipes, the exit
status the shell sees, stdout purity, SIGINT.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from export.fixture import FIXTURE_PAIRS
from guardcli.cli import app
from guardcli.core.prompt import build_input, split_input
from guardcli.core.records import Label
from guardcli.io.outputs import FIELDS
from tests.interrupt import interrupt_after_first_line

REPO = Path(__file__).resolve().parents[1]
PAIRS = {pair.id: pair for pair in FIXTURE_PAIRS}
PROMPT_ONLY = [pair for pair in FIXTURE_PAIRS if pair.response is None]
WITH_RESPONSE = [pair for pair in FIXTURE_PAIRS if pair.response is not None]
# The fixture model has a 1024-token context: the default budget of 1024 new tokens would
# leave no room for the input.
GEN = ["--max-new-tokens", "256", "--device", "cpu"]
# A wide, colourless "terminal" so tables are neither cut nor styled.
ENV = {"COLUMNS": "200", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}
SUMMARY = re.compile(
    r"^guardcli: (?P<scanned>\d+) scanned, (?P<flagged>\d+) flagged "
    r"\(request (?P<request>\d+), response (?P<response>\d+)\), (?P<unparsed>\d+) unparsed, "
    r"(?P<skipped>\d+) skipped, (?P<truncated>\d+) truncated(?:, \d+ already done)? in [\d.]+s",
    re.MULTILINE,
)


def labels(pair) -> tuple[str, str, str]:
    return tuple(label.value for label in pair.labels)


def record_labels(record: dict) -> tuple[str, str, str]:
    return record["request"], record["completion"], record["response"]


def harmful(pair) -> bool:
    return Label.HARMFUL in (pair.request, pair.response_label)


def invoke(*args: str, input: str | bytes | None = None, env: dict | None = None):
    result = CliRunner().invoke(app, list(args), input=input, env={**ENV, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug, never an expected outcome
    return result


def cli(*args: str, stdin: str | bytes = b"", env: dict | None = None, timeout: float = 60):
    """``python -m guardcli ARGS`` as a shell would run it (same XDG dirs as the test)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    full_env = {**os.environ, "COLUMNS": "200", "FORCE_COLOR": None, **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-m", "guardcli", *args],
        input=data,
        capture_output=True,
        cwd=REPO,
        env=full_env,
        timeout=timeout,
    )


def jsonl_records(stdout: str) -> list[dict]:
    """Every stdout line must be one JSON object: stdout is data only."""
    assert stdout.endswith("\n") or not stdout
    records = [json.loads(line) for line in stdout.split("\n")[:-1]]
    assert all(isinstance(record, dict) for record in records)
    return records


def summary_of(stderr: str) -> dict[str, int]:
    [match] = SUMMARY.finditer(stderr)
    return {key: int(value) for key, value in match.groupdict().items()}


def pair_record(pair, **extra) -> dict:
    return {"id": pair.id, "prompt": pair.prompt, "response": pair.response, **extra}


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def install(fixture_bundle: Path, name: str) -> Path:
    """Copy the bundle where ``guardcli models`` looks (conftest points XDG at a temp dir)."""
    target = Path(os.environ["XDG_CACHE_HOME"]) / "guardcli" / "models" / name
    shutil.copytree(fixture_bundle, target)
    return target


def no_model_env() -> dict:
    """Nothing installed and nothing configured: any model lookup must fail."""
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "guardcli" / "models").exists()
    return {"GUARDCLI_MODEL": None}


# ---- --dry-run -----------------------------------------------------------------------------


def test_dry_run_prints_exact_inputs_and_loads_no_model(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair_record(p) for p in FIXTURE_PAIRS])
    text = tmp_path / "note.txt"
    text.write_text("line one\nline two\n", encoding="utf-8")
    # A model that cannot resolve: any attempt to load one would exit 3.
    result = invoke("scan", "--dry-run", str(data), str(text), env={"GUARDCLI_MODEL": "/nope"})
    assert result.exit_code == 0, result.stderr
    records = jsonl_records(result.stdout)
    assert [set(r) for r in records] == [{"id", "input"}] * (len(FIXTURE_PAIRS) + 1)
    expected = [(p.id, build_input(p.prompt, p.response)) for p in FIXTURE_PAIRS]
    expected.append((str(text), build_input("line one\nline two")))
    assert [(r["id"], r["input"]) for r in records] == expected
    assert "7 inputs, 0 skipped (dry run)" in result.stderr


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
    assert summary_of(resumed.stderr)["scanned"] == 5
    assert "7 already done" in resumed.stderr
    got = jsonl_records(killed.read_text(encoding="utf-8"))
    want = jsonl_records("".join(clean_lines))
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in want)  # each id once
    assert [_comparable(r) for r in got] == [_comparable(r) for r in want]

    # Resuming a finished batch redoes nothing, and still reports what the batch flagged.
    finished = killed.read_bytes()
    again = invoke("scan", str(corpus), "-o", str(killed), "--resume", *model)
    assert again.exit_code == 1, again.stderr
    assert summary_of(again.stderr) == {
        "scanned": 0,
        "flagged": 6,
        "request": 6,
        "response": 2,
        "unparsed": 0,
        "skipped": 0,
        "truncated": 0,
    }
    assert "12 already done" in again.stderr
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
    assert summary_of(resumed.stderr)["scanned"] == len(FIXTURE_PAIRS) - len(kept)
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
    cases = {
        ("--resume",): "--resume needs --output FILE",
        ("-o", str(existing)): "already exists",
        ("-o", str(tmp_path / "out.csv"), "--resume"): "only with JSONL",
        ("-o", str(corrupt), "--resume"): f"cannot resume: {corrupt}:2",
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


# ---- classify ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("pair", FIXTURE_PAIRS, ids=[p.id for p in FIXTURE_PAIRS])
def test_classify_pair(fixture_bundle, pair):
    args = ["classify", "--prompt", pair.prompt, "--model", str(fixture_bundle), *GEN]
    if pair.response is not None:
        args += ["--response", pair.response]
    result = invoke(*args)
    assert result.exit_code == (1 if harmful(pair) else 0), result.stderr
    [record] = jsonl_records(result.stdout)
    assert record_labels(record) == labels(pair)
    assert record["source"] == "--prompt"
    assert "reasoning" not in record
    assert "guardcli: model guardcli-fixture (fp32)" in result.stderr


@pytest.mark.slow
def test_classify_reasoning_json_and_table(fixture_bundle):
    pair = PAIRS["poison-dog"]
    args = ["classify", "-p", pair.prompt, "-r", pair.response, "-m", str(fixture_bundle), *GEN]
    as_json = invoke(*args, "--reasoning", "-f", "json")
    assert as_json.exit_code == 1
    [record] = json.loads(as_json.stdout)
    assert record["reasoning"]["text"] == pair.trace
    tasks = record["reasoning"]["tasks"]
    assert [t["task"] for t in tasks] == [1, 2, 3]
    assert tasks[1]["conclusion"] == "The AI assistant's response is a refusal."
    assert all(t["steps"] for t in tasks)

    table = invoke(*args, "--reasoning", "-f", "table")
    assert table.exit_code == 1
    for label in labels(pair):
        assert f" {label} " in table.stdout
    assert "## Conclusion for Task 2: The AI assistant's response is a refusal." in table.stdout
    assert "\x1b" not in table.stdout


@pytest.mark.slow
def test_classify_warns_when_the_input_is_cut(fixture_bundle):
    pair = PAIRS["puppy-name"]
    result = invoke(
        "classify",
        "-p",
        pair.prompt,
        "-m",
        str(fixture_bundle),
        *GEN,
        "--max-input-tokens",
        "16",
        "--fail-on",
        "none",
    )
    assert result.exit_code == 0
    [record] = jsonl_records(result.stdout)
    assert record["truncated"] is True and record["prompt_tokens"] <= 16
    assert "warning: the input was truncated" in result.stderr


# ---- output formats ------------------------------------------------------------------------


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


# ---- models --------------------------------------------------------------------------------


@pytest.mark.slow
def test_models_commands(fixture_bundle):
    installed = install(fixture_bundle, "fixture")
    listed = invoke("models", "list")
    assert listed.exit_code == 0
    assert listed.stdout == f"fixture\tfp32\tcpu\t{installed}\n"
    assert "no default model" in listed.stderr

    assert invoke("models", "path").exit_code == 3  # installed is not the same as default
    set_default = invoke("models", "default", "fixture")
    assert set_default.exit_code == 0 and set_default.stdout == ""
    assert "config.json" in set_default.stderr

    assert f"default model: {installed} [config]" in invoke("models", "list").stderr
    path = invoke("models", "path")
    assert (path.exit_code, path.stdout) == (0, f"{installed}\n")

    info = invoke("models", "info")
    assert info.exit_code == 0
    manifest = json.loads(info.stdout)
    assert manifest["name"] == "guardcli-fixture"
    assert manifest["precision"] == "fp32"
    assert manifest["resolved_from"] == "config"
    assert manifest["path"] == str(installed)
    files = sorted(p for p in installed.iterdir() if p.name != "guardcli.json")
    assert manifest["files"] == len(files)

    verify = invoke("models", "verify", "fixture", "--full")
    assert (verify.exit_code, verify.stdout) == (0, f"{installed}: OK ({len(files)} files)\n")

    assert invoke("models", "default").exit_code == 2  # neither a model nor --unset
    assert invoke("models", "default", "--unset").exit_code == 0
    unset = invoke("models", "path")
    assert unset.exit_code == 3 and unset.stdout == ""


@pytest.mark.slow
def test_tampered_bundle_is_refused(fixture_bundle, tmp_path):
    tampered = install(fixture_bundle, "tampered")
    with open(tampered / "tokenizer_config.json", "ab") as handle:
        handle.write(b" ")
    verify = invoke("models", "verify", "tampered")
    assert verify.exit_code == 3
    assert verify.stdout == ""
    assert f"{tampered / 'tokenizer_config.json'}: modified" in verify.stderr
    assert "1 of" in verify.stderr and "fail verification" in verify.stderr

    pair = PAIRS["boiled-egg"]
    data = write_jsonl(tmp_path / "egg.jsonl", [pair_record(pair)])
    refused = invoke("scan", str(data), "--model", "tampered", *GEN)
    assert refused.exit_code == 3 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert "tokenizer_config.json: modified" in refused.stderr and "--no-verify" in refused.stderr

    forced = invoke("scan", str(data), "--model", "tampered", "--no-verify", *GEN)
    assert forced.exit_code == 0, forced.stderr
    [record] = jsonl_records(forced.stdout)
    assert record_labels(record) == labels(pair)


def test_no_model_at_all(tmp_path):
    env = no_model_env()
    result = invoke("classify", "--prompt", "hello", env=env)
    assert result.exit_code == 3
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("guardcli: error: no model found")
    assert "python -m export.convert" in line and "--model DIR" in line
    listed = invoke("models", "list", env=env)
    assert listed.exit_code == 0 and listed.stdout == ""
    assert "no models installed" in listed.stderr


@pytest.mark.slow
def test_model_resolution_order(fixture_bundle, tmp_path):
    alpha, beta = install(fixture_bundle, "alpha"), install(fixture_bundle, "beta")
    assert invoke("models", "default", "alpha").exit_code == 0

    def resolved(*args: str, env: dict | None = None) -> tuple[str, str]:
        info = json.loads(invoke("models", "info", *args, env=env).stdout)
        return info["path"], info["resolved_from"]

    assert resolved() == (str(alpha), "config")
    assert resolved(env={"GUARDCLI_MODEL": "beta"}) == (str(beta), "$GUARDCLI_MODEL")
    assert resolved("alpha", env={"GUARDCLI_MODEL": "beta"}) == (str(alpha), "--model")

    data = write_jsonl(tmp_path / "egg.jsonl", [pair_record(PAIRS["boiled-egg"])])
    scan = invoke("scan", str(data), "--model", str(alpha), *GEN, env={"GUARDCLI_MODEL": "beta"})
    assert scan.exit_code == 0
    assert f"from {alpha} [--model]" in scan.stderr
    scan = invoke("scan", str(data), *GEN, env={"GUARDCLI_MODEL": "beta"})
    assert f"from {beta} [$GUARDCLI_MODEL]" in scan.stderr
    missing = invoke("scan", str(data), *GEN, env={"GUARDCLI_MODEL": "gamma"})
    assert missing.exit_code == 3 and "'gamma'" in missing.stderr


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
