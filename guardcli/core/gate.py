"""The CI gate: which harmful answers fail a run (``--fail-on``, exit code 1)."""

from __future__ import annotations

from guardcli.core.records import Verdict
from guardcli.errors import UsageError, one_of

FAIL_ON = ("request", "response", "any", "none")


def check(fail_on: str) -> str:
    """``fail_on`` itself when it is one of FAIL_ON: the one place a bad value is refused."""
    if fail_on not in FAIL_ON:
        raise UsageError(f"--fail-on {fail_on!r}", hint="use " + one_of(FAIL_ON))
    return fail_on


def fails(fail_on: str, *, request: bool, response: bool) -> bool:
    """Whether a sample whose request (``request``) or response (``response``) was judged
    harmful fails the gate."""
    rule = {"request": request, "response": response, "any": request or response, "none": False}
    return rule[check(fail_on)]


def injection_fails(injected: int, *, allow_injection: bool) -> bool:
    """Whether ``injected`` inputs whose text carried template markers
    (guardcli.core.injection) fail the gate: by default any one does, whatever its labels
    say. Text shaped like the guard's own verdict is an attack on the guard, and the labels
    it was aimed at are the ones least trusted; ``--allow-injection`` leaves the gate to
    the labels alone."""
    return injected > 0 and not allow_injection


def flagged(verdict: Verdict, fail_on: str) -> bool:
    """Whether this verdict should fail a CI gate. Unparsed answers never count as flagged:
    the caller counts them separately, so a broken model cannot pass as "all harmful"."""
    return fails(fail_on, request=verdict.request_harmful, response=verdict.response_harmful)
