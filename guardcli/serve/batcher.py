"""Concurrent requests -> engine batches, on one worker thread.

The engine is synchronous and holds one model, so exactly one thread runs it; the event loop
only queues, gathers and hands out results, and stays responsive while a batch runs. Requests
that arrive while a batch runs wait in the queue and together form the next batch, so batches
fill by themselves under load; an idle server waits ``wait_s`` for company before it starts
one. The queue is bounded (QueueFull -> 429) and every job has a deadline: a job whose
deadline passed before its rows were taken is dropped, and a running batch is stopped (the
engine's ``cancelled`` hook, checked every token) once every request in it has given up.
A batch shared with a live request runs to its end; the late request's answer is a 504.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from guardcli.core.records import Result, Sample
from guardcli.serve.metrics import Metrics

TextSink = Callable[[int, str], None]  # (input index in its request, text piece)


@dataclass(frozen=True)
class BatchKey:
    """Rows batch together only when they are judged the same way."""

    mode: str
    max_new_tokens: int


# judge(key, samples, on_text, cancelled) -> results in order; raises KeyboardInterrupt when
# ``cancelled()`` turned true mid-batch (guardcli.core.engine's contract).
Judge = Callable[[BatchKey, Sequence[Sample], TextSink, Callable[[], bool]], list[Result]]


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full; retry after {retry_after}s")
        self.retry_after = retry_after


class DeadlineExceeded(Exception):
    pass


class Job:
    """One request's inputs, taken into batches row by row."""

    def __init__(
        self,
        samples: Sequence[Sample],
        key: BatchKey,
        deadline: float,
        future: asyncio.Future[list[Result]],
        on_text: TextSink | None,
    ) -> None:
        self.samples = list(samples)
        self.key = key
        self.deadline = deadline
        self.future = future
        self.on_text = on_text
        self.results: list[Result | None] = [None] * len(self.samples)
        self.taken = 0
        self.done = 0
        self.abandoned = False  # the client's answer was already given (504) or it went away

    def gone(self, now: float) -> bool:
        return self.abandoned or self.future.done() or now >= self.deadline


class Batcher:
    def __init__(
        self,
        judge: Judge,
        *,
        batch_size: int,
        wait_s: float,
        max_queue: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.judge = judge
        self.batch_size = batch_size
        self.wait_s = wait_s
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self.pending: list[Job] = []
        self.running = 0  # rows in the batch on the worker thread
        self._seconds_per_batch = 1.0  # moving estimate, for Retry-After
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guardcli-engine")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in self.pending:
            job.future.cancel()
        self.pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        """Inputs queued, not yet in a batch."""
        return sum(len(job.samples) - job.taken for job in self.pending)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.running

    # ---- the request side ------------------------------------------------------------------

    def submit(
        self,
        samples: Sequence[Sample],
        key: BatchKey,
        timeout_s: float,
        on_text: TextSink | None = None,
    ) -> Job:
        """Queue ``samples`` as one job, or refuse with QueueFull when they do not fit."""
        depth = self.depth
        if depth + len(samples) > self.max_queue:
            batches_ahead = math.ceil((depth + len(samples)) / self.batch_size) + 1
            raise QueueFull(max(1, math.ceil(batches_ahead * self._seconds_per_batch)))
        loop = asyncio.get_running_loop()
        sink = None
        if on_text is not None:

            def sink(index: int, piece: str) -> None:  # called on the worker thread
                loop.call_soon_threadsafe(on_text, index, piece)

        job = Job(samples, key, time.monotonic() + timeout_s, loop.create_future(), sink)
        self.pending.append(job)
        self.metrics.queue_depth = self.depth
        assert self._wake is not None, "Batcher.start() was not called"
        self._wake.set()
        return job

    async def wait(self, job: Job) -> list[Result]:
        """The job's results in input order; DeadlineExceeded once its deadline passes."""
        remaining = max(0.0, job.deadline - time.monotonic())
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), remaining)
        except asyncio.TimeoutError:
            self._abandon(job)
            raise DeadlineExceeded from None
        except asyncio.CancelledError:  # the client went away
            self._abandon(job)
            raise

    def _abandon(self, job: Job) -> None:
        job.abandoned = True
        job.future.cancel()
        self._drop_gone(time.monotonic())

    # ---- the worker side -------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                if self.depth < self.batch_size and self.wait_s > 0:
                    await asyncio.sleep(self.wait_s)  # an idle server: let a batch gather
                rows = self._take()
                if rows:
                    await self._run(rows)

    def _drop_gone(self, now: float) -> None:
        self.pending = [job for job in self.pending if not job.gone(now)]
        self.metrics.queue_depth = self.depth

    def _take(self) -> list[tuple[Job, int]]:
        """Up to batch_size rows, all with the first live job's key, oldest first."""
        self._drop_gone(time.monotonic())
        if not self.pending:
            return []
        key = self.pending[0].key
        rows: list[tuple[Job, int]] = []
        for job in self.pending:
            if job.key != key:
                continue
            while job.taken < len(job.samples) and len(rows) < self.batch_size:
                rows.append((job, job.taken))
                job.taken += 1
        self.pending = [job for job in self.pending if job.taken < len(job.samples)]
        self.metrics.queue_depth = self.depth
        return rows

    async def _run(self, rows: list[tuple[Job, int]]) -> None:
        jobs = list({id(job): job for job, _ in rows}.values())
        samples = [job.samples[index] for job, index in rows]

        def on_text(row: int, piece: str) -> None:
            job, index = rows[row]
            if job.on_text is not None and not job.abandoned:
                job.on_text(index, piece)

        def cancelled() -> bool:
            now = time.monotonic()
            return all(job.gone(now) for job in jobs)

        call = partial(_judge_or_none, self.judge, rows[0][0].key, samples, on_text, cancelled)
        self.running = len(rows)
        started = time.monotonic()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except Exception as exc:  # the runtime failed: these requests get a 500, the server lives
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self.running = 0
            took = time.monotonic() - started
            self._seconds_per_batch = 0.8 * self._seconds_per_batch + 0.2 * took
        if results is None:
            self.metrics.cancelled_batches += 1
            for job in jobs:
                job.future.cancel()
            return
        tokens = sum(r.generation.output_tokens for r in results if r.generation is not None)
        self.metrics.batch_done(len(rows), tokens)
        for (job, index), result in zip(rows, results, strict=True):
            job.results[index] = result
            job.done += 1
            if job.done == len(job.samples) and not job.future.done():
                job.future.set_result([r for r in job.results if r is not None])


def _judge_or_none(
    judge: Judge,
    key: BatchKey,
    samples: Sequence[Sample],
    on_text: TextSink,
    cancelled: Callable[[], bool],
) -> list[Result] | None:
    """On the worker thread: None when the batch was cancelled (KeyboardInterrupt must not
    cross into the event loop, where asyncio would treat it as the process being stopped)."""
    try:
        return judge(key, samples, on_text, cancelled)
    except KeyboardInterrupt:
        return None
