"""Folders -> file paths, and bytes -> numbered text lines (files and stdin).

Folders are walked in sorted order, hidden names and excluded paths skipped, each real folder
entered once. Bytes are decoded as UTF-8 (a BOM dropped) line by line, so big files stream; a
NUL byte in the head means binary, and a bad byte stops the file with its line number.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from fnmatch import fnmatch
from typing import BinaryIO, TextIO

from guardcli.core.records import Skip
from guardcli.io.options import InputOptions

HEAD_BYTES = 8192  # where we look for a NUL byte, like git and grep do
_BOM = b"\xef\xbb\xbf"

_KINDS = {
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
}

BINARY = "binary file - not text; exclude it with --exclude"

Line = tuple[int, str]  # (1-based line number, decoded text with its line ending)


class BadUtf8(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class BinaryInput(Exception):
    """stdin holds a NUL byte."""


# ---- folders -----------------------------------------------------------------------------------


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.removeprefix("./").rstrip("/") or pattern
        if fnmatch(rel, pattern) or fnmatch(name, pattern):
            return True
    return False


def walk(root: str, options: InputOptions) -> Iterator[str | Skip]:
    """Files under ``root`` in sorted order, skipping hidden names and excluded paths.

    Symlinked folders are followed, but each real folder is entered once, so a link back
    to a parent cannot loop.
    """
    entered: set[tuple[int, int]] = set()

    def visit(folder: str, rel: str) -> Iterator[str | Skip]:
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in entered:
                return
            entered.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            yield Skip(folder, os_reason(exc))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = os.path.join(folder, entry.name)
            child = f"{rel}/{entry.name}" if rel else entry.name
            if _matches(child, options.exclude):
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as exc:
                yield Skip(path, os_reason(exc))
                continue
            if is_dir:
                yield from visit(path, child)
            elif is_file and (not options.include or _matches(child, options.include)):
                yield path
            # Sockets, FIFOs, broken links: not files anyone means to scan.

    yield from visit(root, "")


def kind(path: str, *, in_folder: bool) -> str:
    """The reader for a file, by suffix; ``sniff`` means "text if it really is text"."""
    suffix = os.path.splitext(path)[1].lower()
    return _KINDS.get(suffix, "sniff" if in_folder else "text")


# ---- bytes -> lines ----------------------------------------------------------------------------


def byte_lines(handle: BinaryIO, head: bytes) -> Iterator[bytes]:
    """Lines of a stream whose first bytes were already read (works on pipes: no seeking)."""
    parts = head.split(b"\n")
    for part in parts[:-1]:
        yield part + b"\n"
    if parts[-1]:
        yield parts[-1] + handle.readline()
    yield from handle


def decode(lines: Iterable[bytes]) -> Iterator[Line]:
    for number, raw in enumerate(lines, 1):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadUtf8(number) from None


def _text_lines(stream: TextIO) -> Iterator[Line]:
    number = 0
    try:
        for number, line in enumerate(stream, 1):
            yield number, (line.removeprefix("\ufeff") if number == 1 else line)
    except UnicodeDecodeError:
        raise BadUtf8(number + 1) from None


def os_reason(exc: OSError) -> str:
    return f"cannot read ({exc.strerror or exc}) - check the path and its permissions"


def utf8_reason(line: int, *, sniffed: bool) -> str:
    if sniffed:  # an unknown suffix found in a folder: most likely not meant as text at all
        return BINARY
    return f"invalid UTF-8 at line {line} - re-encode the file as UTF-8"


def stdin_lines(stream: TextIO | BinaryIO) -> Iterator[Line]:
    """Decode stdin ourselves when we can reach its bytes: the locale's encoding is a guess."""
    binary = getattr(stream, "buffer", None)
    if binary is None and not isinstance(stream, io.TextIOBase):
        binary = stream if isinstance(stream.read(0), bytes) else None
    if binary is None:
        return _text_lines(stream)  # type: ignore[arg-type]
    head = _stdin_head(binary)
    if b"\0" in head:
        raise BinaryInput
    return decode(byte_lines(binary, head))


def _stdin_head(binary: BinaryIO) -> bytes:
    """The bytes sniffed for NULs: up to HEAD_BYTES, but no more than the first line needs.

    ``read(HEAD_BYTES)`` on a pipe waits for all 8 KiB or EOF, so ``tail -f log | guardcli
    scan - --lines`` would judge nothing until 8 KiB of log had piled up; ``read1`` returns
    what has arrived, and we stop as soon as a whole line is here.
    """
    read1 = getattr(binary, "read1", None)
    if read1 is None:
        return binary.read(HEAD_BYTES)
    head = b""
    while len(head) < HEAD_BYTES and b"\n" not in head:
        chunk = read1(HEAD_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head
