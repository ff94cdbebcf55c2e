"""``guardcli classify``: judge one prompt (and optionally the AI's response) given on the
command line."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

import typer

from guardcli.cli.console import errors, say
from guardcli.cli.load import open_model
from guardcli.cli.options import (
    BAND,
    MAX_NEW,
    AllowInjectionOpt,
    BandOpt,
    Device,
    DeviceOpt,
    ExplainOpt,
    FailOn,
    FailOnOpt,
    Format,
    FormatOpt,
    LowMemoryOpt,
    MaxInOpt,
    MaxNewOpt,
    ModelOpt,
    ModelOptions,
    ModeOpt,
    NoVerifyOpt,
    ReasoningOpt,
    RunMode,
    ThreadsOpt,
    pick_format,
)
from guardcli.core.gate import flagged, injection_fails
from guardcli.core.records import Sample
from guardcli.errors import ExitCode


@dataclass(frozen=True)
class ClassifyOptions:
    """Everything ``guardcli classify`` was told, made once from its command line."""

    prompt: str
    response: str | None
    model: ModelOptions
    fmt: Format | None = None  # None: a table on a terminal, else JSONL
    reasoning: bool = False
    fail_on: str = "any"
    allow_injection: bool = False


def classify(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user's request.")],
    response: Annotated[
        str | None,
        typer.Option("--response", "-r", help="The AI's response, if any.", show_default=False),
    ] = None,
    model: ModelOpt = None,
    mode: ModeOpt = RunMode.reason,
    band: BandOpt = BAND,
    explain_flagged: ExplainOpt = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    low_memory: LowMemoryOpt = False,
    no_verify: NoVerifyOpt = False,
    fmt: FormatOpt = None,
    reasoning: ReasoningOpt = False,
    fail_on: FailOnOpt = FailOn.any,
    allow_injection: AllowInjectionOpt = False,
    max_new_tokens: MaxNewOpt = MAX_NEW,
    max_input_tokens: MaxInOpt = None,
) -> None:
    """Judge one prompt (and optionally the AI's response)."""
    with errors():
        options = ClassifyOptions(
            prompt=prompt,
            response=response,
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
            fmt=fmt,
            reasoning=reasoning,
            fail_on=fail_on.value,
            allow_injection=allow_injection,
        )
        raise typer.Exit(int(run_classify(options)))


def run_classify(options: ClassifyOptions) -> ExitCode:
    from guardcli.io.outputs import make_writer

    model = open_model(options.model, batch_size=1)
    sample = Sample(id="1", prompt=options.prompt, response=options.response, source="--prompt")
    try:
        [result] = model.classify_many([sample])  # applies the long-input policy
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    if result.generation is not None and result.generation.truncated_input:
        say("guardcli: warning: the input was truncated to fit the context")
    if result.injection:
        say(
            "guardcli: warning: the input carries text shaped like the guard's own template "
            f"({', '.join(result.injection)})"
        )
    fmt = pick_format(options.fmt)
    with make_writer(
        fmt.value, sys.stdout, reasoning=options.reasoning, fail_on=options.fail_on
    ) as writer:
        writer.write(result)
    injected = injection_fails(len(result.injection), allow_injection=options.allow_injection)
    gate = flagged(result.verdict, options.fail_on) or injected
    return ExitCode.FLAGGED if gate else ExitCode.OK
