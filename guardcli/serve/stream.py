"""``/v1/guard`` with ``"stream": true``: Server-Sent Events.

``event: reasoning`` carries ``{"index", "text"}`` pieces as the model writes them (none in
fast mode), then one ``event: verdict`` per input with the same record ``scan -f jsonl``
writes, then ``event: done``. A deadline passing mid-stream, after the 200 went out, ends
the stream with ``event: error`` and the OpenAI-shaped 504 body. A client that disconnects
gives up its request: the batcher drops it (or stops its batch if nothing else needs it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from guardcli.io.outputs import json_line, result_record
from guardcli.serve.batcher import DeadlineExceeded, Job, TextSink
from guardcli.serve.errors import ApiError, timed_out
from guardcli.serve.requests import Call
from guardcli.serve.state import ServeState


def event(name: str, data: Any) -> str:
    payload = data if isinstance(data, str) else json_line(data)
    return f"event: {name}\ndata: {payload}\n\n"


def stream_response(
    state: ServeState, call: Call, submit: Callable[[Call, TextSink | None], Job]
) -> StreamingResponse:
    """Queue first (so a full queue is still a 429), then stream."""
    pieces: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    job = submit(call, lambda index, text: pieces.put_nowait((index, text)))
    return StreamingResponse(
        _events(state, call, job, pieces),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    state: ServeState, call: Call, job: Job, pieces: asyncio.Queue[tuple[int, str]]
) -> AsyncIterator[str]:
    waiter = asyncio.ensure_future(state.batcher.wait(job))
    try:
        while not waiter.done():
            getter = asyncio.ensure_future(pieces.get())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                index, text = getter.result()
                yield event("reasoning", {"index": index, "text": text})
            else:
                getter.cancel()
        while not pieces.empty():
            index, text = pieces.get_nowait()
            yield event("reasoning", {"index": index, "text": text})
        try:
            results = waiter.result()
        except DeadlineExceeded:
            yield event("error", timed_out(state.options.timeout_s).body())
            return
        except Exception as exc:  # the runtime failed on this batch (the 200 is already out)
            failed = ApiError(500, f"the guard failed on this request ({type(exc).__name__})")
            yield event("error", failed.body())
            return
        for result in results:
            yield event("verdict", result_record(result, reasoning=call.reasoning))
        yield event("done", "[DONE]")
    finally:
        if not waiter.done():
            waiter.cancel()
