"""Opening the model a command's ModelOptions name, and saying on stderr which it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from guardcli.cli.console import say
from guardcli.cli.options import ModelOptions

if TYPE_CHECKING:  # the bundle and guard modules load with the model, not with --help
    from guardcli.bundles.manifest import Manifest
    from guardcli.core.guard import Guard, GuardOptions


@dataclass(frozen=True)
class Opened:
    guard: Guard
    manifest: Manifest
    where: str  # "cpu, 4 threads" | "cuda"


def open_model(options: ModelOptions, *, batch_size: int) -> Opened:
    """Resolve and open the model, and say which on stderr."""
    from guardcli.bundles.resolve import open_guard, resolve_model

    guard_options = options.guard(batch_size)  # a bad option fails before the model loads
    resolved = resolve_model(options.model)
    guard, manifest, chosen = open_guard(
        resolved,
        device=options.device,
        threads=options.threads,
        verify_hashes=options.verify,
        options=guard_options,
    )
    threads_used = getattr(guard.engine.backend, "threads", None)
    plural = "" if threads_used == 1 else "s"
    where = f"{chosen}, {threads_used} thread{plural}" if chosen == "cpu" else chosen
    say(
        f"guardcli: model {manifest.name} ({manifest.precision}) from {resolved.path} "
        f"[{resolved.origin}] on {where}, {describe_mode(guard.options)}"
    )
    return Opened(guard, manifest, where)


def describe_mode(options: GuardOptions) -> str:
    if options.mode != "cascade":
        return f"{options.mode} mode"
    low, high = options.band
    also = ", and every flagged sample" if options.explain_flagged else ""
    return f"cascade mode (reasoning for harm scores in {low:g}..{high:g}{also})"
