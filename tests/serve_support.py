"""A real ``guardcli serve`` process on a free loopback port, for tests/test_serve_*.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.cli_support import REPO

# The fixture model's context is 1024 tokens (see tests/cli_support.GEN).
GEN = ["--max-new-tokens", "256", "--device", "cpu", "--threads", "1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start(bundle: Path, home: Path, *args: str, env: dict | None = None) -> Server:
    """Start the server and wait until /readyz says so (or fail with its stderr)."""
    port = free_port()
    log = home / f"serve-{port}.log"
    full_env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    if "GUARDCLI_API_KEY" not in (env or {}):
        full_env.pop("GUARDCLI_API_KEY", None)  # a developer's key must not switch auth on
    command = [sys.executable, "-m", "guardcli", "serve", "--model", str(bundle)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*command, "--port", str(port), *GEN, *args],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            cwd=REPO,
            env=full_env,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"guardcli serve exited {proc.returncode}: {server.stderr()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"guardcli serve never became ready: {server.stderr()}")


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events body."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], fields["data"]))
    return events
