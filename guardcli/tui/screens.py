"""Dialogs over the console: key help, a path prompt, one result in full."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from guardcli.core.records import Result
from guardcli.io.sanitize import one_line
from guardcli.tui.keys import KEYS
from guardcli.tui.widgets import ReasoningView, VerdictBadges, literal, stats_text


class _Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "close", "Close")]

    DEFAULT_CSS = """
    _Dialog { align: center middle; }
    _Dialog > Vertical {
        width: 90%; max-width: 110; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    _Dialog .hint { color: $text-muted; }
    """

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(_Dialog):
    """``?``: every key, generated from guardcli.tui.keys so it is never out of date."""

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Keys"
            yield DataTable(id="keys-table", show_cursor=False, zebra_stripes=True)
            yield Static(Text("escape closes this"), classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "where", "what it does")
        for key in KEYS:
            table.add_row(Text(key.shown), Text(key.where), Text(key.description))
        table.focus()


class PathPrompt(_Dialog):
    """Ask for a path; dismisses with the text typed (stripped), or None on escape."""

    def __init__(self, title: str, hint: str, value: str = "") -> None:
        super().__init__()
        self._title, self._hint, self._value = title, hint, value

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self._title
            yield Input(value=self._value, id="path-input", select_on_focus=False)
            yield Static(literal(self._hint), classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = getattr(self.app, "blink", True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        self.dismiss(value or None)


class ResultScreen(_Dialog):
    """One finished result: the inputs as judged, the verdict badges, the reasoning by task."""

    DEFAULT_CSS = """
    ResultScreen > Vertical { height: 90%; }
    ResultScreen .input { height: auto; max-height: 8; border: round $panel; }
    ResultScreen ReasoningView { height: 1fr; }
    """

    def __init__(self, result: Result, *, timings: bool = True) -> None:
        super().__init__()
        self.result = result
        self._timings = timings

    def compose(self) -> ComposeResult:
        sample = self.result.sample
        with Vertical() as box:
            title = f"{sample.id} · {sample.source}" if sample.source else sample.id
            box.border_title = literal(one_line(title, 100))  # ids and paths are untrusted
            prompt = VerticalScroll(Static(literal(sample.prompt)), classes="input")
            prompt.border_title = "prompt"
            yield prompt
            response = VerticalScroll(
                Static(literal(sample.response or "(no response)")), classes="input"
            )
            response.border_title = "response"
            yield response
            yield VerdictBadges()
            yield ReasoningView()
            yield Static(Text("escape closes this"), classes="hint")

    def on_mount(self) -> None:
        self.query_one(VerdictBadges).show(self.result.verdict)
        reasoning = self.query_one(ReasoningView)
        reasoning.show(self.result.verdict.raw)
        reasoning.set_stats(stats_text(self.result.generation, timings=self._timings))
