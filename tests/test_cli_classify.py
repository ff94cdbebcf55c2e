"""``guardcli classify``: one prompt (and response) from the command line."""

from __future__ import annotations

import json

import pytest

from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import (
    GEN,
    PAIRS,
    harmful,
    invoke,
    jsonl_records,
    labels,
    record_labels,
)


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


@pytest.mark.slow
def test_no_telemetry_files_unless_asked(fixture_bundle):
    """onnxruntime's device id and event databases (under $XDG_CACHE_HOME/Microsoft) are not
    written: guardcli turns its telemetry off unless the user set ORT_DISABLE_TELEMETRY."""
    import os
    from pathlib import Path

    from tests.cli_support import cli

    trace = Path(os.environ["XDG_CACHE_HOME"]) / "Microsoft"
    args = ("classify", "-p", "hello", "-m", str(fixture_bundle), *GEN)
    done = cli(*args, env={"ORT_DISABLE_TELEMETRY": None})
    assert done.returncode in (0, 1), done.stderr
    assert not trace.exists(), sorted(p.name for p in trace.rglob("*"))
    asked = cli(*args, env={"ORT_DISABLE_TELEMETRY": "0"})
    assert asked.returncode in (0, 1), asked.stderr
    if not trace.exists():
        pytest.skip("this onnxruntime writes no telemetry files even when allowed")


def test_low_memory_is_said_on_stderr(fixture_bundle):
    pair = PAIRS["poison-dog"]
    args = ["classify", "-p", pair.prompt, "-r", pair.response, "-m", str(fixture_bundle), *GEN]
    plain, low = invoke(*args, "--reasoning"), invoke(*args, "--reasoning", "--low-memory")
    assert "memory-mapped" not in plain.stderr
    assert "weights memory-mapped (--low-memory)" in low.stderr
    [a], [b] = jsonl_records(plain.stdout), jsonl_records(low.stdout)
    del a["latency_ms"], b["latency_ms"]
    assert (low.exit_code, b) == (plain.exit_code, a)
