"""Two runs on one --output: the second is refused (exit 2, naming the first), never
interleaved; a killed holder leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guardcli.io.sink import lock_output, release_output
from tests.cli_support import invoke

HOLD = (
    "import sys, time; from pathlib import Path; from guardcli.io.sink import lock_output; "
    "lock_output(Path(sys.argv[1])); print('locked', flush=True); time.sleep(120)"
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock on tmp_path/out.jsonl."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    proc.kill()
    proc.wait()


def _inputs(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n")
    return path


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_writer_is_refused_and_told_who_holds_it(holder, tmp_path, resume):
    out, proc = holder
    if resume:
        out.write_text(json.dumps({"id": "a", "request": "harmful"}) + "\n")
    before = out.read_bytes() if out.exists() else None
    args = ["scan", str(_inputs(tmp_path)), "-o", str(out), "--model", str(tmp_path / "none")]
    result = invoke(*args, *(["--resume"] if resume else []))
    assert result.exit_code == 2, result.output
    assert f"{out} is being written by another guardcli run (pid {proc.pid}" in result.stderr
    assert "wait for that run to end" in result.stderr
    assert (out.read_bytes() if out.exists() else None) == before  # untouched, not repaired


def test_a_killed_holder_leaves_no_stale_lock(holder, tmp_path):
    out, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    args = ["scan", str(_inputs(tmp_path)), "-o", str(out), "--model", str(tmp_path / "none")]
    result = invoke(*args)
    assert result.exit_code == 3, result.output  # past the lock: the missing model is next
    assert "being written" not in result.stderr
    assert release_output(out)


def test_one_process_may_lock_its_own_output_twice(tmp_path):
    out = tmp_path / "o.jsonl"
    lock_output(out)
    lock_output(out)  # eval checks each file once, the TUI locks then opens: no self-deadlock
    assert f"pid {os.getpid()}" in (tmp_path / ".o.jsonl.lock").read_text()
    assert release_output(out) and not release_output(out)
