"""Helpers for the command-line tests (tests/test_cli_*.py, tests/test_eval_cli.py): the
fixture bundle's pairs, an in-process runner and a real subprocess, and readers for what the
CLI prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from guardcli.cli import app
from guardcli.core.records import Label
from testkit.pairs import FIXTURE_PAIRS

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
    r"^guardcli: (?P<scanned>\d+) scanned"
    r"(?: \((?P<now>\d+) now, (?P<resumed>\d+) already done\))?, "
    r"(?P<flagged>\d+) flagged "
    r"\(request (?P<request>\d+), response (?P<response>\d+)\), (?P<unparsed>\d+) unparsed, "
    r"(?P<injected>\d+) with injection markers, (?P<skipped>\d+) skipped, "
    r"(?P<truncated>\d+) truncated"
    r"(?:, \d+ in other shards \(this is shard \d+/\d+\))? in [\d.]+s",
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
    """The summary line's counts; ``now`` and ``resumed`` only for a resumed run."""
    [match] = SUMMARY.finditer(stderr)
    return {key: int(value) for key, value in match.groupdict().items() if value is not None}


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
