"""The options commands share, their choices generated from the core vocabularies.

Each choice (--format, --fail-on, --split, --mode, --device, --task) is an Enum built from the
tuple of allowed values that the code which uses it owns, so a value is listed once and Typer
refuses anything else at the edge. Everything the model needs travels as one ``ModelOptions``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from guardcli.backends.genai import DEVICES
from guardcli.core.gate import FAIL_ON
from guardcli.core.guard import (
    DEFAULT_BAND,
    DEFAULT_BATCH,
    DEFAULT_MAX_NEW_TOKENS,
    MODES,
    GuardOptions,
)
from guardcli.core.tasks import NAMES
from guardcli.errors import UsageError
from guardcli.io.options import SPLITS
from guardcli.io.outputs import FORMATS


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum whose members are ``values``, named as themselves (``Format.json``)."""
    return Enum(name, {value: value for value in values}, type=str)


Format = _choices("Format", FORMATS)
FailOn = _choices("FailOn", FAIL_ON)
Split = _choices("Split", SPLITS)
RunMode = _choices("RunMode", MODES)
Device = _choices("Device", DEVICES)
TaskChoice = _choices("TaskChoice", NAMES)

BAND = ",".join(f"{edge:g}" for edge in DEFAULT_BAND)  # "0.2,0.8"
MAX_NEW = DEFAULT_MAX_NEW_TOKENS

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
AllowInjectionOpt = Annotated[
    bool,
    typer.Option(
        "--allow-injection",
        help="Judge inputs carrying template markers by their labels alone "
        "(by default any such input makes the exit code 1).",
    ),
]
MaxNewOpt = Annotated[int, typer.Option(min=1, help="Generation budget per sample, in tokens.")]
MaxInOpt = Annotated[
    int | None,
    typer.Option(
        min=16,
        help="Truncate inputs longer than this many tokens (default: what fits).",
        show_default=False,
    ),
]
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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]


@dataclass(frozen=True)
class ModelOptions:
    """Which model to open, where, and how it judges. The guard's options are checked when
    ``guard`` makes them: just before the model is opened, which a command does only once its
    inputs are known to need a model (a dry run never does)."""

    model: str | None = None
    device: str = "auto"
    threads: int | None = None
    verify: bool = True  # False: --no-verify
    max_new_tokens: int = MAX_NEW
    max_input_tokens: int | None = None
    mode: str = "reason"
    band: str = BAND  # "LOW,HIGH", as given
    explain_flagged: bool = False

    def guard(self, batch_size: int) -> GuardOptions:
        return GuardOptions(
            max_new_tokens=self.max_new_tokens,
            max_input_tokens=self.max_input_tokens,
            batch_size=batch_size,
            mode=self.mode,
            band=parse_band(self.band),
            explain_flagged=self.explain_flagged,
        )


def parse_band(text: str) -> tuple[float, float]:
    """ "LOW,HIGH" -> (LOW, HIGH); Guard checks the range, for library callers too."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--band {text!r} is not LOW,HIGH", hint="give two numbers, e.g. --band 0.2,0.8"
        ) from None
    return low, high


def pick_format(fmt: Format | None, output: Path | None) -> Format:
    """--format, else what --output's suffix says, else a table on a terminal and JSONL in a
    pipe."""
    if fmt is not None:
        return fmt
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        return {"json": Format.json, "csv": Format.csv}.get(suffix, Format.jsonl)
    return Format.table if sys.stdout.isatty() else Format.jsonl
