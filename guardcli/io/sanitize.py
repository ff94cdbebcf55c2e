"""Make untrusted text safe to show on a terminal.

Scanned files are, by assumption, possibly hostile: a prompt written to attack a model may as
well attack the person reading the report. Escape sequences in it could move the cursor over
earlier lines (hiding a "harmful" verdict), retitle the window, write to the clipboard, or
plant hyperlinks; rich markup in it could restyle or hide output; bidi overrides (U+202E,
U+2066) could show ``harmful`` as ``lufmrah`` or reorder a file name, and zero-width
characters could make two different ids look the same. Everything derived from user input
or from a bundle passes through here before it reaches a terminal: escape sequences and
controls are removed, invisible format characters are shown as ``<U+202E>``. Data written to
files or pipes (JSONL, CSV) is left byte-exact: that is data, not display
(``terminal_json`` keeps JSON on a terminal exact too, as JSON escapes).
"""

from __future__ import annotations

import re
import unicodedata

# String-type sequences (OSC, DCS, SOS, PM, APC), 7-bit and 8-bit introducers, up to BEL or ST.
# An unterminated one ends at the end of its line, so the text on later lines survives.
_STRING_SEQ = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
)
# CSI: parameters, intermediates, one final byte (ECMA-48 5.4).
_CSI = re.compile(r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?")
# Any other escape: ESC, intermediates, a final byte (charset switches, ESC c reset, ESC 7 ...).
_ESC = re.compile(r"\x1b[\x20-\x2f]*[\x30-\x7e]?")
# What is left after the sequences: C0 (but tab and newline), DEL and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
# Line and paragraph separators: line breaks to some terminals and editors, not to others.
_SEPARATORS = {"\u2028": "\n", "\u2029": "\n"}

ELLIPSIS = "…"


def clean_terminal(text: str) -> str:
    """Remove every escape sequence and control character but newline and tab.

    Idempotent, and the result never holds ESC or a C0/C1 control other than ``\\n``/``\\t``,
    whatever the input (tests/test_sanitize.py checks both with hypothesis).
    """
    text = text.replace("\r\n", "\n")
    text = _STRING_SEQ.sub("", text)
    text = _CSI.sub("", text)
    text = _ESC.sub("", text)
    text = _CONTROL.sub("", text)  # also the lone \r: it would let text overwrite its own line
    return show_invisible(text)


def show_invisible(text: str) -> str:
    """Invisible format characters (bidi overrides and isolates, zero-width spaces and
    joiners, the BOM) written as ``<U+202E>``, separators as newlines: what a reader sees is
    what is there, in the order it is stored."""
    if text.isascii():
        return text
    out = []
    for char in text:
        if char in _SEPARATORS:
            out.append(_SEPARATORS[char])
        elif unicodedata.category(char) == "Cf":
            out.append(f"<U+{ord(char):04X}>")
        else:
            out.append(char)
    return "".join(out)


def terminal_json(line: str) -> str:
    """A JSON text for a terminal: C1 controls and invisible format characters (category
    Cf) written as ``\\uXXXX`` escapes, which every JSON reader decodes back to the same
    string. JSON already escapes C0 controls, ESC included. Only for JSON text: there these
    characters can only occur inside strings, where an escape means the same."""
    if line.isascii():
        return line
    out = []
    for char in line:
        if not char.isascii() and unicodedata.category(char) in ("Cc", "Cf"):
            code = ord(char)
            if code > 0xFFFF:  # outside the BMP: a surrogate pair, as JSON spells it
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def for_terminal(text: str) -> str:
    """Clean text, then escape rich markup, so ``[bold]`` in user text prints literally."""
    from rich.markup import escape

    return escape(clean_terminal(text))


def one_line(text: str, limit: int = 80) -> str:
    """A table cell: one line, safe, at most ``limit`` characters (the last one ``…`` if cut).

    The result is not markup-escaped: pass it to ``for_terminal``-style escaping or a
    ``rich.text.Text`` before rich renders it.
    """
    flat = _SPACE.sub(" ", clean_terminal(text)).strip()
    limit = max(limit, 1)
    return flat if len(flat) <= limit else flat[: limit - 1] + ELLIPSIS
