"""JSON and error responses. JSON goes through guardcli.io.outputs.json_line, the one
serializer that never fails on a lone surrogate or splits a line."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from guardcli.io.outputs import json_line
from guardcli.serve.errors import ApiError


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json_line(body), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.status, error.headers())
