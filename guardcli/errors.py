"""One error type, one set of exit codes.

Every failure the user can act on is a ``GuardError``; the CLI catches it once and turns
it into a one-line message and the documented exit code. Tracebacks are for bugs only.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Public contract: CI gates depend on these numbers. Never renumber."""

    OK = 0  # nothing flagged
    FLAGGED = 1  # at least one sample flagged (see --fail-on)
    USAGE = 2  # bad arguments or bad input (and any skip under --strict)
    MODEL = 3  # no model, a broken bundle, or an inference failure
    IO = 4  # the output could not be written (disk full, I/O error); finished results are kept
    INTERRUPTED = 130  # Ctrl-C; finished results are kept
    BROKEN_PIPE = 141  # stdout closed by its reader (| head): stop quietly, as Unix tools do


class GuardError(Exception):
    """Base for every error shown to the user as one line."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} - {self.hint}" if self.hint else self.message


class InputError(GuardError):
    """A file or stdin record we cannot read as a sample."""

    exit_code = ExitCode.USAGE


class UsageError(GuardError):
    exit_code = ExitCode.USAGE


class ModelError(GuardError):
    """No model, a bundle that fails verification, or the runtime failing."""

    exit_code = ExitCode.MODEL


def one_of(values: Iterable[str]) -> str:
    """Allowed values for a hint: "a, b or c"."""
    *head, last = values
    return f"{', '.join(head)} or {last}" if head else last
