"""The side list of every classification made since the app started."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Label, ListItem, ListView

from guardcli.core.records import Result
from guardcli.io.sanitize import one_line


def mark(result: Result) -> tuple[str, str]:
    """A one-glyph verdict for lists: flagged, clean, or unreadable."""
    verdict = result.verdict
    if verdict.request_harmful or verdict.response_harmful:
        return "✗", "bold red"
    if not verdict.parsed:
        return "?", "yellow"
    return "✓", "green"


class HistoryItem(ListItem):
    def __init__(self, number: int, result: Result) -> None:
        self.number = number
        self.result = result
        glyph, style = mark(result)
        line = Text.assemble((f"{number:>2} ", "dim"), (glyph, style), " ")
        if result.injection:
            line.append("injection ", "bold red")
        line.append(one_line(result.sample.prompt, 60))  # appended as plain text, never markup
        super().__init__(Label(line))


class HistoryList(ListView):
    """Newest first; ``enter`` (or a click) selects an entry and the app restores it."""

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._results: list[Result] = []

    def add(self, result: Result) -> HistoryItem:
        self._results.append(result)
        item = HistoryItem(len(self._results), result)
        self.insert(0, [item])
        self.index = 0
        return item

    @property
    def results(self) -> list[Result]:
        """Oldest first: the order they were made, and the order an export writes."""
        return list(self._results)
