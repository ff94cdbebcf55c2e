"""Hostile text must reach the terminal inert: no escapes, no controls, no markup."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from guardcli.io.sanitize import clean_terminal, for_terminal, one_line

FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Bytes that build escape sequences, mixed with arbitrary text, so hypothesis finds
# real sequences (and broken ones) rather than only random noise.
_PIECES = st.sampled_from(
    ["\x1b", "[", "]", "\\", ";", "0", "8", "31", "m", "H", "\x07", "\x9b", "\x9c", "\x9d"]
    + ["\x90", "P", "_", "^", "X", "(", "B", "\r", "\n", "\t", "\r\n", " ", "a", "é", "漢"]
)
HOSTILE = st.lists(_PIECES | st.text(max_size=5), max_size=40).map("".join)


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("up\x1b[2Aover\x1b[2K", "upover"),  # cursor up, erase line
        ("\x1b]0;pwned title\x07after", "after"),  # OSC window title, BEL-terminated
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8 hyperlink
        ("\x9b31mc1 csi", "c1 csi"),  # 8-bit CSI
        ("\x9d0;title\x9cok", "ok"),  # 8-bit OSC and ST
        ("\x1bP1$r\x1b\\dcs", "dcs"),  # DCS
        ("\x1b(Bcharset \x1bc reset \x1b7save", "charset  reset save"),
        ("\x1b]52;c;Y2xpcGJvYXJk", ""),  # unterminated clipboard write
        ("\x1b]0;x\nnext line", "\nnext line"),  # unterminated OSC stops at its line
        ("a\r\nb", "a\nb"),
        ("fake\rreal", "fakereal"),  # a lone CR would let text overwrite its own line
        ("bell\x07 nul\x00 del\x7f c1\x85", "bell nul del c1"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("unicode é 漢字 🙂 stays", "unicode é 漢字 🙂 stays"),
        ("[bold]markup is not ours[/bold]", "[bold]markup is not ours[/bold]"),
    ],
)
def test_clean_terminal(dirty, clean):
    assert clean_terminal(dirty) == clean


@given(HOSTILE)
def test_clean_terminal_output_is_inert(text):
    cleaned = clean_terminal(text)
    assert "\x1b" not in cleaned
    assert not FORBIDDEN.search(cleaned)


@given(HOSTILE)
def test_clean_terminal_is_idempotent(text):
    once = clean_terminal(text)
    assert clean_terminal(once) == once


@given(st.text())
def test_clean_terminal_on_any_text(text):
    cleaned = clean_terminal(text)
    assert not FORBIDDEN.search(cleaned)
    assert clean_terminal(cleaned) == cleaned


def _render(markup: str) -> str:
    buffer = io.StringIO()
    Console(file=buffer, color_system=None, width=200).print(markup)
    return buffer.getvalue()


def test_for_terminal_prints_markup_literally():
    shown = _render(for_terminal("[bold]hi[/bold] \x1b[31m[link=https://x]y[/link]"))
    assert shown == "[bold]hi[/bold] [link=https://x]y[/link]\n"


def test_for_terminal_text_can_sit_inside_our_markup():
    # A trailing backslash must not escape the closing tag that follows it.
    path = "C:\\dir\\"
    assert _render("[bold]" + for_terminal(path) + "[/bold]") == path + "\n"


def test_one_line_collapses_and_cuts():
    assert one_line("  a\n\tb   c\x1b[2J ") == "a b c"
    cut = one_line("x" * 100, limit=10)
    assert cut == "x" * 9 + "…"
    assert len(cut) == 10
    assert one_line("exactly10!", limit=10) == "exactly10!"


@given(HOSTILE, st.integers(min_value=1, max_value=50))
def test_one_line_is_one_safe_line(text, limit):
    line = one_line(text, limit)
    assert len(line) <= limit
    assert "\n" not in line and "\t" not in line
    assert not FORBIDDEN.search(line)
