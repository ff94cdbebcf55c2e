"""``guardcli serve``: the guard as a local moderation endpoint (Starlette and uvicorn are
imported only when it runs, from the ``serve`` extra)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from guardcli.cli.console import errors
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
    ThreadsOpt,
)
from guardcli.errors import UsageError
from guardcli.serve.config import (
    API_KEY_ENV,
    DEFAULT_BATCH,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_INPUTS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WAIT_MS,
    ServeOptions,
)

INSTALL = "pip install 'guardcli[serve]'"


@dataclass(frozen=True)
class ServeCommand:
    """Everything ``guardcli serve`` was told, made once from its command line."""

    server: ServeOptions
    model: ModelOptions


def serve(
    model: ModelOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs an API key.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = DEFAULT_PORT,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = BAND,
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    low_memory: LowMemoryOpt = False,
    no_verify: NoVerifyOpt = False,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Inputs generated together in one engine batch.")
    ] = DEFAULT_BATCH,
    wait_ms: Annotated[
        float, typer.Option(min=0, help="How long an idle server waits to fill a batch.")
    ] = DEFAULT_WAIT_MS,
    max_queue: Annotated[
        int, typer.Option(min=1, help="Inputs that may wait for a batch; beyond, 429.")
    ] = DEFAULT_MAX_QUEUE,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a request may take; beyond, 504.")
    ] = DEFAULT_TIMEOUT_S,
    max_body: Annotated[
        int, typer.Option(min=1, help="Largest request body in bytes; beyond, 413.")
    ] = DEFAULT_MAX_BODY,
    max_inputs: Annotated[
        int, typer.Option(min=1, help="Most inputs in one request; beyond, 400.")
    ] = DEFAULT_MAX_INPUTS,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar=API_KEY_ENV,
            help="Require 'Authorization: Bearer KEY' on every route but /healthz and /readyz.",
            show_default=False,
        ),
    ] = None,
    log_requests: Annotated[
        bool, typer.Option("--log-requests", help="Also log request text (escaped) on stderr.")
    ] = False,
) -> None:
    """Serve the guard over HTTP: OpenAI-compatible /v1/moderations and native /v1/guard."""
    with errors():
        command = ServeCommand(
            server=ServeOptions(
                host=host,
                port=port,
                batch_size=batch_size,
                wait_ms=wait_ms,
                max_queue=max_queue,
                timeout_s=timeout,
                max_body=max_body,
                max_inputs=max_inputs,
                api_key=api_key,
                log_requests=log_requests,
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
                low_memory=low_memory,
            ),
        )
        run_serve(command)


def run_serve(command: ServeCommand) -> None:
    try:
        from guardcli.serve.server import bind
        from guardcli.serve.server import serve as run_server
    except ImportError as exc:
        raise UsageError(
            f"guardcli serve needs the serve extra ({exc.name or exc} is not installed)",
            hint=INSTALL,
        ) from None
    from guardcli.serve.batcher import Batcher
    from guardcli.serve.pool import GuardPool
    from guardcli.serve.requests import Limits
    from guardcli.serve.state import ServeState

    options = command.server
    sock = bind(options.host, options.port)
    opened = open_model(command.model, batch_size=options.batch_size)
    guard = opened.guard
    pool = GuardPool(guard)
    batcher = Batcher(
        pool.judge,
        batch_size=options.batch_size,
        wait_s=options.wait_ms / 1000,
        max_queue=options.max_queue,
    )
    limits = Limits(options.max_inputs, guard.options.max_new_tokens, guard.options.mode)
    run_server(ServeState(options, batcher, limits, model_name=opened.manifest.name), sock)
