"""The ``guardcli`` Typer app: every command registered here, explicitly, in the order
``guardcli --help`` lists them. Each command lives in its own module and imports nothing from
this one; see guardcli.errors.ExitCode for the exit-code contract."""

from __future__ import annotations

import typer

from guardcli import __version__
from guardcli.cli import classify, evaluate, models, scan, serve, tui

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


app.command()(scan.scan)
app.command()(classify.classify)
app.command("eval")(evaluate.eval_)
app.command()(tui.tui)
app.command()(serve.serve)
app.command()(version)

models_app.command("list")(models.models_list)
models_app.command("info")(models.models_info)
models_app.command("verify")(models.models_verify)
models_app.command("path")(models.models_path)
models_app.command("default")(models.models_default)
models_app.command("build")(models.models_build)


def main() -> None:
    app()
