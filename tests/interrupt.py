"""Ctrl-C a real guardcli process once it has written its first result line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def interrupt_after_first_line(args: list[str], written: Path) -> tuple[int, bytes, bytes]:
    """Run ``python -m guardcli ARGS``, send SIGINT as soon as ``written`` holds a whole line,
    and return (exit code, stdout, stderr): what a user pressing Ctrl-C mid-batch gets."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "guardcli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        # A runner started in the background (``cmd &``) hands its children SIGINT ignored,
        # and Python then never installs its KeyboardInterrupt handler: give the child the
        # default disposition a user's terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not (written.exists() and b"\n" in written.read_bytes()):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no result written within 60s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr
