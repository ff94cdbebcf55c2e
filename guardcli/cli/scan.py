"""``guardcli scan``: judge every sample in files, folders or stdin, write verdicts as they
finish, and set the exit code (1 when anything is flagged, per --fail-on)."""

from __future__ import annotations

import itertools
import os
import re
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli.console import errors, progress, say, say_skip
from guardcli.cli.load import open_model
from guardcli.cli.options import (
    BAND,
    MAX_NEW,
    AllowInjectionOpt,
    BandOpt,
    BatchOpt,
    Device,
    DeviceOpt,
    ExplainOpt,
    FailOn,
    FailOnOpt,
    Format,
    FormatOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModelOptions,
    ModeOpt,
    NoVerifyOpt,
    QuietOpt,
    ReasoningOpt,
    RunMode,
    Split,
    ThreadsOpt,
    pick_format,
)
from guardcli.core.gate import fails, injection_fails
from guardcli.core.guard import DEFAULT_BATCH
from guardcli.core.records import Sample, Skip
from guardcli.errors import ExitCode, UsageError, one_of
from guardcli.io.options import STDIN_FORMATS, InputOptions
from guardcli.io.sink import check_output, open_output


@dataclass(frozen=True)
class ScanOptions:
    """Everything ``guardcli scan`` was told, made once from its command line."""

    paths: list[str]
    inputs: InputOptions
    model: ModelOptions
    fmt: Format | None = None  # None: from --output's suffix, or the terminal
    output: Path | None = None
    resume: bool = False
    reasoning: bool = False
    fail_on: str = "any"
    allow_injection: bool = False  # inputs with template markers fail the gate unless set
    strict: bool = False  # exit 2 when anything was skipped
    batch_size: int | None = None  # None: DEFAULT_BATCH, or 1 for live stdin
    dry_run: bool = False
    quiet: bool = False


@dataclass
class ScanSummary:
    """The counts behind the summary line and the exit code."""

    fail_on: str = "any"
    allow_injection: bool = False
    scanned: int = 0
    flagged_request: int = 0
    flagged_response: int = 0
    flagged: int = 0
    unparsed: int = 0
    injected: int = 0  # inputs carrying template markers (guardcli.core.injection)
    truncated: int = 0
    skipped: int = 0
    resumed: int = 0
    started: float = field(default_factory=time.perf_counter)

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

    def line(self) -> str:
        took = time.perf_counter() - self.started
        parts = [
            f"{self.scanned} scanned",
            f"{self.flagged} flagged (request {self.flagged_request}, "
            f"response {self.flagged_response})",
            f"{self.unparsed} unparsed",
            f"{self.injected} with injection markers",
            f"{self.skipped} skipped",
            f"{self.truncated} truncated",
        ]
        if self.resumed:
            parts.append(f"{self.resumed} already done")
        return "guardcli: " + ", ".join(parts) + f" in {took:.1f}s"

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


def scan(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")],
    model: ModelOpt = None,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = BAND,
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    no_verify: NoVerifyOpt = False,
    fmt: FormatOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write results here as they finish.", show_default=False
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip ids already in --output (JSONL).")
    ] = False,
    reasoning: ReasoningOpt = False,
    fail_on: FailOnOpt = FailOn.any,
    allow_injection: AllowInjectionOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 2 if any input was skipped.")
    ] = False,
    include: Annotated[
        list[str] | None, typer.Option(help="Only files matching this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Skip files matching this glob (repeatable).")
    ] = None,
    split: Annotated[
        Split, typer.Option(help="Text files: one sample per file, line or paragraph.")
    ] = Split.none,
    lines: Annotated[bool, typer.Option("--lines", help="Same as --split lines.")] = False,
    prompt_field: Annotated[
        str, typer.Option(help="JSON/CSV field holding the prompt.")
    ] = "prompt",
    response_field: Annotated[
        str, typer.Option(help="JSON/CSV field holding the AI response.")
    ] = "response",
    id_field: Annotated[str, typer.Option(help="JSON/CSV field holding the sample id.")] = "id",
    stdin_format: Annotated[
        str, typer.Option(help=f"How to read stdin: {one_of(STDIN_FORMATS)}.")
    ] = "auto",
    batch_size: BatchOpt = None,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the exact model inputs as JSONL; load no model."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Judge every sample in files, folders or stdin."""
    with errors():
        options = ScanOptions(
            paths=paths,
            inputs=InputOptions(
                include=tuple(include or ()),
                exclude=tuple(exclude or ()),
                split="lines" if lines else split.value,
                prompt_field=prompt_field,
                response_field=response_field,
                id_field=id_field,
                stdin_format=stdin_format,
            ),
            model=ModelOptions(
                model,
                device.value,
                threads,
                not no_verify,
                max_new_tokens,
                max_input_tokens,
                mode.value,
                band,
                explain_flagged,
            ),
            fmt=fmt,
            output=output,
            resume=resume,
            reasoning=reasoning,
            fail_on=fail_on.value,
            allow_injection=allow_injection,
            strict=strict,
            batch_size=batch_size,
            dry_run=dry_run,
            quiet=quiet,
        )
        raise typer.Exit(int(run_scan(options)))


def run_scan(options: ScanOptions) -> ExitCode:
    from guardcli.io.inputs import iter_samples

    summary = ScanSummary(options.fail_on, options.allow_injection)
    items = iter_samples(options.paths, options.inputs, stdin=sys.stdin)  # a typo fails here

    noted: set[str] = set()

    def reported() -> Iterator[Sample]:
        """Samples as they are read; each Skip is reported and counted on the way, and each
        file that was not UTF-8 is named once with the encoding it was read in."""
        for item in items:
            if isinstance(item, Skip):
                summary.skipped += 1
                say_skip(item)
                continue
            if item.encoding:
                where = re.sub(r"(:\d+|#\d+)$", "", item.source)
                if where not in noted:
                    noted.add(where)
                    say(f"guardcli: note: {where} is not UTF-8; read as {item.encoding}")
            yield item

    if options.dry_run:
        return _dry_run(reported(), options, summary)
    fmt = pick_format(options.fmt, options.output)
    done = check_output(options.output, resume=options.resume, fmt=fmt.value)
    live = _live_stdin(options.paths)
    try:
        if live:  # judge each sample as it arrives; wait for the first before loading
            first = next(reported(), None)
            samples = None if first is None else itertools.chain([first], reported())
        else:
            samples = list(reported()) or None
        if samples is None:
            raise UsageError(
                "nothing to scan"
                + (f": all {summary.skipped} inputs were skipped" if summary.skipped else ""),
                hint="check the paths and the messages above",
            )
        todo = _not_done(samples, done, summary)
        if not live:
            todo = list(todo)
        if not (live or todo):  # a resumed batch that was already complete
            if not options.quiet:
                say(summary.line())
            return summary.exit_code(options.strict)
        batch_size = options.batch_size or (1 if live else DEFAULT_BATCH)
        guard = open_model(options.model, batch_size=batch_size).guard
        stream = (
            sys.stdout
            if options.output is None
            else open_output(options.output, append=options.resume)
        )
        _moderate(todo, guard, stream, fmt, options, summary)
    except KeyboardInterrupt:
        say(summary.line() + " (interrupted; finished results kept)")
        return ExitCode.INTERRUPTED
    if summary.truncated:
        say(f"guardcli: warning: {summary.truncated} inputs were truncated to fit the context")
    if summary.injected:
        say(
            f"guardcli: warning: {summary.injected} inputs carry text shaped like the guard's "
            "own template (see the injection field)"
            + ("" if options.allow_injection else "; they fail the gate (--allow-injection)")
        )
    if not options.quiet:
        say(summary.line())
    return summary.exit_code(options.strict)


def _stream(output: Path | None, *, append: bool):  # noqa: ANN202 - IO[str]
    return sys.stdout if output is None else open_output(output, append=append)


def _live_stdin(paths: list[str]) -> bool:
    """stdin is a pipe or a terminal: samples arrive over time (``tail -f log | guardcli scan
    -``), so they must be judged as they come rather than after EOF."""
    if "-" not in paths:
        return False
    try:
        return not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # a replaced sys.stdin (tests, embedding)
        return False


def _not_done(samples: Iterable[Sample], done: dict[str, dict], summary: ScanSummary):  # noqa: ANN202
    """The samples still to judge. Those already in a resumed output count in the summary
    (and so the exit code) as if judged now: the batch's verdict, not just this run's."""
    for sample in samples:
        record = done.get(sample.id)
        if record is None:
            yield sample
            continue
        summary.resumed += 1
        summary.count(
            request=record.get("request") == "harmful",
            response=record.get("response") == "harmful",
            parsed=record.get("status") != "failed",
            injection=record.get("injection") or (),
        )


def _moderate(samples, guard, stream, fmt, options, summary) -> None:  # noqa: ANN001
    """Run samples through the guard, writing each result as soon as it exists.

    ``samples`` is a list (files: the bar knows the total) or an iterator (live stdin).
    """
    from rich.console import Console

    from guardcli.io.outputs import make_writer

    total = len(samples) if isinstance(samples, list) else None
    console = Console(file=stream, highlight=False) if fmt is Format.table else None
    writer = make_writer(
        fmt.value, stream, reasoning=options.reasoning, fail_on=options.fail_on, console=console
    )
    show_bar = sys.stderr.isatty() and not options.quiet and (total is None or total > 1)
    complete = False
    try:
        with progress(total, show_bar) as bar:
            task = bar.add_task("scan", total=total)
            for result in guard.run(samples):
                writer.write(result)
                summary.scanned += 1
                verdict = result.verdict
                summary.count(
                    request=verdict.request_harmful,
                    response=verdict.response_harmful,
                    parsed=verdict.parsed,
                    injection=result.injection,
                )
                if result.generation is not None:
                    summary.truncated += result.generation.truncated_input
                bar.advance(task)
        complete = True
    finally:
        writer.close(complete=complete)
        if stream is not sys.stdout:
            stream.close()


def _dry_run(samples: Iterable[Sample], options: ScanOptions, summary: ScanSummary) -> ExitCode:
    """Write each exact model input as soon as its sample is read; never touch a model."""
    from guardcli.core.injection import screen
    from guardcli.core.prompt import build_input
    from guardcli.io.outputs import is_terminal, json_line
    from guardcli.io.sanitize import terminal_json

    if options.resume:
        raise UsageError("--dry-run cannot --resume", hint="drop --resume")
    check_output(options.output, resume=False, fmt=Format.jsonl.value)
    stream = _stream(options.output, append=False)
    shown = is_terminal(stream)
    count = 0
    try:
        for sample in samples:
            screened = screen(sample)  # what the model reads: markers neutralised
            model = screened.model
            record = {
                "id": sample.id,
                "input": build_input(model.prompt, model.response),
                "injection": list(screened.kinds),
            }
            line = json_line(record)
            stream.write((terminal_json(line) if shown else line) + "\n")
            stream.flush()
            count += 1
    finally:
        if stream is not sys.stdout:
            stream.close()
    if not options.quiet:
        say(f"guardcli: {count} inputs, {summary.skipped} skipped (dry run)")
    return ExitCode.USAGE if options.strict and summary.skipped else ExitCode.OK
