"""Opening the model a command's ModelOptions name (through the Python API, guardcli.load, so
the command line and embedding applications open and verify a model the same way), and
saying on stderr which it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardcli.cli.console import say
from guardcli.cli.options import ModelOptions

if TYPE_CHECKING:  # the API's model loads with the model, not with --help
    from guardcli.api import GuardModel
    from guardcli.core.guard import GuardOptions


def open_model(options: ModelOptions, *, batch_size: int) -> GuardModel:
    """Resolve, verify and open the model, and say which on stderr."""
    from guardcli.api import load

    opened = load(
        options.model,
        device=options.device,
        threads=options.threads,
        verify=options.verify,
        low_memory=options.low_memory,
        **options.judging(batch_size),
    )
    manifest = opened.manifest
    say(
        f"guardcli: model {manifest.name} ({manifest.precision}) from {opened.path} "
        f"[{opened.origin}] on {where(opened)}, {describe_mode(opened.options)}"
        f"{describe_memory(options.low_memory, opened)}"
    )
    from guardcli.bundles.resolve import EMBEDDED

    if opened.origin == EMBEDDED:
        from guardcli.bundles.nano import outdated

        if outdated(opened.path):
            say(
                "guardcli: this nano was built by another guardcli version; "
                "'guardcli models build nano' builds the one this version ships"
            )
    return opened


def where(opened: GuardModel) -> str:
    """ "cpu, 4 threads" or "cuda"."""
    if opened.threads is None:
        return opened.device
    plural = "" if opened.threads == 1 else "s"
    return f"{opened.device}, {opened.threads} thread{plural}"


def describe_memory(asked: bool, opened: GuardModel) -> str:
    if opened.low_memory:
        return ", weights memory-mapped (--low-memory)"
    if asked:
        why = "CUDA" if opened.device != "cpu" else f"{opened.manifest.precision} weights"
        return f" (--low-memory has no effect on {why})"
    return ""


def describe_mode(options: GuardOptions) -> str:
    if options.mode != "cascade":
        return f"{options.mode} mode"
    low, high = options.band
    also = ", and every flagged sample" if options.explain_flagged else ""
    return f"cascade mode (reasoning for harm scores in {low:g}..{high:g}{also})"
