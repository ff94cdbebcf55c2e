"""``guardcli batch``: ``scan`` as a Ray Data job over many JSONL/CSV files, writing one JSONL
file with scan's records, each id exactly once, resumable (guardcli.distributed)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli.console import errors, plural, say
from guardcli.cli.options import (
    BAND,
    MAX_NEW,
    BandOpt,
    BatchOpt,
    Device,
    DeviceOpt,
    ExplainOpt,
    FailOn,
    FailOnOpt,
    LowMemoryOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModelOptions,
    ModeOpt,
    QuietOpt,
    ReasoningOpt,
    RunMode,
    ShardOpt,
)
from guardcli.cli.summary import ScanSummary
from guardcli.core.guard import DEFAULT_BATCH
from guardcli.errors import ExitCode, InputError, UsageError
from guardcli.io.options import InputOptions
from guardcli.io.shard import Shard, parse_shard


@dataclass(frozen=True)
class BatchOptions:
    """Everything ``guardcli batch`` was told, made once from its command line."""

    paths: list[str]
    inputs: InputOptions
    model: ModelOptions
    output: Path
    resume: bool = False
    reasoning: bool = False
    fail_on: str = "any"
    strict: bool = False
    batch_size: int = DEFAULT_BATCH
    shard: Shard | None = None
    address: str | None = None
    actors: int | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.output.suffix.lower() in (".json", ".csv"):
            raise UsageError(
                f"guardcli batch writes JSONL, not {self.output.suffix}",
                hint="name the --output FILE.jsonl",
            )


def batch(
    paths: Annotated[list[str], typer.Argument(help="JSONL/CSV/text files or folders.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The JSONL file of verdicts (scan's records)."),
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the ids already in --output; judge the rest.")
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray).",
            show_default=False,
        ),
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Models in the pool (default: cluster CPUs // --threads).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, help="CPU threads (and Ray CPUs) per actor (default 4).", show_default=False
        ),
    ] = None,
    low_memory: LowMemoryOpt = False,
    model: ModelOpt = None,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = BAND,
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.cpu,
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
    prompt_field: Annotated[str, typer.Option(help="Field holding the prompt.")] = "prompt",
    response_field: Annotated[
        str, typer.Option(help="Field holding the AI response.")
    ] = "response",
    id_field: Annotated[str, typer.Option(help="Field holding the sample id.")] = "id",
    batch_size: BatchOpt = None,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
    shard: ShardOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Judge many files on a Ray cluster (Ray Data; needs guardcli[ray]): scan's records and
    summary, each id exactly once, --resume after a failure."""
    with errors():
        options = BatchOptions(
            paths=paths,
            inputs=InputOptions(
                include=tuple(include or ()),
                exclude=tuple(exclude or ()),
                prompt_field=prompt_field,
                response_field=response_field,
                id_field=id_field,
            ),
            model=ModelOptions(
                model,
                device.value,
                threads,
                True,  # every actor checks the bundle: no --no-verify here
                max_new_tokens,
                max_input_tokens,
                mode.value,
                band,
                explain_flagged,
                low_memory=low_memory,
            ),
            output=output,
            resume=resume,
            reasoning=reasoning,
            fail_on=fail_on.value,
            strict=strict,
            batch_size=batch_size or DEFAULT_BATCH,
            shard=parse_shard(shard),
            address=address,
            actors=actors,
            quiet=quiet,
        )
        raise typer.Exit(int(run_batch(options)))


def run_batch(options: BatchOptions, *, judge: type | None = None) -> ExitCode:
    """Plan, judge on Ray, write each id once, and summarise as scan does. ``judge`` replaces
    the actor class (tests kill one mid-job)."""
    from guardcli.distributed import require_ray
    from guardcli.distributed.plan import make_plan
    from guardcli.io.sink import check_output

    require_ray()  # before any work: a missing extra is one line naming it
    options.model.guard(options.batch_size)  # a bad --band or --mode fails before any reading
    done = check_output(options.output, resume=options.resume, fmt="jsonl")
    summary = ScanSummary(options.fail_on, shard=options.shard)

    def skipped(skip) -> None:  # noqa: ANN001 - Skip
        summary.skipped += 1
        summary.skips(skip)

    plan = make_plan(options.paths, options.inputs, shard=options.shard, done=done, on_skip=skipped)
    summary.other_shards = plan.other_shards
    if not plan.samples:
        raise UsageError(
            "nothing to scan"
            + (f": all {plural(summary.skipped, 'input')} skipped" if summary.skipped else ""),
            hint="check the paths and the messages above",
        )
    for ident in plan.resumed:  # the batch's verdict, not just this run's
        summary.count_record(done[ident])
        summary.scanned += 1
        summary.resumed += 1
    if plan.total and _judge_on_ray(plan, done, options, summary, judge) is ExitCode.INTERRUPTED:
        return ExitCode.INTERRUPTED
    summary.report(quiet=options.quiet)
    return summary.exit_code(options.strict)


def _judge_on_ray(plan, done: dict, options: BatchOptions, summary: ScanSummary, judge):  # noqa: ANN001, ANN202
    """Check the bundle, start the actor pool, and write what it returns, each id once."""
    from guardcli.bundles.resolve import check_bundle, resolve_model
    from guardcli.distributed import job
    from guardcli.distributed.judge import Judge, JudgeConfig, manifest_sha256
    from guardcli.distributed.once import OnceWriter
    from guardcli.io.sink import open_output

    resolved = resolve_model(options.model.model)
    check_bundle(resolved.path)  # the driver refuses a bad bundle before starting Ray
    ray = job.connect(options.address, quiet=options.quiet)
    if not sys.stderr.isatty() or options.quiet:
        ray.data.DataContext.get_current().enable_progress_bars = False
    pool = job.size_pool(ray, options.actors, options.model.threads)
    config = JudgeConfig(
        bundle=str(resolved.path.resolve()),
        sha256=manifest_sha256(resolved.path),
        guard=options.model.guard(options.batch_size),
        device=options.model.device,
        threads=pool.threads,
        low_memory=options.model.low_memory,
        reasoning=options.reasoning,
        fail_on=options.fail_on,
    )
    say(
        f"guardcli: batch of {plan.total} samples from {len(plan.files)} files on Ray: "
        f"{pool.actors} actors x {pool.threads} threads, model {resolved.path}"
    )
    with open_output(options.output, append=True) as stream:
        writer = OnceWriter(stream, done)
        lines = job.judged(
            plan, frozenset(done), config, pool, batch_size=options.batch_size, judge=judge or Judge
        )
        judged = 0
        try:
            for ident, line in lines:
                if writer.write(ident, line):
                    judged += 1
                    summary.scanned += 1
                    record = json.loads(line)
                    summary.count_record(record)
                    summary.truncated += bool(record.get("truncated"))
                    summary.finished(record.get("finish"))
        except KeyboardInterrupt:
            note = " (interrupted; finished results kept, --resume continues)"
            summary.report(quiet=options.quiet, note=note)
            return ExitCode.INTERRUPTED
    if judged != plan.total:
        raise InputError(
            f"{plan.total} samples were planned but {judged} came back",
            hint="were the inputs changed while the job ran? rerun with --resume",
        )
    return None
