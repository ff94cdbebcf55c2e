"""The job's one writer: each id appended at most once, whatever Ray retries.

Ray re-runs the task of an actor that dies, and a task streams its batches out as they
finish, so a batch written before the death can come back again. Only the driver writes; it
holds the output's lock (guardcli.io.sink: a second run on the same file is refused) and the
ids already in the file (after ``--resume``'s repair of a line a kill cut short), writes each
new record as one flushed line and drops any id it has written. With ``--resume`` reading the
file back, a job killed at any point and rerun ends with every id exactly once.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import IO


class OnceWriter:
    def __init__(self, stream: IO[str], written: Collection[str] = ()) -> None:
        self.stream = stream
        self.written: set[str] = set(written)
        self.repeats = 0  # records Ray delivered twice, dropped

    def write(self, ident: str, line: str) -> bool:
        """Append ``line`` unless ``ident`` is already in the file; whether it was."""
        if ident in self.written:
            self.repeats += 1
            return False
        self.stream.write(line + "\n")  # one write per line: a kill cuts it, never interleaves
        self.stream.flush()
        self.written.add(ident)
        return True
