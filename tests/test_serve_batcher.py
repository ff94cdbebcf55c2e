"""The serve batcher with fake judges (no model): gathering, limits, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from guardcli.core.records import Generation, Label, Result, Sample, Verdict
from guardcli.serve.batcher import Batcher, BatchKey, DeadlineExceeded, QueueFull

KEY = BatchKey("reason", 64)
FAST = BatchKey("fast", 64)


def samples(*prompts: str) -> list[Sample]:
    return [Sample(id=str(i), prompt=p) for i, p in enumerate(prompts)]


def result(sample: Sample, tokens: int = 3) -> Result:
    generation = Generation(
        text=sample.prompt, prompt_tokens=1, output_tokens=tokens, latency_s=0.0, finish="answers"
    )
    return Result(sample, Verdict(request=Label.HARMFUL), generation)


class Recorder:
    """A judge that records each batch (key, prompts, thread) and can be made slow."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[tuple[BatchKey, list[str]]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, key, batch, on_text, cancelled):
        self.batches.append((key, [s.prompt for s in batch]))
        self.threads.add(threading.current_thread().name)
        if self.fail_on in [s.prompt for s in batch]:
            raise RuntimeError("runtime failure")
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if cancelled():
                raise KeyboardInterrupt  # guardcli.core.engine's contract
            time.sleep(0.002)
        for row, sample in enumerate(batch):
            on_text(row, f"<{sample.prompt}>")
        return [result(s) for s in batch]


def run(coro):
    return asyncio.run(coro)


async def started(judge, **kwargs) -> Batcher:
    options = {"batch_size": 4, "wait_s": 0.02, "max_queue": 16} | kwargs
    batcher = Batcher(judge, **options)
    batcher.start()
    return batcher


def test_concurrent_requests_share_one_batch_on_the_worker_thread():
    judge = Recorder()

    async def main():
        batcher = await started(judge)
        jobs = [batcher.submit(samples(f"p{i}"), KEY, 5) for i in range(3)]
        outs = await asyncio.gather(*(batcher.wait(job) for job in jobs))
        await batcher.stop()
        return outs, batcher

    outs, batcher = run(main())
    assert judge.batches == [(KEY, ["p0", "p1", "p2"])]
    assert [[r.sample.prompt for r in out] for out in outs] == [["p0"], ["p1"], ["p2"]]
    assert judge.threads and all(name.startswith("guardcli-engine") for name in judge.threads)
    assert batcher.metrics.batches.count == 1 and batcher.metrics.tokens == 9


def test_batches_never_exceed_batch_size_and_results_keep_input_order():
    judge = Recorder()

    async def main():
        batcher = await started(judge, batch_size=4)
        big = batcher.submit(samples(*(f"a{i}" for i in range(6))), KEY, 5)
        small = batcher.submit(samples("b0", "b1", "b2"), KEY, 5)
        outs = await asyncio.gather(batcher.wait(big), batcher.wait(small))
        await batcher.stop()
        return outs

    big, small = run(main())
    assert [len(prompts) for _, prompts in judge.batches] == [4, 4, 1]
    assert [r.sample.prompt for r in big] == [f"a{i}" for i in range(6)]
    assert [r.sample.prompt for r in small] == ["b0", "b1", "b2"]


def test_different_modes_are_never_mixed_in_one_batch():
    judge = Recorder()

    async def main():
        batcher = await started(judge)
        jobs = [
            batcher.submit(samples("r1"), KEY, 5),
            batcher.submit(samples("f1"), FAST, 5),
            batcher.submit(samples("r2"), KEY, 5),
        ]
        await asyncio.gather(*(batcher.wait(job) for job in jobs))
        await batcher.stop()

    run(main())
    assert judge.batches == [(KEY, ["r1", "r2"]), (FAST, ["f1"])]


def test_a_full_queue_refuses_with_a_retry_hint():
    judge = Recorder(delay=0.3)

    async def main():
        batcher = await started(judge, batch_size=1, max_queue=2, wait_s=0)
        first = batcher.submit(samples("x0", "x1"), KEY, 5)
        await asyncio.sleep(0.05)  # x0 runs, x1 waits: depth 1
        assert batcher.depth == 1
        with pytest.raises(QueueFull) as refused:
            batcher.submit(samples("y0", "y1"), KEY, 5)
        fits = batcher.submit(samples("z0"), KEY, 5)
        outs = await asyncio.gather(batcher.wait(first), batcher.wait(fits))
        await batcher.stop()
        return refused.value, outs

    refused, outs = run(main())
    assert refused.retry_after >= 1
    assert [len(out) for out in outs] == [2, 1]
    assert all("y0" not in prompts for _, prompts in judge.batches)


def test_a_deadline_cancels_the_running_batch_and_answers_at_once():
    judge = Recorder(delay=5.0)

    async def main():
        batcher = await started(judge, wait_s=0)
        job = batcher.submit(samples("slow"), KEY, 0.1)
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await batcher.wait(job)
        waited = time.monotonic() - began
        for _ in range(100):  # the worker notices within a token step
            if batcher.idle:
                break
            await asyncio.sleep(0.01)
        idle = batcher.idle
        await batcher.stop()
        return waited, idle, batcher.metrics

    waited, idle, metrics = run(main())
    assert waited < 1.0
    assert idle, "the cancelled batch was left running"
    assert metrics.cancelled_batches == 1 and metrics.inputs == 0


def test_a_job_whose_deadline_passes_in_the_queue_is_never_judged():
    judge = Recorder(delay=0.3)

    async def main():
        batcher = await started(judge, batch_size=1, wait_s=0)
        busy = batcher.submit(samples("busy"), KEY, 5)
        await asyncio.sleep(0.02)
        late = batcher.submit(samples("late"), KEY, 0.05)
        with pytest.raises(DeadlineExceeded):
            await batcher.wait(late)
        await batcher.wait(busy)
        await asyncio.sleep(0.05)
        await batcher.stop()

    run(main())
    assert judge.batches == [(KEY, ["busy"])]


def test_a_batch_shared_with_a_live_request_is_not_cancelled():
    judge = Recorder(delay=0.3)

    async def main():
        batcher = await started(judge)
        short = batcher.submit(samples("short"), KEY, 0.1)
        long = batcher.submit(samples("long"), KEY, 5)
        with pytest.raises(DeadlineExceeded):
            await batcher.wait(short)
        out = await batcher.wait(long)
        await batcher.stop()
        return out, batcher.metrics

    out, metrics = run(main())
    assert [r.sample.prompt for r in out] == ["long"]
    assert metrics.cancelled_batches == 0


def test_a_runtime_failure_fails_its_requests_and_the_worker_lives_on():
    judge = Recorder(fail_on="boom")

    async def main():
        batcher = await started(judge, wait_s=0)
        bad = batcher.submit(samples("boom"), KEY, 5)
        with pytest.raises(RuntimeError):
            await batcher.wait(bad)
        good = batcher.submit(samples("fine"), KEY, 5)
        out = await batcher.wait(good)
        await batcher.stop()
        return out

    assert [r.sample.prompt for r in run(main())] == ["fine"]


def test_text_pieces_reach_the_event_loop_with_their_input_index():
    judge = Recorder()
    seen: list[tuple[int, str, str]] = []

    async def main():
        batcher = await started(judge)
        loop_thread = threading.current_thread().name

        def sink(index: int, piece: str) -> None:
            seen.append((index, piece, threading.current_thread().name == loop_thread))

        other = batcher.submit(samples("o"), KEY, 5)
        job = batcher.submit(samples("a", "b"), KEY, 5, on_text=sink)
        await asyncio.gather(batcher.wait(other), batcher.wait(job))
        await asyncio.sleep(0)
        await batcher.stop()

    run(main())
    assert seen == [(0, "<a>", True), (1, "<b>", True)]
