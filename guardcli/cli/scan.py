"""``guardcli scan``: judge every sample in files, folders or stdin, write verdicts as they
finish, and set the exit code (1 when anything is flagged, per --fail-on)."""

from __future__ import annotations

import itertools
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli.console import errors, plural, progress, say
from guardcli.cli.load import open_model
from guardcli.cli.options import (
    BAND,
    MAX_NEW,
    AllowInjectionOpt,
    BandOpt,
    BatchOpt,
    BatchTokensOpt,
    Device,
    DeviceOpt,
    ExplainOpt,
    FailOn,
    FailOnOpt,
    Format,
    FormatOpt,
    LongOpt,
    LongPolicy,
    LowMemoryOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModelOptions,
    ModeOpt,
    NoVerifyOpt,
    QuietOpt,
    ReasoningOpt,
    RunMode,
    ShardOpt,
    Split,
    ThreadsOpt,
    output_format,
    pick_format,
)
from guardcli.cli.summary import ScanSummary
from guardcli.core.batching import DEFAULT_BATCH_TOKENS
from guardcli.core.guard import DEFAULT_BATCH
from guardcli.core.records import Sample, Skip
from guardcli.errors import ExitCode, UsageError, one_of
from guardcli.io.options import STDIN_FORMATS, InputOptions
from guardcli.io.shard import Shard, parse_shard
from guardcli.io.sink import check_output, open_output


@dataclass(frozen=True)
class ScanOptions:
    """Everything ``guardcli scan`` was told, made once from its command line."""

    paths: list[str]
    inputs: InputOptions
    model: ModelOptions
    fmt: Format | None = None  # stdout's; None: the terminal's, or nothing beside --output
    output: Path | None = None
    resume: bool = False
    reasoning: bool = False
    fail_on: str = "any"
    allow_injection: bool = False  # inputs with template markers fail the gate unless set
    strict: bool = False  # exit 2 when anything was skipped
    batch_size: int | None = None  # None: DEFAULT_BATCH, or 1 for live stdin
    dry_run: bool = False
    quiet: bool = False
    shard: Shard | None = None  # --shard K/N: only the samples of shard K


def scan(
    paths: Annotated[
        list[str], typer.Argument(help="Files, folders, or - for stdin.", metavar="PATH")
    ],
    model: ModelOpt = None,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = BAND,
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    low_memory: LowMemoryOpt = False,
    no_verify: NoVerifyOpt = False,
    fmt: FormatOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write results here as they finish: JSONL (a JSON array for .json, CSV for "
            ".csv). stdout then shows nothing unless --format is given.",
            show_default=False,
            metavar="FILE",
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
        list[str] | None,
        typer.Option(help="Only files matching this glob (repeatable).", metavar="GLOB"),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Skip files matching this glob (repeatable).", metavar="GLOB"),
    ] = None,
    split: Annotated[
        Split, typer.Option(help="Text files: one sample per file, line or paragraph.")
    ] = Split.none,
    lines: Annotated[bool, typer.Option("--lines", help="Same as --split lines.")] = False,
    prompt_field: Annotated[
        str, typer.Option(help="JSON/CSV field holding the prompt.", metavar="NAME")
    ] = "prompt",
    response_field: Annotated[
        str, typer.Option(help="JSON/CSV field holding the AI response.", metavar="NAME")
    ] = "response",
    id_field: Annotated[
        str, typer.Option(help="JSON/CSV field holding the sample id.", metavar="NAME")
    ] = "id",
    stdin_format: Annotated[
        str,
        typer.Option(
            help=f"How to read stdin: {one_of(STDIN_FORMATS)}.",
            metavar=f"[{'|'.join(STDIN_FORMATS)}]",
        ),
    ] = "auto",
    batch_size: BatchOpt = None,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
    long: LongOpt = LongPolicy.chunk,
    batch_tokens: BatchTokensOpt = DEFAULT_BATCH_TOKENS,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the exact model inputs as JSONL; load no model."),
    ] = False,
    quiet: QuietOpt = False,
    shard: ShardOpt = None,
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
                long=long.value,
                batch_tokens=batch_tokens,
                low_memory=low_memory,
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
            shard=parse_shard(shard),
        )
        raise typer.Exit(int(run_scan(options)))


def run_scan(options: ScanOptions) -> ExitCode:
    summary = ScanSummary(options.fail_on, options.allow_injection, shard=options.shard)
    try:
        return _run_scan(options, summary)
    finally:
        summary.skips.finish()  # a run that ends in an error still counts its skips


def _run_scan(options: ScanOptions, summary: ScanSummary) -> ExitCode:
    from guardcli.io.inputs import iter_samples

    items = iter_samples(options.paths, options.inputs, stdin=sys.stdin)  # a typo fails here
    shard = options.shard

    noted: set[str] = set()

    def reported() -> Iterator[Sample]:
        """Samples as they are read; each Skip is reported and counted on the way, and so is
        each sample left to another shard; each file that was not UTF-8 is named once with
        the encoding it was read in."""
        for item in items:
            if isinstance(item, Skip):
                summary.skipped += 1
                summary.skips(item)
                continue
            if shard is not None and not shard.keeps(item.id):
                summary.other_shards += 1
                continue
            if item.encoding:
                where = re.sub(r"(:\d+|#\d+)$", "", item.source)
                if where not in noted:
                    noted.add(where)
                    say(f"guardcli: note: {where} is not UTF-8; read as {item.encoding}")
            yield item

    if options.dry_run:
        return _dry_run(reported(), options, summary)
    saved = None if options.output is None else output_format(options.output)
    shown = pick_format(options.fmt) if options.output is None or options.fmt else None
    done = check_output(
        options.output,
        resume=options.resume,
        fmt=(saved or Format.jsonl).value,
        mode=options.model.mode,
    )
    live = _live_stdin(options.paths)
    try:
        # Inputs stream into batches (files too: a 1 GB JSONL is never read whole before the
        # model loads); only the first sample is waited for, so that "nothing to scan", a shard
        # with nothing in it and a finished --resume exit before loading a model.
        samples = reported()
        first = next(samples, None)
        if first is None and summary.other_shards:  # every sample belongs to another shard
            summary.report(quiet=options.quiet)
            return summary.exit_code(options.strict)
        if first is None:
            raise UsageError(
                "nothing to scan"
                + (f": all {plural(summary.skipped, 'input')} skipped" if summary.skipped else ""),
                hint="check the paths and the messages above",
            )
        todo = _not_done(itertools.chain([first], samples), done, summary)
        head = next(todo, None)
        if head is not None:
            todo = itertools.chain([head], todo)
        else:  # a resumed batch that was already complete
            summary.report(quiet=options.quiet)
            return summary.exit_code(options.strict)
        batch_size = options.batch_size or (1 if live else DEFAULT_BATCH)
        model = open_model(options.model, batch_size=batch_size)
        targets = [] if shown is None else [(sys.stdout, shown)]
        if options.output is not None and saved is not None:
            targets.insert(0, (open_output(options.output, append=options.resume), saved))
        _moderate(todo, model, targets, options, summary)
    except KeyboardInterrupt:
        summary.report(quiet=options.quiet, note=" (interrupted; finished results kept)")
        return ExitCode.INTERRUPTED
    summary.report(quiet=options.quiet)
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
        summary.scanned += 1
        summary.resumed += 1
        summary.count_record(record)


def _moderate(samples, model, targets, options, summary) -> None:  # noqa: ANN001
    """Run samples through the model (a guardcli.GuardModel), writing each result to every
    (stream, format) target (the --output file, stdout, or both) as soon as it exists.

    ``samples`` is a list (files: the bar knows the total) or an iterator (live stdin).
    """
    from guardcli.io.outputs import make_writer

    total = len(samples) if isinstance(samples, list) else None
    writers = [
        make_writer(fmt.value, stream, reasoning=options.reasoning, fail_on=options.fail_on)
        for stream, fmt in targets
    ]
    show_bar = sys.stderr.isatty() and not options.quiet and (total is None or total > 1)
    complete = False
    try:
        with progress(total, show_bar) as bar:
            task = bar.add_task("scan", total=total)
            for result in model.classify_many(samples):
                for writer in writers:
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
                    summary.finished(result.generation.finish)
                summary.windowed += result.windows > 1
                bar.advance(task)
        complete = True
    finally:
        for writer, (stream, _fmt) in zip(writers, targets, strict=True):
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
    summary.skips.finish()
    if not options.quiet:
        shards = "" if options.shard is None else f", {summary.other_shards} in other shards"
        say(f"guardcli: {plural(count, 'input')}, {summary.skipped} skipped{shards} (dry run)")
    return ExitCode.USAGE if options.strict and summary.skipped else ExitCode.OK
