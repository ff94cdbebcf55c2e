"""Numbered text lines -> Samples and Skips: plain text, JSON and JSONL, CSV and TSV.

Every reader turns what it cannot use into a Skip naming ``path:line`` (or ``path#item`` in a
JSON list) and what to do about it; none of them raises on bad data.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections.abc import Iterable, Iterator

from guardcli.core.records import Sample, Skip
from guardcli.io.objects import checked_sample, json_type, key_list, sample_of
from guardcli.io.options import InputOptions
from guardcli.io.sanitize import one_line
from guardcli.io.walk import Line

EMPTY = "empty file - nothing to scan"

Item = Sample | Skip


def read(kind: str, lines: Iterator[Line], name: str, options: InputOptions) -> Iterator[Item]:
    """The items of a source of this kind ("jsonl", "json", "csv", "tsv", else text)."""
    if kind == "jsonl":
        return _samples(jsonl_objects(lines, name), options)
    if kind == "json":
        return _samples(json_file_objects(lines, name), options)
    if kind in ("csv", "tsv"):
        return _read_csv(lines, name, options, delimiter="\t" if kind == "tsv" else ",")
    return _read_text(lines, name, options.split)


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


def _samples(found: Iterable[Found | Skip], options: InputOptions) -> Iterator[Item]:
    for item in found:
        yield item if isinstance(item, Skip) else sample_of(item[1], item[0], options)


def jsonl_objects(lines: Iterator[Line], name: str) -> Iterator[Found | Skip]:
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
                f"a JSON {json_type(value)}, not an object - each line must be one {{...}} record",
            )
            continue
        yield where, value
    if not found:
        yield Skip(name, EMPTY)


def json_file_objects(lines: Iterator[Line], name: str) -> Iterator[Found | Skip]:
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
        # Some messages end in "at" already ("Unterminated string starting at").
        joint = " " if exc.msg.endswith(" at") else " at "
        return Skip(where, f"invalid JSON ({exc.msg}{joint}{at}) - {fix}")
    except (ValueError, RecursionError) as exc:
        return Skip(where, f"invalid JSON ({one_line(str(exc))}) - {fix}")


def read_json_or_text(lines: Iterator[Line], name: str, options: InputOptions) -> Iterator[Item]:
    """stdin that starts with ``{`` but is not JSONL: one or more JSON objects, else text."""
    text = "".join(line for _, line in lines)
    values = _json_values(text)
    if values is None:
        numbered = enumerate(text.splitlines(keepends=True), 1)
        yield from _read_text(numbered, name, options.split)
    elif len(values) == 1:
        yield from _json_items(values[0], name, options)
    else:
        yield from _json_items(values, name, options)


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
                    where, f"a JSON {json_type(item)}, not an object - items must be {{...}}"
                )
    else:
        yield Skip(name, f"a JSON {json_type(value)} - expected a list of objects or one object")


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
    # strict: a stray or unclosed quote is an error, not a cell that silently swallows the
    # rows after it (an unterminated quote merged the rest of the file into one sample).
    reader = csv.reader((text for _, text in lines), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            yield Skip(name, EMPTY)
            return
        columns = [cell.strip() for cell in header]
        if options.prompt_field not in columns:
            yield Skip(
                name,
                f"no '{options.prompt_field}' column (columns: {key_list(columns)})"
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
            yield checked_sample(_cell(row, at_id) or where, _cell(row, at_prompt), response, where)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            yield Skip(
                f"{name}:{start}",
                f"unterminated quote: the cell opened on line {start} runs to the end of the "
                "file - close the quote; that row and the rest of the file were not read",
            )
            return
        yield Skip(
            f"{name}:{reader.line_num}",
            f"invalid CSV ({one_line(str(exc))}) - fix the quoting; the rest of the file "
            "was not read",
        )


def _index(columns: list[str], name: str) -> int | None:
    return columns.index(name) if name in columns else None


def _cell(row: list[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""
