"""Files, folders and stdin -> a stream of Samples (and Skips for what cannot be read).

A scan of a real folder meets every kind of junk: binaries, Latin-1 files, half-written JSONL,
a CSV with another column name. None of it may stop the scan or be silently dropped, so each
bad input becomes one ``Skip`` saying what is wrong and what to do, and the CLI reports and
counts it. Only a path that does not exist stops everything, before any work: that is a typo.

Big files are streamed line by line (JSONL, text with --split); only formats that must be
parsed whole (a text file as one prompt, a JSON document) are read into memory. The work is
split: guardcli.io.walk finds files and decodes bytes into lines, guardcli.io.readers turns
lines into records, guardcli.io.objects turns a record into a Sample.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO, TextIO

from guardcli.core.records import Sample, Skip
from guardcli.errors import InputError
from guardcli.io import readers, walk
from guardcli.io.objects import sample_of
from guardcli.io.options import InputOptions
from guardcli.io.readers import Found, Item
from guardcli.io.walk import BINARY, BadUtf8, BinaryInput, Line

STDIN = "-"
STDIN_NAME = "<stdin>"


def iter_samples(
    paths: Sequence[str], options: InputOptions, stdin: TextIO | BinaryIO | None = None
) -> Iterator[Sample | Skip]:
    """Every sample in ``paths`` in order, ids made unique across the whole run.

    Not a generator itself: missing paths raise here, at the call, so a typo fails before any
    file is read or any model is loaded (bad options already failed when ``options`` was made).
    """
    check_paths(paths)
    return _unique_ids(_all_items(paths, options, stdin))


def check_paths(paths: Sequence[str]) -> None:
    """A path that does not exist is a typo: refuse it before any work."""
    for path in paths:
        if path != STDIN and not os.path.exists(path):
            if os.path.islink(path):  # a link that loops or points nowhere: say which
                try:
                    os.stat(path)
                except OSError as exc:
                    raise InputError(f"{path}: {walk.os_reason(exc, path)}") from None
            raise InputError(
                f"{path}: no such file or directory", hint="check the path (use - for stdin)"
            )
    if list(paths).count(STDIN) > 1:
        raise InputError("- is given more than once", hint="stdin can be read only once")


@dataclass(frozen=True)
class InputFile:
    """One file a scan reads, and the reader its name (and where it was named) picks."""

    path: str
    kind: str


def input_files(paths: Sequence[str], options: InputOptions) -> Iterator[InputFile | Skip]:
    """The files a scan of ``paths`` reads, in its order (folders walked), and the Skips
    walking finds. guardcli.distributed reads each file in its own task with
    ``read_input_file``: the same readers, so the same samples and the same Skips."""
    for path in paths:
        if os.path.isdir(path):
            for found in walk.walk(path, options):
                if isinstance(found, Skip):
                    yield found
                else:
                    yield InputFile(found, walk.kind(found, in_folder=True))
        else:
            # Named explicitly: always read, whatever the include/exclude globs say.
            yield InputFile(path, walk.kind(path, in_folder=False))


def read_input_file(found: InputFile, options: InputOptions) -> Iterator[Item]:
    """One file's samples (ids as read, not yet unique across the run) and Skips."""
    return _file_items(found.path, found.kind, options)


def _all_items(
    paths: Sequence[str], options: InputOptions, stdin: TextIO | BinaryIO | None
) -> Iterator[Item]:
    for path in paths:
        if path == STDIN:
            yield from _stdin_items(sys.stdin if stdin is None else stdin, options)
            continue
        for found in input_files([path], options):
            if isinstance(found, Skip):
                yield found
            else:
                yield from read_input_file(found, options)


class UniqueIds:
    """Resume and joins key on ids, so a repeat gets ``#2``, ``#3``: stable across runs.
    Call it with each sample's id in run order; it returns the id the run uses."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.next_suffix: dict[str, int] = {}

    def __call__(self, ident: str) -> str:
        if ident in self.used:
            n = self.next_suffix.get(ident, 2)
            while f"{ident}#{n}" in self.used:
                n += 1
            self.next_suffix[ident] = n + 1
            ident = f"{ident}#{n}"
        self.used.add(ident)
        return ident


def _unique_ids(items: Iterable[Item]) -> Iterator[Item]:
    unique = UniqueIds()
    for item in items:
        if isinstance(item, Sample):
            ident = unique(item.id)
            if ident != item.id:
                item = replace(item, id=ident)
        yield item


def _file_items(
    path: str,
    kind: str,
    options: InputOptions,
    read: Callable[[Iterator[Line], str], Iterator] | None = None,
) -> Iterator:
    """A file's items (``read`` replaces the reader for its kind), its read errors as Skips.
    Samples read from a file that is not UTF-8 carry the encoding it was read in."""
    try:
        with _open(path) as handle:
            head = handle.read(walk.HEAD_BYTES)
            if not head and _is_fifo(path):
                yield Skip(path, NO_WRITER)
                return
            if walk.is_binary(head):
                yield Skip(path, BINARY)
                return
            decoded = walk.Decoded(handle, head)
            lines = iter(decoded)
            items = read(lines, path) if read else readers.read(kind, lines, path, options)
            yield from _tagged(items, decoded)
    except BadUtf8 as exc:
        yield Skip(path, walk.utf8_reason(exc.line, sniffed=kind == "sniff", encoding=exc.encoding))
    except OSError as exc:
        yield Skip(path, walk.os_reason(exc, path))


def _tagged(items: Iterable, decoded: object) -> Iterator:
    """``items``, each Sample marked with the encoding its text was read in when that is not
    UTF-8 (known once the lines before it were decoded)."""
    for item in items:
        encoding = getattr(decoded, "encoding", "utf-8")
        if encoding != "utf-8" and isinstance(item, Sample):
            item = replace(item, encoding=encoding)
        yield item


NO_WRITER = (
    "a named pipe (FIFO) that nothing writes to - start the writer first, "
    "or pipe the data to stdin (guardcli scan -)"
)


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _open(path: str) -> BinaryIO:
    """``open(path, "rb")``, except that a named pipe with no writer does not block forever:
    it is opened without waiting, and then reads as empty (``guardcli scan <(cmd)`` works,
    since that pipe has its writer)."""
    if not _is_fifo(path):
        return open(path, "rb")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _stdin_items(stream: TextIO | BinaryIO, options: InputOptions) -> Iterator[Item]:
    try:
        decoded = walk.stdin_lines(stream)
        lines = iter(decoded)
        fmt = options.stdin_format
        if fmt == "auto":
            fmt, lines = _detect(lines)
        if fmt == "json-or-text":
            items = readers.read_json_or_text(lines, STDIN_NAME, options)
        else:
            items = readers.read(fmt, lines, STDIN_NAME, options)
        yield from _tagged(items, decoded)
    except BinaryInput:
        yield Skip(STDIN_NAME, "binary input - not text; pipe text, JSONL, JSON or CSV")
    except BadUtf8 as exc:
        yield Skip(STDIN_NAME, walk.utf8_reason(exc.line, sniffed=False, encoding=exc.encoding))
    except OSError as exc:
        yield Skip(STDIN_NAME, walk.os_reason(exc))


def _detect(lines: Iterator[Line]) -> tuple[str, Iterator[Line]]:
    """Guess stdin's format from its first non-blank line, without losing that line."""
    head: list[Line] = []
    for line in lines:
        head.append(line)
        if line[1].strip():
            break
    rest = itertools.chain(head, lines)
    first = head[-1][1].strip() if head else ""
    if first.startswith("{"):
        try:
            if isinstance(json.loads(first), dict):
                return "jsonl", rest
        except ValueError:
            pass
        # Pretty-printed JSON (``jq . file``) starts with a lone "{": reading it as one text
        # prompt would be silently wrong, so try JSON first.
        return "json-or-text", rest
    if first.startswith("["):
        return "json", rest
    return "text", rest


def read_objects(path: str) -> Iterator[Found | Skip]:
    """Every JSON object of a ``.json`` (a list or one object) or JSONL file, with where it is.

    For tools that read records with more fields than a scan needs (``guardcli.eval.labelled``):
    the same decoding, error handling and messages as scanning the file.
    """
    kind = "json" if path.lower().endswith(".json") else "jsonl"
    reader = readers.json_file_objects if kind == "json" else readers.jsonl_objects
    return _file_items(path, kind, InputOptions(), read=reader)


def record_sample(obj: dict, where: str, options: InputOptions | None = None) -> Item:
    """One JSON object -> a Sample (or a Skip), exactly as ``guardcli scan`` reads it."""
    return sample_of(obj, where, options or InputOptions())
