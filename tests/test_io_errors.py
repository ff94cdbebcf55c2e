"""Output failures have their own exit codes, never 1 ("flagged"): a full disk is one clear
line and exit 4; a reader that closes the pipe (| head) ends the run quietly with 141."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardcli.errors import ExitCode
from tests.cli_support import REPO

ENV = {**os.environ, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """Enough dry-run output (~1.5 MB) to overflow any pipe buffer."""
    path = tmp_path_factory.mktemp("io") / "many.jsonl"
    with path.open("w") as out:
        for i in range(3000):
            out.write(json.dumps({"id": str(i), "prompt": "hello world " * 20}) + "\n")
    return path


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_and_exit_4(many):
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "guardcli", "scan", str(many), "--dry-run"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=ENV,
            timeout=120,
        )
    assert proc.returncode == ExitCode.IO == 4
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "guardcli: error: cannot write the output (No space left on device); the results "
        "written before it are kept - free space or choose another --output"
    ]


def test_a_closed_pipe_ends_quietly(many):
    proc = subprocess.Popen(
        [sys.executable, "-m", "guardcli", "scan", str(many), "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=ENV,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -n 1` does after its line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == ExitCode.BROKEN_PIPE == 141
    assert json.loads(first)["id"] == "0"
    assert stderr == ""  # no traceback, no "Exception ignored", nothing
