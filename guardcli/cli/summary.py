"""The end of a ``guardcli scan`` run: the counts behind its summary line and its exit code."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from guardcli.cli.console import SkipReporter, plural, say
from guardcli.core.gate import fails, injection_fails
from guardcli.errors import ExitCode
from guardcli.io.shard import Shard


@dataclass
class ScanSummary:
    """The counts behind the summary line and the exit code."""

    fail_on: str = "any"
    allow_injection: bool = False
    scanned: int = 0  # the batch's samples: judged now, and resumed ones already judged
    flagged_request: int = 0
    flagged_response: int = 0
    flagged: int = 0
    unparsed: int = 0
    injected: int = 0  # inputs carrying template markers (guardcli.core.injection)
    truncated: int = 0
    skipped: int = 0
    resumed: int = 0  # of scanned, those already in the resumed --output
    shard: Shard | None = None
    other_shards: int = 0  # samples read but left to the other shards
    windowed: int = 0  # long inputs judged in windows (--long chunk)
    looped: int = 0  # generations stopped in a cycle of repeated tokens (finish "loop")
    started: float = field(default_factory=time.perf_counter)
    skips: SkipReporter = field(default_factory=SkipReporter)

    def count(
        self, *, request: bool, response: bool, parsed: bool, injection: Sequence[str] = ()
    ) -> None:
        """One judged sample: whether its request and its response were judged harmful, and
        the template markers its text carried."""
        self.flagged_request += request
        self.flagged_response += response
        self.flagged += fails(self.fail_on, request=request, response=response)
        self.unparsed += not parsed
        self.injected += bool(injection)

    def count_record(self, record: dict) -> None:
        """One sample judged earlier, read back from its output record (a resumed --output,
        or a Ray actor's line): counted as if judged now."""
        self.count(
            request=record.get("request") == "harmful",
            response=record.get("response") == "harmful",
            parsed=record.get("status") != "failed",
            injection=record.get("injection") or (),
        )

    def finished(self, finish: str | None) -> None:
        """One judged sample's ``finish``: a loop is counted, since its verdict comes from a
        generation cut short (usually unparsed, so it fails the gate)."""
        self.looped += finish == "loop"

    def line(self) -> str:
        took = time.perf_counter() - self.started
        scanned = f"{self.scanned} scanned"
        if self.resumed:
            scanned += f" ({self.scanned - self.resumed} now, {self.resumed} already done)"
        parts = [
            scanned,
            f"{self.flagged} flagged (request {self.flagged_request}, "
            f"response {self.flagged_response})",
            f"{self.unparsed} unparsed",
            f"{self.injected} with injection markers",
            f"{self.skipped} skipped",
            f"{self.truncated} truncated",
        ]
        if self.looped:
            parts.append(f"{self.looped} looped")
        if self.shard is not None:
            parts.append(f"{self.other_shards} in other shards (this is shard {self.shard})")
        return "guardcli: " + ", ".join(parts) + f" in {took:.1f}s"

    def report(self, *, quiet: bool, note: str = "") -> None:
        """The end of a run on stderr: what the skip lines left uncounted, the truncation
        warning, then the summary line (which --quiet drops unless ``note`` explains an
        early end)."""
        self.skips.finish()
        if self.truncated:
            say(
                f"guardcli: warning: {plural(self.truncated, 'input')} truncated to fit the context"
            )
        if self.injected:
            say(
                f"guardcli: warning: {plural(self.injected, 'input')} with text shaped like the "
                "guard's own template (see the injection field)"
                + ("" if self.allow_injection else "; they fail the gate (--allow-injection)")
            )
        if self.looped:
            say(
                f"guardcli: warning: {plural(self.looped, 'generation')} stopped repeating "
                "itself (finish: loop); their verdicts come from the text written until then"
            )
        if self.windowed:
            inputs = plural(self.windowed, "long input")
            say(f"guardcli: {inputs} judged in windows (--long chunk)")
        if note or not quiet:
            say(self.line() + note)

    def exit_code(self, strict: bool) -> ExitCode:
        """2 for skips under --strict; else 1 when something failed the gate. A sample whose
        output gave no verdict fails it too (unless --fail-on none): a guard that could not
        judge must not let a CI gate pass, so a broken model reads as a failure, never as
        "nothing flagged". So does an input carrying template markers, unless
        --allow-injection: text that imitates the guard's verdict is an attack on it."""
        if strict and self.skipped:
            return ExitCode.USAGE
        gate = (
            self.flagged
            or (self.unparsed and self.fail_on != "none")
            or injection_fails(self.injected, allow_injection=self.allow_injection)
        )
        return ExitCode.FLAGGED if gate else ExitCode.OK
