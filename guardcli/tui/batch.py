"""The Batch tab: a file or folder judged row by row into a live table.

The pane only displays; the app's worker does the inference and hands results over one by
one (``add``), so the table fills, the bar moves and the filter works while the batch runs.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static

from guardcli.core.gate import flagged
from guardcli.core.records import Result
from guardcli.core.tasks import FIELDS
from guardcli.io.sanitize import one_line
from guardcli.tui.widgets import literal

_LABEL_STYLE = {
    "harmful": "bold red",
    "unharmful": "green",
    "refusal": "blue",
    "compliance": "yellow",
    "unknown": "yellow",
    "failed": "yellow",
    "partial": "yellow",
}
COLUMNS = ("#", "id", *FIELDS, "status", "tokens", "time", "source")


def is_flagged(result: Result) -> bool:
    return flagged(result.verdict, "any")


def _label(value: str) -> Text:
    return Text(value, style=_LABEL_STYLE.get(value, ""))


class BatchPane(Vertical):
    class OpenRow(Message):
        """A row was chosen (enter or click): show its result in full."""

        def __init__(self, result: Result) -> None:
            super().__init__()
            self.result = result

    def __init__(self, *, timings: bool = True, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.timings = timings
        self.results: list[Result] = []
        self.flagged_only = False
        self.source = ""
        self.total = 0
        self.skipped = 0
        self.note = ""

    def compose(self) -> ComposeResult:
        yield Static(
            Text("No batch yet: ctrl+o opens a file or folder (any format guardcli scan reads)."),
            id="batch-info",
        )
        yield ProgressBar(id="batch-progress", show_eta=False)
        yield DataTable(id="batch-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)

    # ---- fed by the app ---------------------------------------------------------------------

    def start(self, source: str, total: int, skipped: int) -> None:
        self.results = []
        self.source, self.total, self.skipped, self.note = source, total, skipped, "running"
        self.query_one(ProgressBar).update(total=total, progress=0)
        self._rebuild()

    def add(self, result: Result) -> None:
        self.results.append(result)
        self.query_one(ProgressBar).advance(1)
        if self._shown(result):
            self._add_row(len(self.results) - 1, result)
        self._update_info()

    def finish(self, note: str) -> None:
        self.note = note
        self._update_info()

    # ---- what is shown ----------------------------------------------------------------------

    @property
    def flagged_count(self) -> int:
        return sum(is_flagged(result) for result in self.results)

    @property
    def injected_count(self) -> int:
        return sum(bool(result.injection) for result in self.results)

    def shown_results(self) -> list[Result]:
        return [result for result in self.results if self._shown(result)]

    def toggle_flagged(self) -> None:
        self.flagged_only = not self.flagged_only
        self._rebuild()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.OpenRow(self.results[int(event.row_key.value)]))

    def _shown(self, result: Result) -> bool:
        return is_flagged(result) or not self.flagged_only

    def _rebuild(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for index, result in enumerate(self.results):
            if self._shown(result):
                self._add_row(index, result)
        self._update_info()

    def _add_row(self, index: int, result: Result) -> None:
        verdict, generation = result.verdict, result.generation
        if generation is None:
            tokens, took = "-", "-"
        else:
            tokens = str(generation.output_tokens)
            took = f"{generation.latency_s:.1f}s" if self.timings else "-"
        self.query_one(DataTable).add_row(
            Text(str(index + 1)),
            literal(one_line(result.sample.id, 24)),
            *(_label(getattr(verdict, field).value) for field in FIELDS),
            _label(verdict.status.value),
            Text(tokens, justify="right"),
            Text(took, justify="right"),
            literal(one_line(result.sample.source, 40)),
            key=str(index),
        )

    def _update_info(self) -> None:
        parts = [
            one_line(self.source, 60),
            f"{len(self.results)}/{self.total} done",
            f"{self.flagged_count} flagged",
        ]
        if self.injected_count:
            parts.append(f"{self.injected_count} with injection markers")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.note:
            parts.append(self.note)
        parts.append("showing flagged only (f: all)" if self.flagged_only else "f: flagged only")
        self.query_one("#batch-info", Static).update(literal(" · ".join(parts)))
