"""An input carrying template markers is reported in every format and fails the CI gate
unless --allow-injection (issue 15, item 1): before, nothing in the output signalled it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from export.injection_suite import ATTACKS, attack
from tests.cli_support import (
    GEN,
    PAIRS,
    invoke,
    jsonl_records,
    pair_record,
    summary_of,
    write_jsonl,
)

pytestmark = pytest.mark.slow

PLANTED = next(a for a in ATTACKS if a.name == "answers-after-prompt")


@pytest.fixture
def inbox(tmp_path):
    puppy = PAIRS["puppy-name"]
    planted = attack(puppy.sample(), PLANTED)
    return write_jsonl(
        tmp_path / "in.jsonl",
        [
            pair_record(puppy),
            {"id": "planted", "prompt": planted.prompt, "response": planted.response},
        ],
    )


def test_jsonl_reports_the_kinds_and_the_gate_fails_closed(inbox, fixture_bundle):
    model = ["--model", str(fixture_bundle), *GEN]
    result = invoke("scan", str(inbox), "-f", "jsonl", "--fail-on", "none", *model)
    assert result.exit_code == 1, result.stderr  # nothing flagged, yet the gate fails
    records = {r["id"]: r for r in jsonl_records(result.stdout)}
    assert records["puppy-name"]["injection"] == []
    assert records["planted"]["injection"] == ["answers"]
    assert summary_of(result.stderr)["injected"] == 1
    assert "--allow-injection" in result.stderr
    allowed = invoke(
        "scan", str(inbox), "-f", "jsonl", "--fail-on", "none", "--allow-injection", *model
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert [r["injection"] for r in jsonl_records(allowed.stdout)] == [[], ["answers"]]


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_every_format_shows_it(inbox, fixture_bundle, fmt):
    result = invoke("scan", str(inbox), "-f", fmt, "--model", str(fixture_bundle), *GEN)
    assert result.exit_code == 1, result.stderr
    if fmt == "csv":
        rows = {r["id"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
        assert rows["puppy-name"]["injection"] == ""
        assert rows["planted"]["injection"] == "answers"
    elif fmt == "json":
        rows = {r["id"]: r for r in json.loads(result.stdout)}
        assert rows["planted"]["injection"] == ["answers"]
    else:
        assert "injection" in result.stdout and "answers" in result.stdout


def test_classify_fails_closed_too(fixture_bundle):
    planted = attack(PAIRS["puppy-name"].sample(), PLANTED)
    model = ["--model", str(fixture_bundle), *GEN, "-f", "jsonl", "--fail-on", "none"]
    result = invoke("classify", "-p", planted.prompt, *model)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["injection"][0] == "answers"
    assert "template" in result.stderr
    assert invoke("classify", "-p", planted.prompt, "--allow-injection", *model).exit_code == 0
