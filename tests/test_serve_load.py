"""scripts/load.py drives a real server and reports every request it sent. No timing is
asserted: only that the table accounts for each request and the server shut down cleanly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli_support import REPO

pytestmark = pytest.mark.slow


def test_load_script_reports_every_request(fixture_bundle, tmp_path):
    record = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "load.py"), "--model", str(fixture_bundle),
         "--modes", "fast", "--requests", "6", "--concurrency", "1", "3", "--warmup", "1",
         "--server-arg=--max-new-tokens", "--server-arg=256", "--server-arg=--threads",
         "--server-arg=1", "--json", str(record), "--server-log", str(tmp_path / "server.log")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| fast |")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "3"]
    assert all("| 200: 6 | 0 |" in row for row in rows)
    levels = json.loads(record.read_text())["levels"]
    assert [len(level["latencies_ms"]) for level in levels] == [6, 6]
    assert all(level["peak_rss_mib"] > 0 for level in levels)
    assert "SIGTERM: draining" in (tmp_path / "server.log").read_text()
