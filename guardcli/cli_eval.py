"""``guardcli eval``: score a model on benchmark files, or score existing predictions."""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli import (
    DEFAULT_BATCH,
    BandOpt,
    Device,
    DeviceOpt,
    ExplainOpt,
    Format,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModeOpt,
    NoVerifyOpt,
    RunMode,
    ThreadsOpt,
    _check_output,
    _errors,
    _flat,
    _load,
    _progress,
    _say,
    app,
)
from guardcli.core.tasks import NAMES
from guardcli.errors import ExitCode, UsageError

TaskChoice = Enum("TaskChoice", {name: name for name in NAMES}, type=str)


@app.command("eval")
def eval_(
    benchmarks: Annotated[
        list[str] | None,
        typer.Argument(
            help="Benchmark files to run the model on: GuardReasoner JSON (instruction/input/"
            "output) or labelled JSONL.",
            show_default=False,
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
    band: BandOpt = "0.2,0.8",
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    no_verify: NoVerifyOpt = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder for the predictions (<Benchmark>.jsonl), written as they finish.",
            show_default=False,
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
    max_new_tokens: MaxNewOpt = 1024,
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
        ),
    ] = None,
    chart: Annotated[
        Path | None,
        typer.Option(
            help="Write a bar chart PNG against the paper's rows (needs guardcli[plot]).",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or per-file lines.")
    ] = False,
) -> None:
    """Score a model on benchmark files, or score existing predictions: F1 per benchmark and
    the paper's weighted average per task."""
    with _errors():
        from guardcli.eval import paper
        from guardcli.eval.scoring import Mode, task_averages

        mode = Mode.PAPER if paper_compat else Mode.HONEST
        if as_json and as_markdown:
            raise UsageError("--json and --markdown exclude each other", hint="pick one")
        if bool(benchmarks) == bool(predictions):
            raise UsageError(
                "give benchmark files (runs a model) or --predictions PATH (scores files)"
                + (", not both" if benchmarks else ""),
                hint="see guardcli eval --help",
            )
        if reference is not None:
            reference = paper.canonical(reference)
            if reference is None:
                raise UsageError("--reference: no such row", hint="use " + ", ".join(paper.MODELS))
        if chart is not None:
            from guardcli.eval.chart import require

            require()
        the_task = task.value if task else None
        if predictions:
            if output is not None or resume or limit is not None:
                raise UsageError(
                    "--output, --resume and --limit are for running a model",
                    hint="--predictions only scores the files given",
                )
            results = _score_predictions(predictions, the_task, mode)
        else:
            options = (device, threads, no_verify)
            guard_options = {
                "batch_size": batch_size or DEFAULT_BATCH,
                "max_new_tokens": max_new_tokens,
                "max_input_tokens": max_input_tokens,
                "mode": run_mode,
                "band": band,
                "explain_flagged": explain_flagged,
            }
            files = _labelled_files(benchmarks, the_task, limit, seed)
            results = _run_benchmarks(
                files, model, options, guard_options, output, resume, mode, quiet
            )
        _print_report(results, task_averages(results), mode, reference, as_json, as_markdown)
        if chart is not None:
            from guardcli.eval.chart import write_chart

            _say(f"guardcli: wrote {write_chart(results, chart, mode=mode)}")


def _say_skips(skips: list, limit: int = 5) -> None:
    """Each skipped record on one line; after ``limit`` of them, a count."""
    for skip in skips[:limit]:
        _say(f"guardcli: skipped {_flat(skip.source)}: {_flat(skip.reason)}")
    if len(skips) > limit:
        _say(f"guardcli: ... and {len(skips) - limit} more skipped")


def _score_predictions(paths: list[Path], task: str | None, mode) -> list:  # noqa: ANN001
    from guardcli.core.records import Skip
    from guardcli.eval import predictions as preds
    from guardcli.eval.scoring import Mode, score_benchmark

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
            _say(f"guardcli: {_flat(path)}: {scored.skipped} records without a usable gold label")
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
            _say(f"guardcli: {_flat(path)}: {found.unlabelled} records have no {found.task} label")
        if not found.items:
            raise UsageError(
                f"{path}: nothing to evaluate (no record with a {found.task} label)",
                hint="check the file, or pass the right --task",
            )
        files.append(found)
    return files


def _run_benchmarks(files, model, options, guard_options, output, resume, mode, quiet) -> list:  # noqa: ANN001
    """Judge every file's items, writing each prediction as it exists, then score them."""
    from guardcli.eval import predictions as preds
    from guardcli.eval.judge import judge_file
    from guardcli.eval.scoring import score_benchmark

    targets: list[Path | None] = [None] * len(files)
    done: list[dict[str, dict]] = [{} for _ in files]
    if output is not None:
        targets = [output / preds.output_name(f.name, f.task) for f in files]
        if len(set(targets)) < len(targets):
            raise UsageError(
                "two benchmark files would write the same predictions file",
                hint="evaluate each benchmark once per --output folder",
            )
        done = [_check_output(target, resume, Format.jsonl) for target in targets]
    elif resume:
        raise UsageError("--resume needs --output DIR", hint="name the predictions folder")
    device, threads, no_verify = options
    todo = sum(
        1 for f, d in zip(files, done, strict=True) for item in f.items if item.sample.id not in d
    )
    results = []
    show_bar = sys.stderr.isatty() and not quiet
    try:
        guard = _load(model, device, threads, no_verify, **guard_options)
        with _progress(todo, show_bar, "evaluating") as progress:
            bar = progress.add_task("eval", total=todo)
            for found, target, already in zip(files, targets, done, strict=True):
                started = time.perf_counter()
                writer = None if target is None else preds.PredictionsWriter(target, resume=resume)

                def on_result(item, result, writer=writer, task=found.task) -> None:  # noqa: ANN001
                    if writer is not None:
                        writer.write(preds.record(item, result, task))
                    progress.advance(bar)

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
                    _say(
                        f"guardcli: {_flat(found.name)} ({found.task}): F1 "
                        f"{100 * scored.f1:.2f} over {scored.items} items, {scored.unparsed} "
                        f"unparsed, {time.perf_counter() - started:.1f}s"
                        + (f" ({len(already)} already done)" if already else "")
                    )
    except KeyboardInterrupt:
        kept = " (--resume continues)" if output is not None else ""
        _say(f"guardcli: interrupted; predictions written so far are kept{kept}")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    return results


def _print_report(results, averages, mode, reference, as_json, as_markdown) -> None:  # noqa: ANN001
    from guardcli.eval import report

    if as_json:
        data = report.to_json(results, averages, mode=mode, reference=reference)
        typer.echo(json.dumps(data, indent=2))
    elif as_markdown:
        typer.echo(report.markdown(results, averages, mode=mode, reference=reference), nl=False)
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal:  # a file or a pipe: the whole table, never cut to 80 columns
            console = Console(highlight=False, width=240)
        console.print(report.table(results, averages, mode=mode, reference=reference))
