"""stderr: diagnostics, progress bars, and the one place a GuardError becomes an exit code.

stdout carries data only (verdict records, dry-run inputs, paths); every diagnostic, the
progress bar and the summary go to stderr, so ``guardcli scan ... | jq`` always works. rich is
imported only when something is shown.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from guardcli.core.records import Skip
from guardcli.errors import ExitCode, GuardError


def stderr():  # noqa: ANN201 - rich.console.Console, imported lazily
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A diagnostic line on stderr. It may quote user text (file names, ids, skip reasons)
    or a bundle's manifest (its name, its precision), so it is never markup-interpreted and
    always cleaned: no escape sequence, control or invisible character reaches the terminal."""
    from guardcli.io.sanitize import clean_terminal

    stderr().print(clean_terminal(message), markup=False)


def flat(text: str) -> str:
    """User-derived text for one stderr line: no escapes, no line breaks."""
    from guardcli.io.sanitize import clean_terminal

    return clean_terminal(text).replace("\n", " ")


def say_skip(skip: Skip) -> None:
    say(f"guardcli: skipped {flat(skip.source)}: {flat(skip.reason)}")


def plural(count: int, noun: str) -> str:
    """ "1 input", "2 inputs" (regular nouns only: every noun the CLI counts is one)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


SKIPS_SHOWN = 3  # per file; the rest are counted
_WITHIN_FILE = re.compile(r"(:\d+|#[^/\\]*)$")  # "path:12", "path#3" -> "path"


class SkipReporter:
    """The skip lines of one run: the first few of each file, then one count per file, so a
    folder of 96 prompt-less lines says what is wrong in four lines instead of 96 (the
    summary still counts every skip)."""

    def __init__(self, shown: int = SKIPS_SHOWN) -> None:
        self.shown = shown
        self.counts: dict[str, int] = {}

    def __call__(self, skip: Skip) -> None:
        where = _WITHIN_FILE.sub("", skip.source) or skip.source
        seen = self.counts[where] = self.counts.get(where, 0) + 1
        if seen <= self.shown:
            say_skip(skip)

    def finish(self) -> None:
        """One line per file with more skips than were shown; once, at the end of the run."""
        for where, seen in self.counts.items():
            if seen > self.shown:
                more = plural(seen - self.shown, "more line")
                say(f"guardcli: ... {more} skipped in {flat(where)}")
        self.counts.clear()


@contextmanager
def errors() -> Iterator[None]:
    """The single place where GuardError becomes a message and an exit code
    (guardcli.errors.ExitCode is the contract)."""
    try:
        yield
    except GuardError as exc:
        say(f"guardcli: error: {flat(str(exc))}")
        raise typer.Exit(int(exc.exit_code)) from None
    except BrokenPipeError:
        # The reader went away (``| head -n 1``): nothing is wrong and nothing more can be
        # shown. stdout now points at /dev/null so the interpreter's last flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(int(ExitCode.BROKEN_PIPE)) from None
    except OSError as exc:  # a write failed mid-run: disk full, I/O error, a vanished mount
        where = f"{flat(str(exc.filename))}: " if exc.filename else ""
        say(
            f"guardcli: error: {where}cannot write the output ({exc.strerror or exc}); "
            "the results written before it are kept - free space or choose another --output"
        )
        raise typer.Exit(int(ExitCode.IO)) from None


def progress(total: int | None, enabled: bool, label: str = "scanning"):  # noqa: ANN201
    """A transient bar on stderr: items done of ``total``, elapsed and remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        disable=not enabled,
        transient=True,
    )


def bytes_progress():  # noqa: ANN201 - rich.progress.Progress, imported lazily
    """A transient bar on stderr counting bytes (building a model)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        transient=True,
    )
