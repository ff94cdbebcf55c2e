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
from guardcli.core.batching import DEFAULT_BATCH_TOKENS
from guardcli.core.gate import FAIL_ON
from guardcli.core.guard import (
    DEFAULT_BAND,
    DEFAULT_BATCH,
    DEFAULT_MAX_NEW_TOKENS,
    MODES,
    GuardOptions,
)
from guardcli.core.tasks import NAMES
from guardcli.core.windows import DEFAULT_LONG, LONG_POLICIES
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
LongPolicy = _choices("LongPolicy", LONG_POLICIES)

BAND = ",".join(f"{edge:g}" for edge in DEFAULT_BAND)  # "0.2,0.8"
MAX_NEW = DEFAULT_MAX_NEW_TOKENS

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Bundle directory or installed model name.",
        show_default=False,
        metavar="DIR|NAME",
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
        help="What stdout shows (default: table on a terminal, else jsonl). With --output, "
        "stdout shows nothing unless this is given.",
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
LongOpt = Annotated[
    LongPolicy,
    typer.Option(
        "--long",
        help="An input longer than the context: chunk judges it in overlapping windows and "
        "flags it if any window is flagged; truncate keeps its head and counts the cut.",
    ),
]
BatchTokensOpt = Annotated[
    int,
    typer.Option(
        "--batch-tokens",
        min=1,
        help="Most padded input tokens one batch prefills (rows x longest input): long "
        "inputs run alone or in small batches, which bounds memory.",
    ),
]
LowMemoryOpt = Annotated[
    bool,
    typer.Option(
        "--low-memory",
        help="Keep fp32/fp16 weights memory-mapped from the bundle instead of repacked into "
        "private memory: processes share one copy and the kernel may reclaim it (1B fp32: 0.3 "
        "instead of 5.0 GB private), decoding 8-34% slower. No effect on int4/int8 or CUDA.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Only the samples whose id hashes to shard K of N (K from 0, like "
        "$JOB_COMPLETION_INDEX); the N shards' outputs together equal the unsharded run.",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class ModelOptions:
    """Which model to open, where, and how it judges: guardcli.load's arguments, as given.
    They are checked when the model is opened (guardcli.cli.load), which a command does only
    once its inputs are known to need a model (a dry run never does)."""

    model: str | None = None
    device: str = "auto"
    threads: int | None = None
    verify: bool = True  # False: --no-verify
    max_new_tokens: int = MAX_NEW
    max_input_tokens: int | None = None
    mode: str = "reason"
    band: str = BAND  # "LOW,HIGH", as given
    explain_flagged: bool = False
    long: str = DEFAULT_LONG
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    low_memory: bool = False  # --low-memory

    def judging(self, batch_size: int) -> dict[str, object]:
        """How the model judges, as guardcli.load and guardcli.api.guard_options take it: one
        mapping from these options, for the command that opens a model and for batch's actors."""
        return {
            "mode": self.mode,
            "batch_size": batch_size,
            "max_new_tokens": self.max_new_tokens,
            "max_input_tokens": self.max_input_tokens,
            "band": parse_band(self.band),
            "explain_flagged": self.explain_flagged,
            "long": self.long,
            "batch_tokens": self.batch_tokens,
        }

    def guard(self, batch_size: int) -> GuardOptions:
        """These options as the engine takes them (guardcli batch ships them to its actors)."""
        from guardcli.api import guard_options

        return guard_options(**self.judging(batch_size))


def parse_band(text: str) -> tuple[float, float]:
    """ "LOW,HIGH" -> (LOW, HIGH); GuardOptions checks the range, for library callers too."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--band {text!r} is not LOW,HIGH", hint="give two numbers, e.g. --band 0.2,0.8"
        ) from None
    return low, high


def pick_format(fmt: Format | None) -> Format:
    """What stdout shows: --format, else a table on a terminal and JSONL in a pipe."""
    if fmt is not None:
        return fmt
    return Format.table if sys.stdout.isatty() else Format.jsonl


def output_format(output: Path) -> Format:
    """What an --output file holds, from its name: a JSON array for ``.json``, CSV for
    ``.csv``, SARIF for ``.sarif``, else JSONL (one flushed line per result, what --resume
    reads back). --format does not change it: with --output, --format names what stdout shows
    as well."""
    suffix = output.suffix.lower().lstrip(".")
    return Format(suffix) if suffix in FORMATS and suffix != "table" else Format.jsonl
