"""The ``guardcli`` command line: thin Typer commands over guardcli's pipeline.

stdout carries data only (verdict records, dry-run inputs, paths); every diagnostic, the
progress bar and the summary go to stderr, so ``guardcli scan ... | jq`` always works.
GuardError is turned into a one-line message and its documented exit code in one place
(``_errors``); see guardcli.errors.ExitCode for the contract.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from guardcli import __version__
from guardcli.errors import ExitCode, GuardError, UsageError

app = typer.Typer(
    name="guardcli",
    help="Offline GuardReasoner guard: judge prompts and AI responses with auditable reasoning.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, inspect and verify model bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class FailOn(str, Enum):
    request = "request"
    response = "response"
    any = "any"
    none = "none"


class Split(str, Enum):
    none = "none"
    lines = "lines"
    paragraphs = "paragraphs"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    """A diagnostic line on stderr (never markup-interpreted: it may quote user text)."""
    _stderr().print(message, markup=False)


@contextmanager
def _errors() -> Iterator[None]:
    """The single place where GuardError becomes a message and an exit code."""
    try:
        yield
    except GuardError as exc:
        from guardcli.sanitize import clean_terminal

        _say(f"guardcli: error: {clean_terminal(str(exc))}")
        raise typer.Exit(int(exc.exit_code)) from None


# ---- shared options -------------------------------------------------------------------------

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Bundle directory or installed model name.", show_default=False
    ),
]
DeviceOpt = Annotated[Device, typer.Option(help="Where to run: auto picks CUDA when available.")]
ThreadsOpt = Annotated[
    int | None, typer.Option(min=1, help="CPU threads (default: all cores).", show_default=False)
]
NoVerifyOpt = Annotated[
    bool, typer.Option("--no-verify", help="Load a bundle even if its files fail the hash check.")
]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format (default: table on a terminal, else jsonl).",
        show_default=False,
    ),
]
ReasoningOpt = Annotated[bool, typer.Option("--reasoning", help="Include the model's reasoning.")]
FailOnOpt = Annotated[FailOn, typer.Option(help="Which harmful label makes the exit code 1.")]
MaxNewOpt = Annotated[int, typer.Option(min=1, help="Generation budget per sample, in tokens.")]
MaxInOpt = Annotated[
    int | None,
    typer.Option(
        min=16,
        help="Truncate inputs longer than this many tokens (default: what fits).",
        show_default=False,
    ),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="Samples generated together.")]


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


def _pick_format(fmt: Format | None, output: Path | None) -> Format:
    if fmt is not None:
        return fmt
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        return {"json": Format.json, "csv": Format.csv}.get(suffix, Format.jsonl)
    return Format.table if sys.stdout.isatty() else Format.jsonl


def _load(model, device, threads, no_verify, options):  # noqa: ANN001, ANN202
    from guardcli.models import open_guard, resolve_model

    resolved = resolve_model(model)
    guard, manifest, chosen = open_guard(
        resolved,
        device=device.value,
        threads=threads,
        verify_hashes=not no_verify,
        options=options,
    )
    threads_used = getattr(guard.engine.backend, "threads", None)
    where = f"{chosen}, {threads_used} threads" if chosen == "cpu" else chosen
    _say(
        f"guardcli: model {manifest.name} ({manifest.precision}) from {resolved.path} "
        f"[{resolved.origin}] on {where}"
    )
    return guard


def _open_output(output: Path | None, resume: bool, fmt: Format):
    from guardcli.outputs import check_resumable, load_done

    if output is None:
        if resume:
            raise UsageError("--resume needs --output FILE", hint="name the file to resume")
        return sys.stdout, set()
    done: set[str] = set()
    if resume:
        check_resumable(output, fmt.value)
        if output.exists():
            done = load_done(output)
        return open(output, "a", encoding="utf-8", newline=""), done
    if output.exists() and output.stat().st_size > 0:
        raise UsageError(
            f"{output} already exists",
            hint="pass --resume to continue it, or choose another --output",
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    return open(output, "w", encoding="utf-8", newline=""), done


def _progress(total: int, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_stderr(),
        disable=not enabled,
        transient=True,
    )


def _moderate(samples, guard, *, fmt, output, resume, reasoning, fail_on, summary, quiet):  # noqa: ANN001
    """Run samples through the guard, writing each result as soon as it exists."""
    from rich.console import Console

    from guardcli.outputs import flagged, make_writer

    stream, done = _open_output(output, resume, fmt)
    todo = [s for s in samples if s.id not in done]
    summary.resumed = len(samples) - len(todo)
    console = Console(file=stream, highlight=False) if fmt is Format.table else None
    writer = make_writer(
        fmt.value, stream, reasoning=reasoning, fail_on=fail_on.value, console=console
    )
    show_bar = sys.stderr.isatty() and not quiet and len(todo) > 1
    try:
        with _progress(len(todo), show_bar) as progress:
            task = progress.add_task("scan", total=len(todo))
            for result in guard.run(todo):
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
    finally:
        writer.close()
        if stream is not sys.stdout:
            stream.close()


def _exit_code(summary: Summary, strict: bool) -> ExitCode:
    if strict and summary.skipped:
        return ExitCode.USAGE
    return ExitCode.FLAGGED if summary.flagged else ExitCode.OK


# ---- commands ---------------------------------------------------------------------------------


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")],
    model: ModelOpt = None,
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
    batch_size: BatchOpt = 8,
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
        from guardcli.guard import GuardOptions
        from guardcli.inputs import InputOptions, Skip, iter_samples
        from guardcli.prompt import build_input
        from guardcli.sanitize import clean_terminal

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
        samples = []
        for item in iter_samples(paths, options, stdin=sys.stdin):
            if isinstance(item, Skip):
                summary.skipped += 1
                where, why = clean_terminal(item.source), clean_terminal(item.reason)
                _say(f"guardcli: skipped {where}: {why}")
            else:
                samples.append(item)
        if dry_run:
            for sample in samples:
                record = {"id": sample.id, "input": build_input(sample.prompt, sample.response)}
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            if not quiet:
                _say(f"guardcli: {len(samples)} inputs, {summary.skipped} skipped (dry run)")
            raise typer.Exit(int(ExitCode.USAGE if strict and summary.skipped else ExitCode.OK))
        if not samples:
            raise UsageError(
                "nothing to scan"
                + (f": all {summary.skipped} inputs were skipped" if summary.skipped else ""),
                hint="check the paths and the messages above",
            )
        fmt_used = _pick_format(fmt, output)
        guard = _load(
            model,
            device,
            threads,
            no_verify,
            GuardOptions(
                max_new_tokens=max_new_tokens,
                max_input_tokens=max_input_tokens,
                batch_size=batch_size,
            ),
        )
        try:
            _moderate(
                samples,
                guard,
                fmt=fmt_used,
                output=output,
                resume=resume,
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


@app.command()
def classify(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user's request.")],
    response: Annotated[
        str | None,
        typer.Option("--response", "-r", help="The AI's response, if any.", show_default=False),
    ] = None,
    model: ModelOpt = None,
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
        from guardcli.guard import GuardOptions
        from guardcli.outputs import flagged, make_writer
        from guardcli.records import Sample

        guard = _load(
            model,
            device,
            threads,
            no_verify,
            GuardOptions(
                max_new_tokens=max_new_tokens, max_input_tokens=max_input_tokens, batch_size=1
            ),
        )
        sample = Sample(id="1", prompt=prompt, response=response, source="--prompt")
        try:
            result = guard.classify_batch([sample])[0]
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        fmt_used = _pick_format(fmt, None)
        from rich.console import Console

        console = Console(highlight=False) if fmt_used is Format.table else None
        with make_writer(
            fmt_used.value, sys.stdout, reasoning=reasoning, fail_on=fail_on.value, console=console
        ) as writer:
            writer.write(result)
        if fmt_used is Format.table and reasoning:
            from guardcli.sanitize import for_terminal

            console.print(for_terminal(result.verdict.raw))
        bad = flagged(result.verdict, fail_on.value)
        raise typer.Exit(int(ExitCode.FLAGGED if bad else ExitCode.OK))


@app.command()
def version() -> None:
    """Print versions of guardcli and its runtime."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    lines = [f"guardcli {__version__}"]
    for name in ("onnxruntime-genai", "onnxruntime-genai-cuda", "onnxruntime", "tokenizers"):
        try:
            lines.append(f"{name} {pkg_version(name)}")
        except PackageNotFoundError:
            continue
    typer.echo("\n".join(lines))


# ---- models -----------------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """Installed bundles (in the user cache) and the one guardcli would use now."""
    with _errors():
        from guardcli.bundle import read_manifest
        from guardcli.models import installed_models, models_dir, resolve_model

        for path in installed_models():
            manifest = read_manifest(path)
            typer.echo(f"{path.name}\t{manifest.precision}\t{manifest.target}\t{path}")
        try:
            resolved = resolve_model(None)
            _say(f"guardcli: default model: {resolved.path} [{resolved.origin}]")
        except GuardError as exc:
            _say(f"guardcli: no default model ({exc})")
        if not installed_models():
            _say(f"guardcli: no models installed in {models_dir()}")


@models_app.command("info")
def models_info(
    model: Annotated[
        str | None, typer.Argument(help="Bundle dir or name (default: resolved).")
    ] = None,
) -> None:
    """Show a bundle's manifest: source, precision, build versions, validation."""
    with _errors():
        from dataclasses import asdict

        from guardcli.bundle import read_manifest
        from guardcli.models import resolve_model

        resolved = resolve_model(model)
        manifest = asdict(read_manifest(resolved.path))
        manifest["files"] = len(manifest["files"])
        manifest["path"] = str(resolved.path)
        manifest["resolved_from"] = resolved.origin
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))


@models_app.command("verify")
def models_verify(
    model: Annotated[
        str | None, typer.Argument(help="Bundle dir or name (default: resolved).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rehash every byte, ignoring the cache.")
    ] = False,
) -> None:
    """Check every file of a bundle against the sha256 in its manifest."""
    with _errors():
        from guardcli.bundle import read_manifest, verify
        from guardcli.errors import ModelError
        from guardcli.models import resolve_model

        resolved = resolve_model(model)
        manifest = read_manifest(resolved.path)
        problems = verify(resolved.path, manifest, full=full)
        for problem in problems:
            _say(f"guardcli: {resolved.path / problem.path}: {problem.reason}")
        if problems:
            raise ModelError(
                f"{resolved.path}: {len(problems)} of {len(manifest.files)} files "
                "fail verification",
                hint="re-copy or rebuild the bundle",
            )
        typer.echo(f"{resolved.path}: OK ({len(manifest.files)} files)")


@models_app.command("path")
def models_path(
    model: Annotated[
        str | None, typer.Argument(help="Bundle dir or name (default: resolved).")
    ] = None,
) -> None:
    """Print the directory of the model guardcli would use."""
    with _errors():
        from guardcli.models import resolve_model

        typer.echo(str(resolve_model(model).path))


@models_app.command("default")
def models_default(
    model: Annotated[str | None, typer.Argument(help="Bundle dir or installed name.")] = None,
    unset: Annotated[bool, typer.Option("--unset", help="Forget the configured default.")] = False,
) -> None:
    """Set (or with --unset, clear) the model used when --model is not given."""
    with _errors():
        from guardcli.models import _locate, set_default

        if unset:
            path = set_default(None)
        elif model is None:
            raise UsageError("name a model or pass --unset")
        else:
            resolved = _locate(model, "argument")
            path = set_default(str(resolved.path.resolve()))
        _say(f"guardcli: wrote {path}")


def main() -> None:
    app()
