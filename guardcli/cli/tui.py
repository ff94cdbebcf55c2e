"""``guardcli tui``: the interactive console (Textual is imported only when it runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli.console import errors
from guardcli.cli.load import open_model, where
from guardcli.cli.options import (
    MAX_NEW,
    Device,
    DeviceOpt,
    LowMemoryOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModelOptions,
    NoVerifyOpt,
    ThreadsOpt,
)
from guardcli.core.guard import DEFAULT_BATCH


@dataclass(frozen=True)
class TuiOptions:
    """Everything ``guardcli tui`` was told, made once from its command line."""

    model: ModelOptions
    output: Path | None = None
    batch_size: int = DEFAULT_BATCH


def tui(
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    low_memory: LowMemoryOpt = False,
    no_verify: NoVerifyOpt = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write every result (console and batch) here as JSONL, as it finishes.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Samples generated together in a batch.")
    ] = DEFAULT_BATCH,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
) -> None:
    """Interactive console: judge prompts with the reasoning streaming live; batch files."""
    with errors():
        model_options = ModelOptions(
            model,
            device.value,
            threads,
            not no_verify,
            max_new_tokens,
            max_input_tokens,
            low_memory=low_memory,
        )
        run_tui(TuiOptions(model_options, output, batch_size))


def run_tui(options: TuiOptions) -> None:
    if options.output is not None:  # checked before the model loads (that takes a while)
        from guardcli.io.sink import CHOOSE_ANOTHER, lock_output, refuse_existing

        refuse_existing(options.output, hint=CHOOSE_ANOTHER)
        lock_output(options.output)
    opened = open_model(options.model, batch_size=options.batch_size)
    from guardcli.tui.app import GuardApp
    from guardcli.tui.widgets import ModelInfo

    manifest = opened.manifest
    info = ModelInfo(name=manifest.name, precision=manifest.precision, device=where(opened))
    GuardApp(opened.guard, model=info, output=options.output).run()
