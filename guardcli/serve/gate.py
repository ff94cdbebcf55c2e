"""The ASGI middleware every request passes: request id, API key, drain, body-size cap,
metrics and the access log.

Written as plain ASGI (not Starlette's BaseHTTPMiddleware) so streamed responses pass through
untouched and the in-flight count covers a stream until its last byte.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardcli.serve.auth import authorized
from guardcli.serve.config import OPEN_ROUTES
from guardcli.serve.errors import ApiError
from guardcli.serve.logs import log
from guardcli.serve.responses import error_response
from guardcli.serve.state import ServeState

API_ROUTES = ("/v1/moderations", "/v1/guard")  # the work a drain waits for
ROUTES = (*API_ROUTES, "/healthz", "/readyz", "/metrics")


class Gate:
    def __init__(self, app: ASGIApp, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in ROUTES else "other"  # bounded label values for /metrics
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.monotonic()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        metrics = self.state.metrics
        work = int(path in API_ROUTES)  # probes and scrapes never hold a drain open
        metrics.in_flight += work
        try:
            refusal = self._refusal(scope, path)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send_with_status)
            else:
                await self.app(scope, receive, send_with_status)
        finally:
            metrics.in_flight -= work
            took = time.monotonic() - started
            metrics.request_done(route, status, took)
            if route not in OPEN_ROUTES and route != "/metrics" or status >= 400:
                method = scope.get("method", "?")
                log(f"{method} {path} {status} {took * 1000:.0f}ms id={request_id}")

    def _refusal(self, scope: Scope, path: str) -> ApiError | None:
        """Why this request is refused before it reaches a route, or None."""
        options = self.state.options
        if path not in OPEN_ROUTES and not authorized(
            _header(scope, b"authorization"), options.api_key
        ):
            return ApiError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        if self.state.draining and path != "/healthz" and path != "/readyz":
            return ApiError(
                503,
                "the server is shutting down: retry on another instance",
                code="draining",
                retry_after=1,
            )
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > options.max_body:
            return too_large(options.max_body)
        return None


def too_large(max_body: int) -> ApiError:
    return ApiError(
        413,
        f"the body is over this server's limit of {max_body} bytes (--max-body): "
        "send fewer or shorter inputs",
        code="body_too_large",
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def request_id(scope: dict[str, Any]) -> str:
    return scope.get("state", {}).get("request_id", "")
