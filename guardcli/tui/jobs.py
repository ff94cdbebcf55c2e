"""One job at a time: a classification or a batch in flight, and the messages its worker
thread posts back to the interface (``post_message`` is thread-safe)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from textual.message import Message

from guardcli.core.records import Result, Skip


@dataclass
class Job:
    """One classification or batch in flight; ``stop`` is polled by the engine every step."""

    kind: str  # "one" | "batch"
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    pieces: int = 0  # text pieces streamed so far (about one per token)


# ---- worker -> interface messages (posted from the worker thread) ----------------------------


class Piece(Message):
    def __init__(self, job: Job, text: str) -> None:
        super().__init__()
        self.job, self.text = job, text


class Finished(Message):
    def __init__(self, job: Job, result: Result) -> None:
        super().__init__()
        self.job, self.result = job, result


class BatchStarted(Message):
    def __init__(self, job: Job, source: str, total: int, skips: list[Skip]) -> None:
        super().__init__()
        self.job, self.source, self.total, self.skips = job, source, total, skips


class BatchRow(Message):
    def __init__(self, job: Job, result: Result) -> None:
        super().__init__()
        self.job, self.result = job, result


class Ended(Message):
    """A job is over: ``outcome`` is "done", "cancelled" or "failed" (with ``error``)."""

    def __init__(self, job: Job, outcome: str, error: str = "") -> None:
        super().__init__()
        self.job, self.outcome, self.error = job, outcome, error
