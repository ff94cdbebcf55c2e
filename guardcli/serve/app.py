"""The routes: /v1/moderations (OpenAI's shape), /v1/guard (the native record), the probes
and /metrics, wrapped in the Gate middleware.

Every handler turns what can go wrong into an OpenAI-shaped error: ApiError as itself, any
other exception as a 500 whose log line names only its type (a model failure must not take
the server down, and a client's text must not reach the log unasked).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from guardcli.core.records import Result
from guardcli.io.outputs import result_record
from guardcli.serve.batcher import BatchKey, DeadlineExceeded, QueueFull, TextSink
from guardcli.serve.errors import ApiError, timed_out
from guardcli.serve.gate import Gate, request_id, too_large
from guardcli.serve.logs import log
from guardcli.serve.metrics import CONTENT_TYPE
from guardcli.serve.moderation import moderation_body
from guardcli.serve.requests import Call, guard_call, load_json, moderation_call
from guardcli.serve.responses import error_response, json_response
from guardcli.serve.state import ServeState
from guardcli.serve.stream import stream_response

Handler = Callable[[Request], Awaitable[Response]]


def build_app(state: ServeState) -> Gate:
    async def moderations(request: Request) -> Response:
        rid = "modr-" + request_id(request.scope)
        call = moderation_call(load_json(await read_body(request, state)), state.limits, rid)
        _log_inputs(state, rid, call)
        results = await judge(call, request)
        body = moderation_body(
            results, request_id=rid, model=state.model_name, reasoning=call.reasoning
        )
        return json_response(body)

    async def guard(request: Request) -> Response:
        rid = request_id(request.scope)
        call = guard_call(load_json(await read_body(request, state)), state.limits, rid)
        _log_inputs(state, rid, call)
        if call.stream:
            return stream_response(state, call, submit)
        records = [
            result_record(result, reasoning=call.reasoning) for result in await judge(call, request)
        ]
        return json_response(records[0] if call.single else {"results": records})

    async def healthz(_request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if state.draining:
            return json_response({"status": "draining"}, 503)
        if not state.ready:
            return json_response({"status": "loading"}, 503)
        return json_response({"status": "ready", "model": state.model_name})

    async def metrics(_request: Request) -> Response:
        state.metrics.ready = state.ready and not state.draining
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    def submit(call: Call, on_text: TextSink | None = None):  # noqa: ANN202 - a batcher Job
        try:
            return state.batcher.submit(
                call.samples,
                BatchKey(call.mode, call.max_new_tokens),
                state.options.timeout_s,
                on_text,
            )
        except QueueFull as full:
            raise ApiError(
                429,
                f"the queue is full ({state.options.max_queue} inputs waiting, --max-queue): "
                f"retry after {full.retry_after}s",
                code="queue_full",
                retry_after=full.retry_after,
            ) from None

    async def judge(call: Call, request: Request) -> list[Result]:
        """The call's results; a client that hangs up gives its place up (its batch stops
        if no one else waits for it)."""
        waiter = asyncio.ensure_future(state.batcher.wait(submit(call)))
        gone = asyncio.ensure_future(_hung_up(request))
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            hung_up = not waiter.done()
            if hung_up:  # or this handler was cancelled: either way no one waits for it
                waiter.cancel()
        if hung_up:
            raise ApiError(499, "the client closed the connection", code="client_closed")
        try:
            return waiter.result()
        except DeadlineExceeded:
            raise timed_out(state.options.timeout_s) from None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state.batcher.start()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            await state.batcher.stop()

    routes = [
        Route("/v1/moderations", guarded(moderations), methods=["POST"]),
        Route("/v1/guard", guarded(guard), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    return Gate(app, state)


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            return error_response(error)
        except ClientDisconnect:  # gone while sending its body: nothing was queued
            return error_response(ApiError(499, "the client closed the connection"))
        except Exception as exc:  # a bug or a runtime failure: one line, no client text
            log(f"error: request {request_id(request.scope)} failed: {type(exc).__name__}")
            return error_response(
                ApiError(
                    500,
                    f"the guard failed on this request ({type(exc).__name__})",
                    code="internal_error",
                )
            )

    return wrapper


async def read_body(request: Request, state: ServeState) -> bytes:
    """The body, refused with 413 as soon as it passes --max-body (chunked bodies too)."""
    limit = state.options.max_body
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _hung_up(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so the next message
    the server can receive is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = ApiError(
            404, f"no route {request.url.path}: see /v1/moderations, /v1/guard", code="not_found"
        )
    else:
        error = ApiError(
            exc.status_code,
            f"{request.method} is not allowed on {request.url.path}",
            code="method_not_allowed",
        )
    response = error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _log_inputs(state: ServeState, rid: str, call: Call) -> None:
    if not state.options.log_requests:
        return
    for sample in call.samples:
        shown = {"prompt": sample.prompt, "response": sample.response}
        log(f"request {rid} input {sample.id}: {json.dumps(shown, ensure_ascii=False)}")
