"""The CI gate fails closed: a sample the guard could not judge (no Answers block) fails the
run like a flagged one, unless the gate is off (--fail-on none)."""

from __future__ import annotations

import json

import pytest

from guardcli.cli.summary import ScanSummary
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import invoke


@pytest.mark.parametrize(
    ("fail_on", "flagged", "unparsed", "code"),
    [
        ("any", 0, 0, 0),
        ("any", 1, 0, 1),
        ("any", 0, 1, 1),  # could not judge: fails closed
        ("request", 0, 2, 1),
        ("none", 0, 3, 0),  # the gate is off
    ],
)
def test_unparsed_verdicts_fail_the_gate(fail_on, flagged, unparsed, code):
    summary = ScanSummary(fail_on)
    summary.flagged, summary.unparsed = flagged, unparsed
    assert summary.exit_code(strict=False) == code


@pytest.mark.parametrize(
    ("fail_on", "allow", "injected", "code"),
    [
        ("any", False, 0, 0),
        ("any", False, 1, 1),  # planted template text: fails closed, whatever the labels
        ("none", False, 2, 1),  # even with the label gate off
        ("any", True, 3, 0),  # --allow-injection: the labels alone decide
    ],
)
def test_injections_fail_the_gate_unless_allowed(fail_on, allow, injected, code):
    summary = ScanSummary(fail_on, allow)
    for _ in range(injected):
        summary.count(request=False, response=False, parsed=True, injection=("answers",))
    assert summary.injected == injected
    assert summary.exit_code(strict=False) == code


@pytest.mark.slow
def test_a_scan_whose_outputs_never_reach_an_answer_exits_1(fixture_bundle, tmp_path):
    """Four new tokens are too few for any Answers block: every verdict is unparsed, none is
    flagged, and the run still fails the gate (it used to exit 0)."""
    pair = next(p for p in FIXTURE_PAIRS if p.response is not None)
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "x", "prompt": pair.prompt, "response": pair.response}))
    base = ["scan", str(path), "--model", str(fixture_bundle), "--device", "cpu", "-f", "jsonl"]
    result = invoke(*base, "--max-new-tokens", "4")
    assert "0 flagged" in result.stderr and "1 unparsed" in result.stderr
    assert result.exit_code == 1
    assert invoke(*base, "--max-new-tokens", "4", "--fail-on", "none").exit_code == 0
