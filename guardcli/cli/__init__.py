"""The ``guardcli`` command line: thin Typer commands over guardcli's pipeline.

app.py builds the Typer app and registers every command; options.py holds the shared options
(their choices generated from the core vocabularies) and ModelOptions; console.py is stderr:
diagnostics, progress, and the one place a GuardError becomes an exit code; load.py opens the
model; one module per command (scan, classify, evaluate, models, tui) turns its command line
into one options dataclass and runs it.
"""

from guardcli.cli.app import app, main

__all__ = ["app", "main"]
