"""The ``guardcli`` command line: thin Typer commands over guardcli's pipeline.

stdout carries data only (verdict records, dry-run inputs, paths); every diagnostic, the
progress bar and the summary go to stderr, so ``guardcli scan ... | jq`` always works.
GuardError is turned into a one-line message and its documented exit code in one place
(``_errors``); see guardcli.errors.ExitCode for the contract.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from guardcli import __version__
from guardcli.errors import GuardError, UsageError

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


class RunMode(str, Enum):
    reason = "reason"
    fast = "fast"
    cascade = "cascade"


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
        _say(f"guardcli: error: {_flat(str(exc))}")
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
DEFAULT_BATCH = 8
ModeOpt = Annotated[
    RunMode,
    typer.Option(
        "--mode",
        help="reason: full reasoning for every sample. fast: no reasoning, a score per task "
        "from the label tokens (one prefill). cascade: fast for all, full reasoning where a "
        "harm score falls in --band.",
    ),
]
BandOpt = Annotated[
    str,
    typer.Option(
        "--band", help="cascade: harm scores in LOW,HIGH are reasoned about.", metavar="LOW,HIGH"
    ),
]
ExplainOpt = Annotated[
    bool,
    typer.Option(
        "--explain-flagged",
        help="cascade: also reason about every sample triage flags, so each carries its reasoning.",
    ),
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help=f"Samples generated together (default {DEFAULT_BATCH}; 1 when stdin is a pipe or "
        "terminal, so each sample is judged as it arrives).",
        show_default=False,
    ),
]


def _pick_format(fmt: Format | None, output: Path | None) -> Format:
    if fmt is not None:
        return fmt
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        return {"json": Format.json, "csv": Format.csv}.get(suffix, Format.jsonl)
    return Format.table if sys.stdout.isatty() else Format.jsonl


def _open_model(model, device, threads, no_verify, **options):  # noqa: ANN001, ANN202
    """Resolve and open the model, say which on stderr; returns (guard, manifest, where).
    ``options`` are GuardOptions fields (mode may be a RunMode, band a "LOW,HIGH" string)."""
    from guardcli.bundles.resolve import open_guard, resolve_model
    from guardcli.core.guard import GuardOptions

    if isinstance(options.get("mode"), RunMode):
        options["mode"] = options["mode"].value
    if isinstance(options.get("band"), str):
        options["band"] = parse_band(options["band"])
    guard_options = GuardOptions(**options)  # a bad option fails before the model loads
    resolved = resolve_model(model)
    guard, manifest, chosen = open_guard(
        resolved,
        device=device.value,
        threads=threads,
        verify_hashes=not no_verify,
        options=guard_options,
    )
    threads_used = getattr(guard.engine.backend, "threads", None)
    plural = "" if threads_used == 1 else "s"
    where = f"{chosen}, {threads_used} thread{plural}" if chosen == "cpu" else chosen
    _say(
        f"guardcli: model {manifest.name} ({manifest.precision}) from {resolved.path} "
        f"[{resolved.origin}] on {where}, {_describe_mode(guard.options)}"
    )
    return guard, manifest, where


def _describe_mode(options) -> str:  # noqa: ANN001 - GuardOptions
    if options.mode != "cascade":
        return f"{options.mode} mode"
    low, high = options.band
    also = ", and every flagged sample" if options.explain_flagged else ""
    return f"cascade mode (reasoning for harm scores in {low:g}..{high:g}{also})"


def parse_band(text: str) -> tuple[float, float]:
    """ "LOW,HIGH" -> (LOW, HIGH); Guard checks the range, for library callers too."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--band {text!r} is not LOW,HIGH", hint="give two numbers, e.g. --band 0.2,0.8"
        ) from None
    return low, high


def _load(model, device, threads, no_verify, **options):  # noqa: ANN001, ANN202
    return _open_model(model, device, threads, no_verify, **options)[0]


def _check_output(output: Path | None, resume: bool, fmt: Format) -> dict[str, dict]:
    """Refuse a bad --output/--resume before the model loads (that takes seconds to minutes),
    and return the records a resumed file already holds, by id."""
    from guardcli.io.sink import check_output

    return check_output(output, resume=resume, fmt=fmt.value)


def _progress(total: int | None, enabled: bool, label: str = "scanning"):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_stderr(),
        disable=not enabled,
        transient=True,
    )


def _flat(text: str) -> str:
    """User-derived text for one stderr line: no escapes, no line breaks."""
    from guardcli.io.sanitize import clean_terminal

    return clean_terminal(text).replace("\n", " ")


# ---- commands ---------------------------------------------------------------------------------
# Importing each command module registers its commands on ``app`` (or ``models_app``); the order
# of these imports is the order ``guardcli --help`` lists the commands in.

# isort: off
from guardcli import cli_scan  # noqa: E402, F401  (scan, classify)
from guardcli import cli_eval  # noqa: E402, F401  (eval)
from guardcli import cli_tui  # noqa: E402, F401  (tui)
from guardcli import cli_models  # noqa: E402, F401  (models ...)
# isort: on


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


def main() -> None:
    app()
