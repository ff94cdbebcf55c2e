"""``guardcli scan`` and ``guardcli classify``: judge samples, write verdicts, set the exit code."""

from __future__ import annotations

import itertools
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli import (
    DEFAULT_BATCH,
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
    ModeOpt,
    NoVerifyOpt,
    ReasoningOpt,
    RunMode,
    Split,
    ThreadsOpt,
    _check_output,
    _errors,
    _flat,
    _load,
    _pick_format,
    _progress,
    _say,
    app,
)
from guardcli.errors import ExitCode, UsageError


@dataclass
class Summary:
    scanned: int = 0
    flagged_request: int = 0
    flagged_response: int = 0
    flagged: int = 0
    unparsed: int = 0
    truncated: int = 0
    skipped: int = 0
    resumed: int = 0
    started: float = field(default_factory=time.perf_counter)

    def line(self) -> str:
        took = time.perf_counter() - self.started
        parts = [
            f"{self.scanned} scanned",
            f"{self.flagged} flagged (request {self.flagged_request}, "
            f"response {self.flagged_response})",
            f"{self.unparsed} unparsed",
            f"{self.skipped} skipped",
            f"{self.truncated} truncated",
        ]
        if self.resumed:
            parts.append(f"{self.resumed} already done")
        return "guardcli: " + ", ".join(parts) + f" in {took:.1f}s"


def _open_output(output: Path | None, resume: bool):  # noqa: ANN202
    from guardcli.io.sink import open_output

    return sys.stdout if output is None else open_output(output, append=resume)


def _live_stdin(paths: list[str]) -> bool:
    """stdin is a pipe or a terminal: samples arrive over time (``tail -f log | guardcli scan
    -``), so they must be judged as they come rather than after EOF."""
    if "-" not in paths:
        return False
    try:
        return not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # a replaced sys.stdin (tests, embedding)
        return False


def _not_done(samples: Iterable, done: dict[str, dict], summary: Summary, fail_on: str):  # noqa: ANN201
    """The samples still to judge. Those already in a resumed output count in the summary
    (and so the exit code) as if judged now: the batch's verdict, not just this run's."""
    from guardcli.core.gate import fails

    for sample in samples:
        record = done.get(sample.id)
        if record is None:
            yield sample
            continue
        summary.resumed += 1
        summary.flagged_request += record.get("request") == "harmful"
        summary.flagged_response += record.get("response") == "harmful"
        summary.flagged += fails(
            fail_on,
            request=record.get("request") == "harmful",
            response=record.get("response") == "harmful",
        )
        summary.unparsed += record.get("status") == "failed"


def _moderate(samples, guard, stream, *, fmt, reasoning, fail_on, summary, quiet):  # noqa: ANN001
    """Run samples through the guard, writing each result as soon as it exists.

    ``samples`` is a list (files: the bar knows the total) or an iterator (live stdin).
    """
    from rich.console import Console

    from guardcli.core.gate import flagged
    from guardcli.io.outputs import make_writer

    total = len(samples) if isinstance(samples, list) else None
    console = Console(file=stream, highlight=False) if fmt is Format.table else None
    writer = make_writer(
        fmt.value, stream, reasoning=reasoning, fail_on=fail_on.value, console=console
    )
    show_bar = sys.stderr.isatty() and not quiet and (total is None or total > 1)
    complete = False
    try:
        with _progress(total, show_bar) as progress:
            task = progress.add_task("scan", total=total)
            for result in guard.run(samples):
                writer.write(result)
                summary.scanned += 1
                verdict = result.verdict
                summary.flagged_request += verdict.request_harmful
                summary.flagged_response += verdict.response_harmful
                summary.flagged += flagged(verdict, fail_on.value)
                summary.unparsed += not verdict.parsed
                if result.generation is not None:
                    summary.truncated += result.generation.truncated_input
                progress.advance(task)
        complete = True
    finally:
        writer.close(complete=complete)
        if stream is not sys.stdout:
            stream.close()


def _exit_code(summary: Summary, strict: bool) -> ExitCode:
    if strict and summary.skipped:
        return ExitCode.USAGE
    return ExitCode.FLAGGED if summary.flagged else ExitCode.OK


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")],
    model: ModelOpt = None,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = "0.2,0.8",
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
        str, typer.Option(help="How to read stdin: auto, text, jsonl, json or csv.")
    ] = "auto",
    batch_size: BatchOpt = None,
    max_new_tokens: MaxNewOpt = 1024,
    max_input_tokens: MaxInOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the exact model inputs as JSONL; load no model."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Judge every sample in files, folders or stdin."""
    with _errors():
        from guardcli.core.records import Skip
        from guardcli.io.inputs import iter_samples
        from guardcli.io.options import InputOptions

        if stdin_format not in {"auto", "text", "jsonl", "json", "csv"}:
            raise UsageError(
                f"--stdin-format {stdin_format!r}", hint="use auto, text, jsonl, json or csv"
            )
        options = InputOptions(
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            split="lines" if lines else split.value,
            prompt_field=prompt_field,
            response_field=response_field,
            id_field=id_field,
            stdin_format=stdin_format,
        )
        summary = Summary()
        items = iter_samples(paths, options, stdin=sys.stdin)  # a mistyped path fails here

        def reported() -> Iterator:
            """Samples as they are read; each Skip is reported and counted on the way."""
            for item in items:
                if isinstance(item, Skip):
                    summary.skipped += 1
                    _say(f"guardcli: skipped {_flat(item.source)}: {_flat(item.reason)}")
                else:
                    yield item

        if dry_run:
            _dry_run(reported(), output, resume, summary, strict=strict, quiet=quiet)
        fmt_used = _pick_format(fmt, output)
        done = _check_output(output, resume, fmt_used)
        live = _live_stdin(paths)
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
            todo = _not_done(samples, done, summary, fail_on.value)
            if not live:
                todo = list(todo)
            if not (live or todo):  # a resumed batch that was already complete
                if not quiet:
                    _say(summary.line())
                raise typer.Exit(int(_exit_code(summary, strict)))
            guard = _load(
                model,
                device,
                threads,
                no_verify,
                max_new_tokens=max_new_tokens,
                max_input_tokens=max_input_tokens,
                batch_size=batch_size or (1 if live else DEFAULT_BATCH),
                mode=mode,
                band=band,
                explain_flagged=explain_flagged,
            )
            _moderate(
                todo,
                guard,
                _open_output(output, resume),
                fmt=fmt_used,
                reasoning=reasoning,
                fail_on=fail_on,
                summary=summary,
                quiet=quiet,
            )
        except KeyboardInterrupt:
            _say(summary.line() + " (interrupted; finished results kept)")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        if summary.truncated:
            _say(f"guardcli: warning: {summary.truncated} inputs were truncated to fit the context")
        if not quiet:
            _say(summary.line())
        raise typer.Exit(int(_exit_code(summary, strict)))


def _dry_run(samples, output, resume, summary, *, strict, quiet) -> None:  # noqa: ANN001
    """Write each exact model input as soon as its sample is read; never touch a model."""
    from guardcli.core.prompt import build_input
    from guardcli.io.outputs import json_line

    if resume:
        raise UsageError("--dry-run cannot --resume", hint="drop --resume")
    _check_output(output, False, Format.jsonl)
    stream = _open_output(output, False)
    count = 0
    try:
        for sample in samples:
            record = {"id": sample.id, "input": build_input(sample.prompt, sample.response)}
            stream.write(json_line(record) + "\n")
            stream.flush()
            count += 1
    finally:
        if stream is not sys.stdout:
            stream.close()
    if not quiet:
        _say(f"guardcli: {count} inputs, {summary.skipped} skipped (dry run)")
    raise typer.Exit(int(ExitCode.USAGE if strict and summary.skipped else ExitCode.OK))


@app.command()
def classify(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user's request.")],
    response: Annotated[
        str | None,
        typer.Option("--response", "-r", help="The AI's response, if any.", show_default=False),
    ] = None,
    model: ModelOpt = None,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = "0.2,0.8",
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    no_verify: NoVerifyOpt = False,
    fmt: FormatOpt = None,
    reasoning: ReasoningOpt = False,
    fail_on: FailOnOpt = FailOn.any,
    max_new_tokens: MaxNewOpt = 1024,
    max_input_tokens: MaxInOpt = None,
) -> None:
    """Judge one prompt (and optionally the AI's response)."""
    with _errors():
        from guardcli.core.gate import flagged
        from guardcli.core.records import Sample
        from guardcli.io.outputs import make_writer

        guard = _load(
            model,
            device,
            threads,
            no_verify,
            max_new_tokens=max_new_tokens,
            max_input_tokens=max_input_tokens,
            batch_size=1,
            mode=mode,
            band=band,
            explain_flagged=explain_flagged,
        )
        sample = Sample(id="1", prompt=prompt, response=response, source="--prompt")
        try:
            result = guard.classify_batch([sample])[0]
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        if result.generation is not None and result.generation.truncated_input:
            _say("guardcli: warning: the input was truncated to fit the context")
        fmt_used = _pick_format(fmt, None)
        from rich.console import Console

        console = Console(highlight=False) if fmt_used is Format.table else None
        with make_writer(
            fmt_used.value, sys.stdout, reasoning=reasoning, fail_on=fail_on.value, console=console
        ) as writer:
            writer.write(result)
        if fmt_used is Format.table and reasoning:
            from guardcli.io.sanitize import for_terminal

            console.print(for_terminal(result.verdict.raw))
        bad = flagged(result.verdict, fail_on.value)
        raise typer.Exit(int(ExitCode.FLAGGED if bad else ExitCode.OK))
