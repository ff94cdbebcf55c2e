"""Where the console's results go on disk: the ``--output`` log and JSONL exports.

Both use ``guardcli.io.outputs`` record shape (with reasoning), so a file written here reads
like ``guardcli scan --reasoning -o`` output and ``--resume`` or ``jq`` treat it the same.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from guardcli.core.records import Result
from guardcli.errors import UsageError
from guardcli.io.outputs import JsonlWriter, json_line, result_record
from guardcli.io.sink import cannot_write, open_output


class OutputLog:
    """Every finished result, one flushed JSONL line each, as soon as it exists.

    A batch worker writes from its thread the moment a result is back, before the interface
    hears of it: quitting mid-batch then loses only the samples still being generated.
    The lock keeps a console result and a batch result from interleaving. ``close`` waits
    for a running job (``begin``/``end``), whose last results may land after the app has
    shut down its interface.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream = open_output(path)
        self._writer = JsonlWriter(self._stream, reasoning=True)
        self._lock = threading.Lock()
        self._jobs = 0
        self._closing = False
        self.count = 0

    def begin(self) -> None:
        with self._lock:
            self._jobs += 1

    def end(self) -> None:
        with self._lock:
            self._jobs -= 1
            if self._closing and not self._jobs:
                self._stream.close()

    def write(self, result: Result) -> None:
        with self._lock:
            if self._stream.closed:
                return
            self._writer.write(result)
            self.count += 1

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if not self._jobs:
                self._stream.close()

    @property
    def closed(self) -> bool:
        return self._stream.closed


def export_jsonl(path: Path, results: Iterable[Result]) -> int:
    """Write results to a new JSONL file and return how many.

    An existing non-empty file is refused rather than overwritten: an export is often made
    at the end of a long session, and clobbering yesterday's export is not undoable.
    """
    if path.is_dir():
        raise UsageError(f"{path} is a folder", hint="give a file name")
    if path.exists() and path.stat().st_size > 0:
        raise UsageError(f"{path} already exists", hint="choose another file name")
    lines = [json_line(result_record(r, reasoning=True)) + "\n" for r in results]
    try:
        with open_output(path, hint=None) as handle:
            handle.writelines(lines)
    except OSError as exc:  # a failed open is already a one-line UsageError
        raise cannot_write(path, exc, hint=None) from None
    return len(lines)
