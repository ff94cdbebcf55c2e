"""``guardcli tui``: the interactive console (Textual is imported only when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli import (
    DEFAULT_BATCH,
    Device,
    DeviceOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    NoVerifyOpt,
    ThreadsOpt,
    _errors,
    _open_model,
    app,
)


@app.command()
def tui(
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
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
    max_new_tokens: MaxNewOpt = 1024,
    max_input_tokens: MaxInOpt = None,
) -> None:
    """Interactive console: judge prompts with the reasoning streaming live; batch files."""
    with _errors():
        # Checked before the model loads (that takes a while), like scan's --output.
        if output is not None:
            from guardcli.io.sink import CHOOSE_ANOTHER, refuse_existing

            refuse_existing(output, hint=CHOOSE_ANOTHER)
        guard, manifest, where = _open_model(
            model,
            device,
            threads,
            no_verify,
            max_new_tokens=max_new_tokens,
            max_input_tokens=max_input_tokens,
            batch_size=batch_size,
        )
        from guardcli.tui.app import GuardApp, ModelInfo

        info = ModelInfo(name=manifest.name, precision=manifest.precision, device=where)
        GuardApp(guard, model=info, output=output).run()
