"""Folders -> file paths, and bytes -> numbered text lines (files and stdin).

Folders are walked in sorted order, hidden names and excluded paths skipped, each real folder
entered once; what is neither a file nor a folder (a FIFO, a socket, a device, a broken or
looping link) is a counted Skip saying which. Bytes are decoded line by line, so big files
stream: UTF-16 and UTF-32 by their BOM, else UTF-8 (a BOM dropped) until a line is not,
then the encoding charset-normalizer detects from the bytes (Latin-script guesses read as
Windows-1252, the WHATWG default, since a short sample cannot tell its code pages apart).
A file that is not text in any of them would be an easy way around the guard if it were
judged as garbage, or silently skipped; it is a Skip naming the line. A NUL byte in the head
without a BOM means binary.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import stat
import unicodedata
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
    """Line ``line`` is not text in ``encoding`` (nor in anything detected)."""

    def __init__(self, line: int, encoding: str = "utf-8") -> None:
        super().__init__(line)
        self.line = line
        self.encoding = encoding


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
            elif options.include and not _matches(child, options.include):
                continue
            elif is_file:
                yield path
            else:  # FIFOs, sockets, devices, broken links: counted, never silently dropped
                yield Skip(path, not_a_file(path))

    yield from visit(root, "")


def not_a_file(path: str) -> str:
    """Why ``path`` (neither a regular file nor a folder) is not read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return os_reason(exc, path)
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a file - not read; pipe its data to stdin instead"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file - not read"
    return "a device, not a file - not read"


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


_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def bom_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32 when ``head`` starts with its byte order mark."""
    return next((name for bom, name in _BOMS if head.startswith(bom)), None)


def is_binary(head: bytes) -> bool:
    """A NUL byte in the head of a file without a UTF-16/32 BOM, as git and grep judge."""
    return b"\0" in head and bom_encoding(head) is None


class Decoded:
    """The numbered text lines of a byte stream, and the encoding they turned out to be in
    (``encoding`` is final once the lines are read; "utf-8" while they all were)."""

    def __init__(self, handle: BinaryIO, head: bytes) -> None:
        self.encoding = bom_encoding(head) or "utf-8"
        self._handle, self._head = handle, head

    def __iter__(self) -> Iterator[Line]:
        if self.encoding != "utf-8":
            yield from self._wide()
        else:
            yield from self._narrow()

    def _wide(self) -> Iterator[Line]:
        """UTF-16/32: lines are not split on a 0x0A byte, so a text layer decodes them."""
        raw = io.BufferedReader(_Prefixed(self._head, self._handle))  # type: ignore[arg-type]
        text = io.TextIOWrapper(raw, encoding=self.encoding, newline="")
        number = 0
        try:
            for number, line in enumerate(text, 1):
                if not _plausible(line):  # a binary that happens to start like a BOM
                    raise BadUtf8(number, self.encoding)
                yield number, line.removeprefix("\ufeff") if number == 1 else line
        except UnicodeDecodeError:
            raise BadUtf8(number + 1, self.encoding) from None

    def _narrow(self) -> Iterator[Line]:
        codec = "utf-8"
        for number, raw in enumerate(byte_lines(self._handle, self._head), 1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                yield number, raw.decode(codec)
                continue
            except UnicodeDecodeError:
                if codec != "utf-8":
                    raise BadUtf8(number, codec) from None
            # Earlier lines were valid UTF-8, and so (being ASCII, almost always) the same in
            # the detected encoding: the rest of the stream is read in it.
            codec = guess_encoding(self._head + raw) or ""
            if not codec:
                raise BadUtf8(number)
            self.encoding = codec
            try:
                yield number, raw.decode(codec)
            except UnicodeDecodeError:
                raise BadUtf8(number, codec) from None


# Code pages charset-normalizer may choose among; those of Latin scripts are read as
# Windows-1252 (see the module docstring), the others (Cyrillic, Greek, Hebrew, Arabic, CJK)
# as detected.
_LATIN = ("cp1252", "cp1250", "cp1254", "cp1257", "latin_1")
_OTHER = ("cp1251", "koi8_r", "cp1253", "cp1255", "cp1256", "cp932", "euc_jp", "gb18030")
_OTHER_CJK = ("big5", "euc_kr")


def guess_encoding(sample: bytes) -> str | None:
    """The text encoding of ``sample`` (not UTF-8), or None when it is not text at all."""
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=[*_LATIN, *_OTHER, *_OTHER_CJK]).best()
    if best is None:
        return None
    # No language evidence (a few odd bytes): the Western default, unless it cannot be.
    if best.encoding in _LATIN or best.coherence == 0:
        try:
            sample.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return "latin_1" if best.encoding in _LATIN else best.encoding
    return best.encoding


def _plausible(line: str) -> bool:
    """Text, not bytes read as UTF-16: no unassigned, private-use or control characters but
    whitespace."""
    return not any(
        unicodedata.category(c) in ("Cn", "Co", "Cs") or (c < " " and c not in "\t\n\r\f")
        for c in line
    )


class _Prefixed(io.RawIOBase):
    """Bytes already read (the sniffed head), then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _text_lines(stream: TextIO) -> Iterator[Line]:
    number = 0
    try:
        for number, line in enumerate(stream, 1):
            yield number, (line.removeprefix("\ufeff") if number == 1 else line)
    except UnicodeDecodeError:
        raise BadUtf8(number + 1) from None


def os_reason(exc: OSError, path: str | None = None) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links) - fix or remove the link"
    if exc.errno == errno.ENOENT and path is not None and os.path.islink(path):
        return f"a broken symlink (to {os.readlink(path)}, which does not exist)"
    return f"cannot read ({exc.strerror or exc}) - check the path and its permissions"


def utf8_reason(line: int, *, sniffed: bool, encoding: str = "utf-8") -> str:
    if sniffed:  # an unknown suffix found in a folder: most likely not meant as text at all
        return BINARY
    if encoding != "utf-8":
        return f"not valid {encoding} at line {line} (the encoding detected) - re-encode as UTF-8"
    return (
        f"not text at line {line}: neither UTF-8 nor an encoding that could be detected "
        "- re-encode the file as UTF-8"
    )


def stdin_lines(stream: TextIO | BinaryIO) -> Iterable[Line]:
    """Decode stdin ourselves when we can reach its bytes: the locale's encoding is a guess."""
    binary = getattr(stream, "buffer", None)
    if binary is None and not isinstance(stream, io.TextIOBase):
        binary = stream if isinstance(stream.read(0), bytes) else None
    if binary is None:
        return _text_lines(stream)  # type: ignore[arg-type]
    head = _stdin_head(binary)
    if is_binary(head):
        raise BinaryInput
    return Decoded(binary, head)


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
