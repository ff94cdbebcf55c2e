"""Errors a client gets, in OpenAI's shape: ``{"error": {message, type, param, code}}``.

The OpenAI client turns these into its typed exceptions (BadRequestError, RateLimitError...),
so an app that already handles OpenAI's errors handles ours. Messages name what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# HTTP status -> OpenAI error type
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
    504: "timeout",
}


@dataclass
class ApiError(Exception):
    status: int
    message: str
    param: str | None = None
    code: str | None = None
    retry_after: int | None = None  # seconds, for 429 and 503

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return headers


def invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def timed_out(timeout_s: float) -> ApiError:
    return ApiError(
        504,
        f"no verdict within {timeout_s:g}s (--timeout); the request was dropped",
        code="timeout",
    )
