"""``guardcli eval``: score a model on benchmark files, or score existing predictions."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli.console import errors, flat, progress, say, say_skip
from guardcli.cli.load import open_model
from guardcli.cli.options import (
    BAND,
    MAX_NEW,
    BandOpt,
    Device,
    DeviceOpt,
    ExplainOpt,
    LowMemoryOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModelOptions,
    ModeOpt,
    NoVerifyOpt,
    RunMode,
    ShardOpt,
    TaskChoice,
    ThreadsOpt,
)
from guardcli.core.guard import DEFAULT_BATCH
from guardcli.errors import ExitCode, UsageError
from guardcli.eval.scoring import Mode
from guardcli.io.shard import Shard, parse_shard


@dataclass(frozen=True)
class EvalOptions:
    """Everything ``guardcli eval`` was told, made once from its command line and checked
    when made (before any file is read or model loaded)."""

    benchmarks: list[str]  # run the model on these ...
    predictions: list[Path]  # ... or score these
    task: str | None  # None: each file's benchmark says
    mode: Mode
    model: ModelOptions
    output: Path | None = None
    resume: bool = False
    limit: int | None = None
    seed: int = 0
    batch_size: int = DEFAULT_BATCH
    as_json: bool = False
    as_markdown: bool = False
    reference: str | None = None  # a row of guardcli.eval.paper, as the table spells it
    chart: Path | None = None
    quiet: bool = False
    shard: Shard | None = None  # --shard K/N: only the items of shard K (after --limit)

    def __post_init__(self) -> None:
        from guardcli.eval import paper

        if self.as_json and self.as_markdown:
            raise UsageError("--json and --markdown exclude each other", hint="pick one")
        if bool(self.benchmarks) == bool(self.predictions):
            raise UsageError(
                "give benchmark files (runs a model) or --predictions PATH (scores files)"
                + (", not both" if self.benchmarks else ""),
                hint="see guardcli eval --help",
            )
        if self.reference is not None:
            reference = paper.canonical(self.reference)
            if reference is None:
                raise UsageError("--reference: no such row", hint="use " + ", ".join(paper.MODELS))
            object.__setattr__(self, "reference", reference)
        if self.chart is not None:
            from guardcli.eval.chart import require

            require()
        running = (self.output, self.resume or None, self.limit, self.shard)
        if self.predictions and any(value is not None for value in running):
            raise UsageError(
                "--output, --resume, --limit and --shard are for running a model",
                hint="--predictions only scores the files given",
            )


def eval_(
    benchmarks: Annotated[
        list[str] | None,
        typer.Argument(
            help="Benchmark files to run the model on: GuardReasoner JSON (instruction/input/"
            "output) or labelled JSONL.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    predictions: Annotated[
        list[Path] | None,
        typer.Option(
            "--predictions",
            help="Score existing predictions (a folder or file, repeatable); no model is loaded.",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        TaskChoice | None,
        typer.Option(
            help="The task every file scores (default: from each file's benchmark name).",
            show_default=False,
        ),
    ] = None,
    paper_compat: Annotated[
        bool,
        typer.Option(
            "--paper-compat",
            help="Score exactly as the GuardReasoner repository's evaluate.py, quirks included.",
        ),
    ] = False,
    model: ModelOpt = None,
    run_mode: ModeOpt = RunMode.reason,
    band: BandOpt = BAND,
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    low_memory: LowMemoryOpt = False,
    no_verify: NoVerifyOpt = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder for the predictions (<Benchmark>.jsonl), written as they finish.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the predictions already in --output.")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="A seeded random subset of N items per file.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="The subset's seed.")] = 0,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help=f"Items generated together (default {DEFAULT_BATCH}).", show_default=False
        ),
    ] = None,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table instead.")
    ] = False,
    reference: Annotated[
        str | None,
        typer.Option(
            help="Add the paper's F1 of this model as a column (e.g. GuardReasoner-1B).",
            show_default=False,
            metavar="MODEL",
        ),
    ] = None,
    chart: Annotated[
        Path | None,
        typer.Option(
            help="Write a bar chart PNG against the paper's rows (needs guardcli[plot]).",
            show_default=False,
            metavar="FILE.png",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or per-file lines.")
    ] = False,
    shard: ShardOpt = None,
) -> None:
    """Score a model on benchmark files, or score existing predictions: F1 per benchmark and
    the paper's weighted average per task."""
    with errors():
        options = EvalOptions(
            benchmarks=benchmarks or [],
            predictions=predictions or [],
            task=task.value if task else None,
            mode=Mode.PAPER if paper_compat else Mode.HONEST,
            model=ModelOptions(
                model,
                device.value,
                threads,
                not no_verify,
                max_new_tokens,
                max_input_tokens,
                run_mode.value,
                band,
                explain_flagged,
                low_memory=low_memory,
            ),
            output=output,
            resume=resume,
            limit=limit,
            seed=seed,
            batch_size=batch_size or DEFAULT_BATCH,
            as_json=as_json,
            as_markdown=as_markdown,
            reference=reference,
            chart=chart,
            quiet=quiet,
            shard=parse_shard(shard),
        )
        run_eval(options)


def run_eval(options: EvalOptions) -> None:
    from guardcli.eval.scoring import task_averages

    if options.predictions:
        results = _score_predictions(options.predictions, options.task, options.mode)
    else:
        files = _labelled_files(options.benchmarks, options.task, options.limit, options.seed)
        if options.shard is not None:
            files = _sharded(files, options.shard)
        results = _run_benchmarks(files, options)
    _print_report(results, task_averages(results), options)
    if options.chart is not None:
        from guardcli.eval.chart import write_chart

        say(f"guardcli: wrote {write_chart(results, options.chart, mode=options.mode)}")


def _say_skips(skips: list, limit: int = 5) -> None:
    """Each skipped record on one line; after ``limit`` of them, a count."""
    for skip in skips[:limit]:
        say_skip(skip)
    if len(skips) > limit:
        say(f"guardcli: ... and {len(skips) - limit} more skipped")


def _score_predictions(paths: list[Path], task: str | None, mode: Mode) -> list:
    from guardcli.core.records import Skip
    from guardcli.eval import predictions as preds
    from guardcli.eval.scoring import score_benchmark

    results, seen = [], {}
    for path in preds.find(paths):
        found = preds.read(path, task)
        key = (found.name, found.task)
        if key in seen:
            raise UsageError(
                f"{path} and {seen[key]} both hold {found.name} ({found.task}) predictions",
                hint="score one model's predictions at a time",
            )
        seen[key] = path
        skips = list(found.skips)
        if mode is Mode.HONEST:
            skips += [Skip(j.where, j.problem) for j in found.judged if j.problem]
        _say_skips(skips)
        scored = score_benchmark(
            found.judged, name=found.name, path=path, task=found.task, mode=mode
        )
        if mode is Mode.PAPER and scored.skipped:
            say(f"guardcli: {flat(path)}: {scored.skipped} records without a usable gold label")
        results.append(scored)
    return results


def _labelled_files(paths: list[str], task: str | None, limit: int | None, seed: int) -> list:
    """Every benchmark file read and checked before a model is loaded."""
    from guardcli.eval.judge import labelled_file

    files = []
    for path in paths:
        found = labelled_file(path, task=task, limit=limit, seed=seed)
        _say_skips(list(found.skips))
        if found.unlabelled:
            say(f"guardcli: {flat(path)}: {found.unlabelled} records have no {found.task} label")
        if not found.items:
            raise UsageError(
                f"{path}: nothing to evaluate (no record with a {found.task} label)",
                hint="check the file, or pass the right --task",
            )
        files.append(found)
    return files


def _sharded(files: list, shard: Shard) -> list:
    """Each file's items of this shard, the rest counted on stderr. ``--limit`` picked its
    subset first, so the N shards split the same subset between them."""
    from dataclasses import replace

    kept = []
    for found in files:
        mine = tuple(item for item in found.items if shard.keeps(item.sample.id))
        say(
            f"guardcli: {flat(found.name)}: shard {shard} keeps {len(mine)} of "
            f"{len(found.items)} items ({len(found.items) - len(mine)} in other shards)"
        )
        if mine:
            kept.append(replace(found, items=mine))
    if not kept:
        say(f"guardcli: nothing to evaluate in shard {shard}: every item is in another shard")
        raise typer.Exit(int(ExitCode.OK))
    return kept


def _run_benchmarks(files: list, options: EvalOptions) -> list:
    """Judge every file's items, writing each prediction as it exists, then score them."""
    from guardcli.eval import predictions as preds
    from guardcli.eval.judge import judge_file
    from guardcli.eval.scoring import score_benchmark
    from guardcli.io.sink import check_output

    output, resume, mode, quiet = options.output, options.resume, options.mode, options.quiet

    targets: list[Path | None] = [None] * len(files)
    done: list[dict[str, dict]] = [{} for _ in files]
    if output is not None:
        targets = [output / preds.output_name(f.name, f.task) for f in files]
        if len(set(targets)) < len(targets):
            raise UsageError(
                "two benchmark files would write the same predictions file",
                hint="evaluate each benchmark once per --output folder",
            )
        done = [
            check_output(target, resume=resume, fmt="jsonl", mode=options.model.mode)
            for target in targets
        ]
    elif resume:
        raise UsageError("--resume needs --output DIR", hint="name the predictions folder")
    todo = sum(
        1 for f, d in zip(files, done, strict=True) for item in f.items if item.sample.id not in d
    )
    results = []
    show_bar = sys.stderr.isatty() and not quiet
    try:
        guard = open_model(options.model, batch_size=options.batch_size).guard
        with progress(todo, show_bar, "evaluating") as bars:
            bar = bars.add_task("eval", total=todo)
            for found, target, already in zip(files, targets, done, strict=True):
                started = time.perf_counter()
                writer = None if target is None else preds.PredictionsWriter(target, resume=resume)

                def on_result(item, result, writer=writer, task=found.task) -> None:  # noqa: ANN001
                    if writer is not None:
                        writer.write(preds.record(item, result, task))
                    bars.advance(bar)

                try:
                    judged = judge_file(guard, found, done=already, on_result=on_result)
                finally:
                    if writer is not None:
                        writer.close()
                scored = score_benchmark(
                    judged, name=found.name, path=found.path, task=found.task, mode=mode
                )
                results.append(scored)
                if not quiet:
                    say(
                        f"guardcli: {flat(found.name)} ({found.task}): F1 "
                        f"{100 * scored.f1:.2f} over {scored.items} items, {scored.unparsed} "
                        f"unparsed, {time.perf_counter() - started:.1f}s"
                        + (f" ({len(already)} already done)" if already else "")
                    )
    except KeyboardInterrupt:
        kept = " (--resume continues)" if output is not None else ""
        say(f"guardcli: interrupted; predictions written so far are kept{kept}")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    return results


def _print_report(results: list, averages: list, options: EvalOptions) -> None:
    from guardcli.eval import report

    mode, reference = options.mode, options.reference
    as_json, as_markdown = options.as_json, options.as_markdown

    if as_json:
        data = report.to_json(results, averages, mode=mode, reference=reference)
        typer.echo(json.dumps(data, indent=2))
    elif as_markdown:
        text = report.markdown(results, averages, mode=mode, reference=reference)
        if sys.stdout.isatty():  # benchmark names come from file names
            from guardcli.io.sanitize import clean_terminal

            text = clean_terminal(text)
        typer.echo(text, nl=False)
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal:  # a file or a pipe: the whole table, never cut to 80 columns
            console = Console(highlight=False, width=240)
        console.print(report.table(results, averages, mode=mode, reference=reference))
