"""The --fail-on gate: which verdicts fail a run."""

from __future__ import annotations

import pytest

from guardcli.core.gate import flagged
from guardcli.core.parse import parse
from guardcli.core.records import Label
from guardcli.errors import UsageError


@pytest.mark.parametrize(
    ("request_label", "response_label", "fail_on", "expected"),
    [
        ("harmful", "harmful", "any", True),
        ("harmful", "unharmful", "any", True),
        ("unharmful", "harmful", "any", True),
        ("unharmful", "unharmful", "any", False),
        ("harmful", "unharmful", "request", True),
        ("unharmful", "harmful", "request", False),
        ("harmful", "unharmful", "response", False),
        ("unharmful", "harmful", "response", True),
        ("harmful", "harmful", "none", False),
    ],
)
def test_flagged(request_label, response_label, fail_on, expected):
    verdict = parse(
        f"Answers: \nRequest: {request_label}\nCompletion: compliance\nResponse: {response_label}\n"
    )
    assert flagged(verdict, fail_on) is expected


def test_unparsed_is_not_flagged():
    verdict = parse("the model rambled and never answered")
    assert verdict.request is Label.UNKNOWN
    assert not any(flagged(verdict, mode) for mode in ("request", "response", "any", "none"))
    with pytest.raises(UsageError):
        flagged(verdict, "all")
