"""The moderation console: compose, run, watch the reasoning stream, keep a history, batch.

The app is handed an open ``Guard`` (the CLI loads it, tests pass the fixture guard) and
never blocks on it: every classification runs in a thread worker, which streams text back
with ``post_message`` (thread-safe) and stops at the engine's next step when the job's stop
flag is set (escape, or quitting). One job at a time: the engine is not re-entrant.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, ListView, TabbedContent, TabPane, TextArea

from guardcli.core.guard import Guard
from guardcli.core.parse import answers_complete, parse
from guardcli.core.records import Result, Sample
from guardcli.errors import GuardError
from guardcli.io.options import InputOptions
from guardcli.io.sanitize import one_line
from guardcli.tui.batch import BatchPane
from guardcli.tui.files import OutputLog, export_jsonl
from guardcli.tui.history import HistoryItem, HistoryList
from guardcli.tui.jobs import BatchRow, BatchStarted, Ended, Finished, Job, Piece
from guardcli.tui.keys import NOT_IN_DIALOGS, app_bindings
from guardcli.tui.screens import HelpScreen, PathPrompt, ResultScreen
from guardcli.tui.style import CSS
from guardcli.tui.widgets import ModelInfo, ReasoningView, StatusBar, VerdictBadges, stats_text
from guardcli.tui.workers import Workers


class GuardApp(Workers, App):
    TITLE = "guardcli"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = app_bindings()

    CSS = CSS

    def __init__(
        self,
        guard: Guard,
        *,
        model: ModelInfo,
        output: Path | None = None,
        input_options: InputOptions | None = None,
        timings: bool = True,
        blink: bool = True,
    ) -> None:
        """``timings=False`` hides seconds and speeds and ``blink=False`` stills the cursors:
        both make screenshots deterministic (snapshot tests, the README image)."""
        super().__init__()
        self.guard = guard
        self.model_info = model
        self.input_options = input_options or InputOptions()
        self.timings = timings
        self.blink = blink
        self.output = OutputLog(output) if output is not None else None
        self.job: Job | None = None
        self._live = ""  # the text streamed so far for the console's job
        self._counter = 0
        self._last_path = ""

    def compose(self) -> ComposeResult:
        with TabbedContent(id="tabs", initial="console"):
            with TabPane("Console", id="console"):
                with Horizontal(id="console-body"):
                    history = HistoryList(id="history")
                    history.border_title = "History"
                    yield history
                    with Vertical(id="main"):
                        prompt = TextArea(id="prompt", placeholder="The user's request")
                        prompt.border_title = "prompt"
                        yield prompt
                        response = TextArea(
                            id="response", placeholder="The AI's response (optional)"
                        )
                        response.border_title = "response (optional)"
                        yield response
                        yield VerdictBadges(id="badges")
                        reasoning = ReasoningView(id="reasoning")
                        reasoning.border_title = "reasoning"
                        yield reasoning
            with TabPane("Batch", id="batch"):
                yield BatchPane(id="batch-pane", timings=self.timings)
        yield StatusBar(self.model_info.line(), id="status")
        yield Footer()

    def on_mount(self) -> None:
        for area in self.query(TextArea):
            area.cursor_blink = self.blink
        self.query_one("#prompt", TextArea).focus()
        self.set_interval(0.5, self._tick)

    def on_unmount(self) -> None:
        if self.output is not None:
            self.output.close()  # waits for a running job's last results

    def exit(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        """Every way out stops the running job first, so its thread ends at the next step
        instead of generating on after the interface is gone."""
        if self.job is not None:
            self.job.stop.set()
        super().exit(*args, **kwargs)

    # ---- pieces other code reads --------------------------------------------------------------

    @property
    def history(self) -> HistoryList:
        return self.query_one(HistoryList)

    @property
    def batch(self) -> BatchPane:
        return self.query_one(BatchPane)

    @property
    def reasoning(self) -> ReasoningView:
        return self.query_one(ReasoningView)

    @property
    def badges(self) -> VerdictBadges:
        return self.query_one("#badges", VerdictBadges)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def busy(self) -> bool:
        return self.job is not None

    # ---- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action in NOT_IN_DIALOGS:
            return False  # a dialog is open: let it have the key, keep the footer honest
        if action == "cancel":
            return self.busy
        if action == "toggle_flagged":  # a plain letter: only where there is no text field
            return self.query_one(TabbedContent).active == "batch"
        return True

    def action_run(self) -> None:
        if self._refuse_when_busy():
            return
        prompt = self.query_one("#prompt", TextArea).text
        response = self.query_one("#response", TextArea).text
        if not prompt.strip():
            self.notify("Type a prompt first.", severity="warning")
            self.query_one("#prompt", TextArea).focus()
            return
        self._counter += 1
        sample = Sample(
            id=str(self._counter),
            prompt=prompt,
            response=response if response.strip() else None,
            source="console",
        )
        self.query_one(TabbedContent).active = "console"
        self._live = ""
        self.reasoning.clear()
        self.badges.reset()
        self.reasoning.set_stats("generating…")
        job = self._begin("one")
        self.status.set_state("generating…")
        self._classify(job, sample)

    def action_cancel(self) -> None:
        if self.job is not None:
            self.job.stop.set()
            self.status.set_state("cancelling…")

    def action_new(self) -> None:
        if self._refuse_when_busy():
            return
        self.query_one("#prompt", TextArea).text = ""
        self.query_one("#response", TextArea).text = ""
        self._live = ""
        self.reasoning.clear()
        self.badges.reset()
        self.query_one(TabbedContent).active = "console"
        self.query_one("#prompt", TextArea).focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = "#prompt" if tab == "console" else "#batch-table"
        self.query_one(target).focus()

    def action_toggle_flagged(self) -> None:
        self.batch.toggle_flagged()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_open_batch(self) -> None:
        if self._refuse_when_busy():
            return
        self.push_screen(
            PathPrompt(
                "Open a file or folder",
                "Any format guardcli scan reads: .jsonl .json .csv .tsv .txt .md, or a folder. "
                "enter opens, escape cancels.",
                self._last_path,
            ),
            self._opened,
        )

    def _opened(self, value: str | None) -> None:
        if value is None:
            return
        path = os.path.expanduser(value)
        if not os.path.exists(path):
            self.notify(f"{value}: no such file or folder", severity="error", markup=False)
            return
        self.start_batch([path])

    def action_export(self) -> None:
        on_batch = self.query_one(TabbedContent).active == "batch"
        if on_batch:
            results = self.batch.shown_results()
            what = "flagged rows" if self.batch.flagged_only else "batch results"
            default = "guardcli-batch.jsonl"
        else:
            results = self.history.results
            what, default = "history", "guardcli-history.jsonl"
        if not results:
            self.notify(f"Nothing to export: the {what} is empty.", severity="warning")
            return

        def write(value: str | None) -> None:
            if value is None:
                return
            try:
                count = export_jsonl(Path(value).expanduser(), results)
            except GuardError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.notify(f"Wrote {count} results to {value}", markup=False)

        self.push_screen(
            PathPrompt(
                f"Export the {what} to JSONL ({len(results)} results)",
                "One record per line, with the reasoning. enter writes, escape cancels.",
                default,
            ),
            write,
        )

    # ---- batch --------------------------------------------------------------------------------

    def start_batch(self, paths: Sequence[str]) -> bool:
        """Judge every sample in ``paths`` (files or folders) into the Batch tab."""
        if self._refuse_when_busy():
            return False
        self._last_path = paths[0] if paths else ""
        self.query_one(TabbedContent).active = "batch"
        self.query_one("#batch-table").focus()
        job = self._begin("batch")
        self.status.set_state("reading…")
        self._run_batch(job, list(paths))
        return True

    # ---- worker messages (interface thread) ---------------------------------------------------

    @on(Piece)
    def _on_piece(self, message: Piece) -> None:
        if message.job is not self.job:
            return
        had_answers = answers_complete(self._live)
        self._live += message.text
        self.reasoning.show(self._live, follow=True)
        if not had_answers and answers_complete(self._live):
            self.badges.show(parse(self._live))  # the Answers block has landed
        self.status.set_state(self._progress_text())

    @on(Finished)
    def _on_finished(self, message: Finished) -> None:
        result = message.result
        self._show_result(result)
        self.history.add(result)

    @on(BatchStarted)
    def _on_batch_started(self, message: BatchStarted) -> None:
        self.batch.start(message.source, message.total, len(message.skips))
        self.query_one("#batch-table").focus()  # after any dialog has handed focus back
        for skip in message.skips[:5]:
            self.notify(
                f"skipped {one_line(skip.source, 60)}: {one_line(skip.reason, 120)}",
                severity="warning",
                markup=False,
            )
        if len(message.skips) > 5:
            self.notify(f"… and {len(message.skips) - 5} more skipped", severity="warning")
        self.status.set_state(self._progress_text())

    @on(BatchRow)
    def _on_batch_row(self, message: BatchRow) -> None:
        self.batch.add(message.result)
        self.status.set_state(self._progress_text())

    @on(Ended)
    def _on_ended(self, message: Ended) -> None:
        job = message.job
        if job is not self.job:
            return
        self.job = None
        self.refresh_bindings()
        if message.outcome == "failed":
            self.notify(message.error, title="failed", severity="error", markup=False)
        if job.kind == "batch":
            batch = self.batch
            note = message.outcome if message.outcome != "done" else "finished"
            batch.finish(note)
            state = (
                f"batch {note}: {len(batch.results)}/{batch.total} judged, "
                f"{batch.flagged_count} flagged"
            )
        elif message.outcome == "done":
            state = "ready"
        else:
            state = message.outcome
            self.reasoning.set_stats(message.outcome)
        self.status.set_state(state)

    @on(TabbedContent.TabActivated)
    def _on_tab(self, _event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # the footer's "f Flagged" belongs to the Batch tab

    @on(ListView.Selected, "#history")
    def _on_history_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if self._refuse_when_busy():
            return
        item = event.item
        assert isinstance(item, HistoryItem)
        sample = item.result.sample
        self.query_one("#prompt", TextArea).text = sample.prompt
        self.query_one("#response", TextArea).text = sample.response or ""
        self._show_result(item.result)
        self.status.set_state(f"restored #{item.number}")

    @on(BatchPane.OpenRow)
    def _on_open_row(self, message: BatchPane.OpenRow) -> None:
        self.push_screen(ResultScreen(message.result, timings=self.timings))

    # ---- helpers ------------------------------------------------------------------------------

    def _begin(self, kind: str) -> Job:
        self.job = Job(kind)
        if self.output is not None:
            self.output.begin()  # here, not in the thread: quitting at once must wait for it
        self.refresh_bindings()
        return self.job

    def _refuse_when_busy(self) -> bool:
        if self.job is None:
            return False
        what = "a batch" if self.job.kind == "batch" else "a classification"
        self.notify(f"Busy with {what}: wait, or press escape to cancel it.", severity="warning")
        return True

    def _show_result(self, result: Result) -> None:
        if result.injection:  # our own vocabulary: safe to show as is
            self.notify(
                "The input carries text shaped like the guard's own template ("
                + ", ".join(result.injection)
                + "): it was neutralised, and the verdict is the more flagged of two readings.",
                severity="warning",
                markup=False,
            )
        self._live = result.verdict.raw
        self.reasoning.show(result.verdict.raw)
        self.badges.show(result.verdict)
        self.reasoning.set_stats(stats_text(result.generation, timings=self.timings))

    def _progress_text(self) -> str:
        job = self.job
        if job is None:
            return "ready"
        seconds = f" · {time.perf_counter() - job.started:.0f} s" if self.timings else ""
        if job.kind == "one":
            return f"generating · {job.pieces} tokens{seconds}"
        batch = self.batch
        return (
            f"batch {len(batch.results)}/{batch.total} · {batch.flagged_count} flagged · "
            f"{job.pieces} tokens{seconds}"
        )

    def _tick(self) -> None:
        """Batch rows arrive a chunk at a time; between them the token count keeps the
        status bar moving, so a long chunk does not look like a hang."""
        if self.job is not None and self.job.kind == "batch":
            self.status.set_state(self._progress_text())
