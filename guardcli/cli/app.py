"""The ``guardcli`` Typer app: every command registered here, explicitly, in the order
``guardcli --help`` lists them. Each command lives in its own module and imports nothing from
this one; see guardcli.errors.ExitCode for the exit-code contract."""

from __future__ import annotations

import typer

from guardcli import __version__
from guardcli.cli import batch, classify, evaluate, models, scan, serve, tui
from guardcli.cli.command import GuardCommand

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


app.command(cls=GuardCommand)(scan.scan)
app.command(cls=GuardCommand)(classify.classify)
app.command("eval", cls=GuardCommand)(evaluate.eval_)
app.command(cls=GuardCommand)(batch.batch)
app.command(cls=GuardCommand)(tui.tui)
app.command(cls=GuardCommand)(serve.serve)
app.command(cls=GuardCommand)(version)

models_app.command("list", cls=GuardCommand)(models.models_list)
models_app.command("info", cls=GuardCommand)(models.models_info)
models_app.command("verify", cls=GuardCommand)(models.models_verify)
models_app.command("path", cls=GuardCommand)(models.models_path)
models_app.command("default", cls=GuardCommand)(models.models_default)
models_app.command("build", cls=GuardCommand)(models.models_build)


def main() -> None:
    app()
