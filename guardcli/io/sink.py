"""Output files: refusing to clobber one, resuming one, opening one for writing.

``guardcli scan -o``, ``guardcli eval -o DIR`` and the TUI's ``--output`` and exports all go
through here, so they refuse, resume and fail in the same words. A batch can run for hours
and be killed at any moment: every writer appends one flushed line per result, and
``load_done`` repairs the one line a kill can cut short.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from guardcli.core.guard import MODES
from guardcli.errors import InputError, UsageError

CHOOSE_ANOTHER = "choose another --output"
_HELD: dict[Path, IO[str]] = {}  # output locks this process holds, until it exits


def lock_output(path: Path) -> None:
    """Hold an exclusive lock on ``path`` for the rest of this process, or refuse.

    Two runs appending to one output interleave and cut each other's lines, and two
    ``--resume`` runs judge the same samples twice; so the second one is refused, naming the
    first. The lock is ``flock`` on a small file beside the output (``.NAME.lock``, which
    records the holder); the kernel drops it when the holder exits, even by SIGKILL, so a
    killed run never leaves a stale lock. The lock file itself stays (removing it would let
    two runs lock two different files).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, as before
        return
    lock = _lock_file(path)
    key = lock.resolve()
    if key in _HELD:
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - held until exit
    except OSError as exc:
        raise cannot_write(lock, exc) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = " ".join(handle.read().split()) or "another process"
        handle.close()
        raise UsageError(
            f"{path} is being written by another guardcli run ({holder})",
            hint="wait for that run to end, or " + CHOOSE_ANOTHER,
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _HELD[key] = handle


def _lock_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def release_output(path: Path) -> bool:
    """Give up this process's lock on ``path`` (a long-lived caller that is done with it);
    returns whether it was held."""
    handle = _HELD.pop(_lock_file(path).resolve(), None)
    if handle is not None:
        handle.close()
    return handle is not None


def refuse_existing(path: Path, *, hint: str) -> None:
    """A path that holds anything (a non-empty file, a folder) is never overwritten."""
    if path.exists() and (not path.is_file() or path.stat().st_size > 0):
        raise UsageError(f"{path} already exists", hint=hint)


def check_output(
    output: Path | None, *, resume: bool, fmt: str, mode: str | None = None
) -> dict[str, dict]:
    """Refuse a bad --output/--resume before the model loads (that takes seconds to minutes),
    and return the records a resumed file already holds, by id. With ``mode`` (the run's
    ``--mode``), a file whose records another mode wrote is refused rather than mixed."""
    if output is None:
        if resume:
            raise UsageError("--resume needs --output FILE", hint="name the file to resume")
        return {}
    lock_output(output)  # before a resume repairs the file: no other run may be writing it
    if resume:
        check_resumable(output, fmt)
        records = load_results(output) if output.exists() else {}
        if mode is not None:
            check_same_mode(output, records.values(), mode)
        return records
    refuse_existing(output, hint="pass --resume to continue it, or " + CHOOSE_ANOTHER)
    return {}


def cannot_write(path: Path, exc: OSError, hint: str | None = CHOOSE_ANOTHER) -> UsageError:
    return UsageError(f"{path}: cannot write ({exc.strerror or exc})", hint=hint)


def open_output(
    path: Path, *, append: bool = False, newline: str | None = "", hint: str | None = CHOOSE_ANOTHER
) -> IO[str]:
    """``path`` opened for writing UTF-8 text (its folder made first), or a one-line error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a" if append else "w", encoding="utf-8", newline=newline)  # noqa: SIM115
    except OSError as exc:
        raise cannot_write(path, exc, hint) from None


# ---- resume ------------------------------------------------------------------------------------


def check_resumable(path: Path, fmt: str) -> None:
    """Only JSONL can be resumed: one record per line is what makes a cut-off run readable."""
    if fmt != "jsonl":
        raise UsageError(
            f"--resume works only with JSONL output, not {fmt}",
            hint="use --format jsonl (or an --output ending in .jsonl)",
        )
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} is not a file", hint="give --output a file path to resume")


def writers_of(record: dict[str, Any]) -> frozenset[str]:
    """The ``--mode`` values that could have written ``record``, read from its own fields: a
    verdict made without reasoning says ``"mode": "fast"`` (fast, or cascade's triage); a
    reasoned one carries triage scores only under cascade. A record without a generation (the
    model failed on it) could come from any mode."""
    made = record.get("mode")
    if made == "fast":
        return frozenset({"fast", "cascade"})
    if made == "reason":
        scored = record.get("request_score") is not None
        return frozenset({"cascade"} if scored else {"reason"})
    return frozenset(MODES)


def check_same_mode(path: Path, records: Iterable[dict[str, Any]], mode: str) -> None:
    """Refuse to resume ``path`` with a ``--mode`` that did not write its records: the batch
    would mix verdicts made two ways (with and without reasoning, scored and not), silently.

    Records cannot tell a fast run from a cascade whose samples all stayed fast, so those
    two resume each other; every other pair is told apart and refused."""
    for record in records:
        possible = writers_of(record)
        if mode not in possible:
            written = "|".join(m for m in MODES if m in possible)
            raise UsageError(
                f"cannot resume {path}: its records were written with --mode {written}, "
                f"this run is --mode {mode}",
                hint=f"resume with --mode {written}, or " + CHOOSE_ANOTHER,
            )


def load_done(path: Path) -> set[str]:
    """Ids already in a JSONL output, after repairing a last line cut off by a kill.

    The cut-off line is truncated away (the file then ends at its last good line, so new
    results append cleanly) and its sample runs again. A bad line anywhere else is not a
    kill's doing, so we stop rather than guess.
    """
    done: set[str] = set()
    good_end = 0  # byte offset just past the last good line
    bad_line: int | None = None  # fatal unless it turns out to be the last line
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if bad_line is not None:
                raise InputError(
                    f"cannot resume: {path}:{bad_line} is not a guardcli JSONL record",
                    hint="move the file away or fix the line",
                )
            offset += len(raw)
            complete = raw.endswith(b"\n")  # only the last line can lack it
            ident = _record_id(raw) if raw.strip() else ""
            if ident is None or not complete:
                bad_line = number
            elif ident:
                done.add(ident)
            if bad_line is None:
                good_end = offset
    if offset != good_end:
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
            handle.flush()
            os.fsync(handle.fileno())
    return done


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """The records already in a JSONL output, by id, after ``load_done``'s repair: a resumed
    run counts them in its summary and exit code, so killing and resuming a batch cannot
    turn "flagged" into "clean"."""
    done = load_done(path)
    records: dict[str, dict[str, Any]] = {}
    with open(path, "rb") as handle:
        for raw in handle:
            ident = _record_id(raw) if raw.strip() else None
            if ident in done:
                records[ident] = json.loads(raw)
    return records


def _record_id(raw: bytes) -> str | None:
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or "id" not in record:
        return None
    ident = record["id"]
    return ident if isinstance(ident, str) else json.dumps(ident)
