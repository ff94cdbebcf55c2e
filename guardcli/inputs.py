"""Files, folders and stdin -> a stream of Samples (and Skips for what cannot be read).

A scan of a real folder meets every kind of junk: binaries, Latin-1 files, half-written JSONL,
a CSV with another column name. None of it may stop the scan or be silently dropped, so each
bad input becomes one ``Skip`` saying what is wrong and what to do, and the CLI reports and
counts it. Only a path that does not exist stops everything, before any work: that is a typo.

Big files are streamed line by line (JSONL, text with --split); only formats that must be
parsed whole (a text file as one prompt, a JSON document) are read into memory.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from typing import BinaryIO, TextIO

from guardcli.core.prompt import split_input
from guardcli.core.records import Sample
from guardcli.errors import InputError, UsageError
from guardcli.sanitize import one_line

STDIN = "-"
STDIN_NAME = "<stdin>"
SPLITS = ("none", "lines", "paragraphs")
STDIN_FORMATS = ("auto", "text", "jsonl", "csv", "json")

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

EMPTY = "empty file - nothing to scan"
BINARY = "binary file - not text; exclude it with --exclude"


@dataclass(frozen=True)
class Skip:
    """One unreadable or bad input: reported on stderr and counted, never silently dropped."""

    source: str  # "path:line", "path#item" or "path"
    reason: str  # one line: what is wrong AND what to do


@dataclass(frozen=True)
class InputOptions:
    include: tuple[str, ...] = ()  # globs on the path relative to a scanned folder, or the name
    exclude: tuple[str, ...] = ()
    split: str = "none"  # none | lines | paragraphs (text files and text stdin)
    prompt_field: str = "prompt"
    response_field: str = "response"
    id_field: str = "id"
    stdin_format: str = "auto"  # auto | text | jsonl | csv | json


Line = tuple[int, str]  # (1-based line number, decoded text with its line ending)
Item = Sample | Skip


class _BadUtf8(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def iter_samples(
    paths: Sequence[str], options: InputOptions, stdin: TextIO | BinaryIO | None = None
) -> Iterator[Sample | Skip]:
    """Every sample in ``paths`` in order, ids made unique across the whole run.

    Not a generator itself: bad options and missing paths raise here, at the call, so a typo
    fails before any file is read or any model is loaded.
    """
    if options.split not in SPLITS:
        raise UsageError(f"--split {options.split!r}", hint="use none, lines or paragraphs")
    if options.stdin_format not in STDIN_FORMATS:
        raise UsageError(
            f"--stdin-format {options.stdin_format!r}", hint="use auto, text, jsonl, json or csv"
        )
    for path in paths:
        if path != STDIN and not os.path.exists(path):
            raise InputError(
                f"{path}: no such file or directory", hint="check the path (use - for stdin)"
            )
    if list(paths).count(STDIN) > 1:
        raise InputError("- is given more than once", hint="stdin can be read only once")
    return _unique_ids(_all_items(paths, options, stdin))


def _all_items(
    paths: Sequence[str], options: InputOptions, stdin: TextIO | BinaryIO | None
) -> Iterator[Item]:
    for path in paths:
        if path == STDIN:
            yield from _stdin_items(sys.stdin if stdin is None else stdin, options)
        elif os.path.isdir(path):
            for found in _walk(path, options):
                if isinstance(found, Skip):
                    yield found
                else:
                    yield from _file_items(found, _kind(found, in_folder=True), options)
        else:
            # Named explicitly: always read, whatever the include/exclude globs say.
            yield from _file_items(path, _kind(path, in_folder=False), options)


def _unique_ids(items: Iterable[Item]) -> Iterator[Item]:
    """Resume and joins key on ids, so a repeat gets ``#2``, ``#3``: stable across runs."""
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    for item in items:
        if isinstance(item, Sample):
            if item.id in used:
                n = next_suffix.get(item.id, 2)
                while f"{item.id}#{n}" in used:
                    n += 1
                next_suffix[item.id] = n + 1
                item = replace(item, id=f"{item.id}#{n}")
            used.add(item.id)
        yield item


# ---- folders -----------------------------------------------------------------------------------


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.removeprefix("./").rstrip("/") or pattern
        if fnmatch(rel, pattern) or fnmatch(name, pattern):
            return True
    return False


def _walk(root: str, options: InputOptions) -> Iterator[str | Skip]:
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
            yield Skip(folder, _os_reason(exc))
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
                yield Skip(path, _os_reason(exc))
                continue
            if is_dir:
                yield from visit(path, child)
            elif is_file and (not options.include or _matches(child, options.include)):
                yield path
            # Sockets, FIFOs, broken links: not files anyone means to scan.

    yield from visit(root, "")


def _kind(path: str, *, in_folder: bool) -> str:
    """The reader for a file, by suffix; ``sniff`` means "text if it really is text"."""
    suffix = os.path.splitext(path)[1].lower()
    return _KINDS.get(suffix, "sniff" if in_folder else "text")


# ---- bytes -> lines ----------------------------------------------------------------------------


def _byte_lines(handle: BinaryIO, head: bytes) -> Iterator[bytes]:
    """Lines of a stream whose first bytes were already read (works on pipes: no seeking)."""
    parts = head.split(b"\n")
    for part in parts[:-1]:
        yield part + b"\n"
    if parts[-1]:
        yield parts[-1] + handle.readline()
    yield from handle


def _decode(lines: Iterable[bytes]) -> Iterator[Line]:
    for number, raw in enumerate(lines, 1):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadUtf8(number) from None


def _text_lines(stream: TextIO) -> Iterator[Line]:
    number = 0
    try:
        for number, line in enumerate(stream, 1):
            yield number, (line.removeprefix("\ufeff") if number == 1 else line)
    except UnicodeDecodeError:
        raise _BadUtf8(number + 1) from None


def _os_reason(exc: OSError) -> str:
    return f"cannot read ({exc.strerror or exc}) - check the path and its permissions"


def _utf8_reason(line: int, *, sniffed: bool) -> str:
    if sniffed:  # an unknown suffix found in a folder: most likely not meant as text at all
        return BINARY
    return f"invalid UTF-8 at line {line} - re-encode the file as UTF-8"


# ---- files and stdin ---------------------------------------------------------------------------


def _file_items(
    path: str,
    kind: str,
    options: InputOptions,
    read: Callable[[Iterator[Line], str], Iterator] | None = None,
) -> Iterator:
    """A file's items (``read`` replaces the reader for its kind), its read errors as Skips."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            if b"\0" in head:
                yield Skip(path, BINARY)
                return
            lines = _decode(_byte_lines(handle, head))
            yield from (read(lines, path) if read else _read(kind, lines, path, options))
    except _BadUtf8 as exc:
        yield Skip(path, _utf8_reason(exc.line, sniffed=kind == "sniff"))
    except OSError as exc:
        yield Skip(path, _os_reason(exc))


def _read(kind: str, lines: Iterator[Line], name: str, options: InputOptions) -> Iterator[Item]:
    if kind == "jsonl":
        return _read_jsonl(lines, name, options)
    if kind == "json":
        return _read_json(lines, name, options)
    if kind in ("csv", "tsv"):
        return _read_csv(lines, name, options, delimiter="\t" if kind == "tsv" else ",")
    return _read_text(lines, name, options.split)


def _stdin_lines(stream: TextIO | BinaryIO) -> Iterator[Line]:
    """Decode stdin ourselves when we can reach its bytes: the locale's encoding is a guess."""
    binary = getattr(stream, "buffer", None)
    if binary is None and not isinstance(stream, io.TextIOBase):
        binary = stream if isinstance(stream.read(0), bytes) else None
    if binary is None:
        return _text_lines(stream)  # type: ignore[arg-type]
    head = _stdin_head(binary)
    if b"\0" in head:
        raise _Binary
    return _decode(_byte_lines(binary, head))


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


class _Binary(Exception):
    pass


def _stdin_items(stream: TextIO | BinaryIO, options: InputOptions) -> Iterator[Item]:
    try:
        lines = _stdin_lines(stream)
        fmt = options.stdin_format
        if fmt == "auto":
            fmt, lines = _detect(lines)
        if fmt == "json-or-text":
            yield from _read_json_or_text(lines, options)
        else:
            yield from _read(fmt, lines, STDIN_NAME, options)
    except _Binary:
        yield Skip(STDIN_NAME, "binary input - not text; pipe text, JSONL, JSON or CSV")
    except _BadUtf8 as exc:
        yield Skip(STDIN_NAME, f"invalid UTF-8 at line {exc.line} - re-encode the input as UTF-8")
    except OSError as exc:
        yield Skip(STDIN_NAME, _os_reason(exc))


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


# ---- text --------------------------------------------------------------------------------------


def _read_text(lines: Iterator[Line], name: str, split: str) -> Iterator[Item]:
    if split == "lines":
        yield from _text_by_line(lines, name)
    elif split == "paragraphs":
        yield from _text_by_paragraph(lines, name)
    else:
        content = "".join(text for _, text in lines).replace("\r\n", "\n")
        if not content.strip():
            yield Skip(name, EMPTY)
        else:
            yield Sample(id=name, prompt=content.rstrip("\n"), source=name)


def _text_by_line(lines: Iterator[Line], name: str) -> Iterator[Item]:
    found = False
    for number, line in lines:
        text = line.rstrip("\r\n")
        if text.strip():
            found = True
            where = f"{name}:{number}"
            yield Sample(id=where, prompt=text, source=where)
    if not found:
        yield Skip(name, EMPTY)


def _text_by_paragraph(lines: Iterator[Line], name: str) -> Iterator[Item]:
    found = False
    block: list[str] = []
    start = 0
    for number, line in itertools.chain(lines, [(0, "")]):  # the sentinel flushes the last block
        text = line.rstrip("\r\n")
        if text.strip():
            if not block:
                start = number
            block.append(text)
        elif block:
            found = True
            where = f"{name}:{start}"
            yield Sample(id=where, prompt="\n".join(block), source=where)
            block = []
    if not found:
        yield Skip(name, EMPTY)


# ---- JSON and JSONL ----------------------------------------------------------------------------


# Where a JSON object was found ("path:line", "path#item") and the object itself.
Found = tuple[str, dict]


def read_objects(path: str) -> Iterator[Found | Skip]:
    """Every JSON object of a ``.json`` (a list or one object) or JSONL file, with where it is.

    For tools that read records with more fields than a scan needs (``guardcli.labelled``):
    the same decoding, error handling and messages as scanning the file.
    """
    kind = "json" if path.lower().endswith(".json") else "jsonl"
    reader = _json_file_objects if kind == "json" else _jsonl_objects
    return _file_items(path, kind, InputOptions(), read=reader)


def record_sample(obj: dict, where: str, options: InputOptions | None = None) -> Item:
    """One JSON object -> a Sample (or a Skip), exactly as ``guardcli scan`` reads it."""
    return _record(obj, where, options or InputOptions())


def _samples(found: Iterable[Found | Skip], options: InputOptions) -> Iterator[Item]:
    for item in found:
        yield item if isinstance(item, Skip) else _record(item[1], item[0], options)


def _read_jsonl(lines: Iterator[Line], name: str, options: InputOptions) -> Iterator[Item]:
    return _samples(_jsonl_objects(lines, name), options)


def _jsonl_objects(lines: Iterator[Line], name: str) -> Iterator[Found | Skip]:
    found = False
    for number, line in lines:
        if not line.strip():
            continue
        found = True
        where = f"{name}:{number}"
        value = _parse_json(line, where, whole_file=False)
        if isinstance(value, Skip):
            yield value
            continue
        if not isinstance(value, dict):
            yield Skip(
                where,
                f"a JSON {_json_type(value)}, not an object - each line must be one {{...}} record",
            )
            continue
        yield where, value
    if not found:
        yield Skip(name, EMPTY)


def _read_json(lines: Iterator[Line], name: str, options: InputOptions) -> Iterator[Item]:
    return _samples(_json_file_objects(lines, name), options)


def _json_file_objects(lines: Iterator[Line], name: str) -> Iterator[Found | Skip]:
    text = "".join(line for _, line in lines)
    if not text.strip():
        yield Skip(name, EMPTY)
        return
    value = _parse_json(text, name, whole_file=True)
    if isinstance(value, Skip):
        yield value
        return
    yield from _json_objects(value, name)


def _parse_json(text: str, where: str, *, whole_file: bool) -> object:
    """The JSON value of ``text``, or the Skip that says where it is broken and what to do."""
    fix = "fix the file" if whole_file else "fix or remove the line"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno} col {exc.colno}" if whole_file else f"col {exc.colno}"
        return Skip(where, f"invalid JSON ({exc.msg} at {at}) - {fix}")
    except (ValueError, RecursionError) as exc:
        return Skip(where, f"invalid JSON ({one_line(str(exc))}) - {fix}")


def _read_json_or_text(lines: Iterator[Line], options: InputOptions) -> Iterator[Item]:
    """stdin that starts with ``{`` but is not JSONL: one or more JSON objects, else text."""
    text = "".join(line for _, line in lines)
    values = _json_values(text)
    if values is None:
        numbered = enumerate(text.splitlines(keepends=True), 1)
        yield from _read_text(numbered, STDIN_NAME, options.split)
    elif len(values) == 1:
        yield from _json_items(values[0], STDIN_NAME, options)
    else:
        yield from _json_items(values, STDIN_NAME, options)


def _json_values(text: str) -> list[object] | None:
    """Concatenated JSON objects (what ``jq .`` prints for a stream), or None."""
    decoder = json.JSONDecoder()
    values: list[object] = []
    at = 0
    try:
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at == len(text):
                return values or None
            value, at = decoder.raw_decode(text, at)
            if not isinstance(value, dict):
                return None
            values.append(value)
    except (ValueError, RecursionError):
        return None


def _json_items(value: object, name: str, options: InputOptions) -> Iterator[Item]:
    return _samples(_json_objects(value, name), options)


def _json_objects(value: object, name: str) -> Iterator[Found | Skip]:
    if isinstance(value, dict):
        yield name, value
    elif isinstance(value, list):
        if not value:
            yield Skip(name, "empty JSON list - nothing to scan")
        for index, item in enumerate(value, 1):
            where = f"{name}#{index}"
            if isinstance(item, dict):
                yield where, item
            else:
                yield Skip(
                    where, f"a JSON {_json_type(item)}, not an object - items must be {{...}}"
                )
    else:
        yield Skip(name, f"a JSON {_json_type(value)} - expected a list of objects or one object")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _key_list(keys: Iterable[str], limit: int = 5) -> str:
    keys = [one_line(str(key), 40) for key in keys]
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown + (f", +{len(keys) - limit} more" if len(keys) > limit else "")


def _record(obj: dict, where: str, options: InputOptions) -> Item:
    """One JSON object -> a Sample: our fields, else chat ``messages``, else GuardReasoner."""
    prompt_field, response_field = options.prompt_field, options.response_field
    if prompt_field in obj:
        prompt, response = obj[prompt_field], obj.get(response_field)
        for field, value in ((prompt_field, prompt), (response_field, response)):
            if value is not None and not isinstance(value, str):
                kind = _json_type(value)
                return Skip(where, f"'{field}' is a {kind}, not a string - fix the record")
        if prompt is None:
            return Skip(where, f"'{prompt_field}' is null - give it the text to scan")
    elif isinstance(obj.get("messages"), list):
        turns = _from_messages(obj["messages"], where)
        if isinstance(turns, Skip):
            return turns
        prompt, response = turns
    elif isinstance(obj.get("input"), str) and (pair := split_input(obj["input"])) is not None:
        prompt, response = pair  # GuardReasoner data: {"instruction", "input", "output"}
    else:
        return Skip(
            where,
            f"no '{prompt_field}' field (keys: {_key_list(obj)}) - use --prompt-field NAME",
        )
    raw_id = obj.get(options.id_field)
    if raw_id is None or raw_id == "":
        ident = where
    else:
        ident = raw_id if isinstance(raw_id, str) else json.dumps(raw_id, ensure_ascii=False)
    return _sample(ident, prompt, response, where)


def _sample(ident: str, prompt: str, response: str | None, where: str) -> Item:
    if not prompt.strip():
        return Skip(where, "empty prompt - nothing to scan")
    for text in (ident, prompt, response or ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: nothing can use it
            return Skip(where, "invalid \\u escape (a lone surrogate) - fix the record")
    return Sample(id=ident, prompt=prompt, response=response, source=where)


def _content(content: object) -> str | None:
    """A chat turn's text: a string, or the text parts of a multi-part content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
        ]
        texts = [part for part in parts if isinstance(part, str)]
        return "\n".join(texts) if texts else None
    return None


def _from_messages(messages: list, where: str) -> tuple[str, str | None] | Skip:
    """The last user turn is what is being judged; the assistant's reply to it, if any."""
    last = None
    for index, turn in enumerate(messages):
        if isinstance(turn, dict) and turn.get("role") == "user":
            last = index
    if last is None:
        return Skip(where, "no 'user' turn in 'messages' - nothing to scan")
    prompt = _content(messages[last].get("content"))
    if prompt is None:
        return Skip(where, "the last 'user' turn has no text content - nothing to scan")
    response = None
    if last + 1 < len(messages):
        reply = messages[last + 1]
        if isinstance(reply, dict) and reply.get("role") == "assistant":
            response = _content(reply.get("content"))
    return prompt, response


# ---- CSV ---------------------------------------------------------------------------------------


def _allow_big_cells() -> None:
    """Prompts and responses can be long; the csv module's default cell limit is 128 KiB."""
    limit = sys.maxsize
    while limit > csv.field_size_limit():
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # a C long is 32 bits on Windows
            limit //= 2


def _read_csv(
    lines: Iterator[Line], name: str, options: InputOptions, *, delimiter: str
) -> Iterator[Item]:
    _allow_big_cells()
    reader = csv.reader((text for _, text in lines), delimiter=delimiter)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            yield Skip(name, EMPTY)
            return
        columns = [cell.strip() for cell in header]
        if options.prompt_field not in columns:
            yield Skip(
                name,
                f"no '{options.prompt_field}' column (columns: {_key_list(columns)})"
                " - use --prompt-field NAME",
            )
            return
        at_prompt = columns.index(options.prompt_field)
        at_response = _index(columns, options.response_field)
        at_id = _index(columns, options.id_field)
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return
            if not any(cell.strip() for cell in row):
                continue
            where = f"{name}:{start}"
            response = _cell(row, at_response) or None
            yield _sample(_cell(row, at_id) or where, _cell(row, at_prompt), response, where)
    except csv.Error as exc:
        yield Skip(
            f"{name}:{reader.line_num}",
            f"invalid CSV ({one_line(str(exc))}) - fix the file; the rest of it was not read",
        )


def _index(columns: list[str], name: str) -> int | None:
    return columns.index(name) if name in columns else None


def _cell(row: list[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""
