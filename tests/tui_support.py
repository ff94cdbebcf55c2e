"""Helpers shared by the TUI tests: building the app over the fixture guard, driving it with
Pilot from plain (sync) tests, and a guard whose generation can be held at a chosen point so
cancelling and quitting mid-run are tested at a known moment rather than raced."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from guardcli.tui.app import GuardApp
from guardcli.tui.widgets import ModelInfo
from testkit.pairs import FIXTURE_PAIRS

PAIRS = {pair.id: pair for pair in FIXTURE_PAIRS}
FLAGGED_IDS = [
    p.id for p in FIXTURE_PAIRS if "harmful" in (p.request.value, p.response_label.value)
]
SIZE = (110, 34)
MODEL = ModelInfo(name="fixture", precision="fp32", device="cpu")


def make_app(guard, **kwargs) -> GuardApp:  # noqa: ANN001
    """The app as the tests see it: deterministic text (no timings), cursors still."""
    kwargs.setdefault("timings", False)
    kwargs.setdefault("blink", False)
    return GuardApp(guard, model=MODEL, **kwargs)


def record_notices(app: GuardApp) -> list[str]:
    """Every message the app shows as a notification, in order."""
    notices: list[str] = []
    show = app.notify

    def recording(message: str, **kwargs) -> None:  # noqa: ANN003
        notices.append(message)
        show(message, **kwargs)

    app.notify = recording
    return notices


def drive(app: GuardApp, scenario: Callable, size: tuple[int, int] = SIZE):  # noqa: ANN201
    """Run ``scenario(pilot)`` against the app headless; returns what the scenario returns."""

    async def main():  # noqa: ANN202
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            return await scenario(pilot)

    return asyncio.run(main())


async def until(
    pilot,  # noqa: ANN001
    condition: Callable[[], bool],
    timeout: float = 60.0,
    nudge: Callable[[], None] | None = None,
    why: Callable[[], str] | None = None,
) -> None:
    """Let the app run until ``condition`` holds (workers run in threads meanwhile); every
    second it does not, call ``nudge``; on timeout, say ``why``."""
    started = time.monotonic()
    nudged = started
    while not condition():
        now = time.monotonic()
        if now - started > timeout:
            detail = f": {why()}" if why else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}{detail}")
        if nudge and now - nudged > 1.0:
            nudge()
            nudged = now
        await pilot.pause(0.02)


def mismatches(app: GuardApp) -> list[str]:
    """The reasoning blocks not (yet) arranged at the height their current text needs.

    A block's text changes at once on ``update`` but its size only on a later layout pass;
    a screenshot taken in between shows the block cut short (CI caught both the Answers
    block and the last task's conclusion that way under load). Waiting on this instead of a
    fixed pause holds however slow the machine is.
    """
    blocks = list(app.screen.query(".section"))  # none while a dialog screen is on top
    if blocks and not app.reasoning.is_on_screen:
        return []  # the Batch tab is showing: the console is not laid out until it is
    wrong = []
    for block in blocks:
        gutter = block.styles.gutter
        width = block.outer_size.width - gutter.width
        if width <= 0:
            wrong.append(f"{block.border_title!r} not laid out yet")
            continue
        wanted = block.get_content_height(block.container_size, app.size, width) + gutter.height
        if block.outer_size.height != wanted:
            wrong.append(f"{block.border_title!r} {block.outer_size.height} rows, needs {wanted}")
    return wrong


def laid_out(app: GuardApp) -> bool:
    return not mismatches(app)


async def settle(pilot) -> None:  # noqa: ANN001
    """Wait until no job runs, every message it posted has been handled, and the screen
    shows it: the reasoning blocks are laid out at their final heights and a frame has
    been painted since."""
    await until(pilot, lambda: pilot.app.job is None)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    # CI once waited the whole 60 s here (2026-12-03; why is not known): a layout pass is
    # asked for again each second, and a timeout names the blocks that stay wrong.
    await until(
        pilot,
        lambda: laid_out(pilot.app),
        nudge=lambda: pilot.app.screen.refresh(layout=True),
        why=lambda: "; ".join(mismatches(pilot.app)),
    )
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def type_text(pilot, text: str) -> None:  # noqa: ANN001
    """Type like a person: one key per character (newlines as enter)."""
    await pilot.press(*("enter" if char == "\n" else char for char in text))


def write_pairs(path: Path, pairs=FIXTURE_PAIRS) -> Path:  # noqa: ANN001
    with open(path, "w", encoding="utf-8") as handle:
        for pair in pairs:
            record = {"id": pair.id, "prompt": pair.prompt}
            if pair.response is not None:
                record["response"] = pair.response
            handle.write(json.dumps(record) + "\n")
    return path


class GatedGuard:
    """The fixture guard, but generation pauses inside the engine loop (in the worker thread)
    at the ``hold_at``-th streamed piece of the ``batch``-th call, until ``release``."""

    def __init__(self, guard, *, batch: int = 1, hold_at: int = 5) -> None:  # noqa: ANN001
        self.guard = guard
        self.options = guard.options
        self.calls = 0
        self._batch, self._hold_at = batch, hold_at
        self.held = threading.Event()
        self.released = threading.Event()

    def classify_batch(self, samples, *, on_text=None, cancelled=None):  # noqa: ANN001, ANN201
        self.calls += 1
        call, pieces = self.calls, 0

        def gated(row: int, piece: str) -> None:
            nonlocal pieces
            pieces += 1
            if on_text is not None:
                on_text(row, piece)
            if call == self._batch and pieces == self._hold_at:
                self.held.set()
                self.released.wait(timeout=30)

        return self.guard.classify_batch(samples, on_text=gated, cancelled=cancelled)


async def hold(pilot, gate: GatedGuard) -> None:  # noqa: ANN001
    await until(pilot, gate.held.is_set)
    await pilot.pause()
