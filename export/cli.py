"""One ``main()`` for every ``python -m export...`` command: the error edge of the pipeline.

A failure the user can act on is a ``GuardError`` (export's own kinds are in
``export/__init__.py``); it is printed here as one line on stderr and becomes its documented
exit code (``guardcli.errors.ExitCode``: 2 bad options or data, 3 no model or a failed build).
Ctrl-C prints the command's own advice on continuing and exits 130. A traceback means a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from guardcli.errors import ExitCode, GuardError

INTERRUPTED = "interrupted"


def run_main(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    *,
    interrupted: str = INTERRUPTED,
) -> int:
    """Parse ``argv`` (argparse exits 2 on bad arguments itself), run ``body`` and return its
    exit status (None is 0), or the exit code of the error that stopped it."""
    args = parser.parse_args(argv)
    try:
        return int(body(args) or ExitCode.OK)
    except GuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
