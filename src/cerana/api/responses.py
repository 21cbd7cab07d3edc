"""JSON responses serialised with orjson, and TheHive's result conventions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=headers)


def search_response(items: Sequence[Any], total: int) -> JSONResponse:
    """A search result: the page as an array, the total in ``X-Total``."""
    return JSONResponse(list(items), headers={"X-Total": str(total)})


def multi_response(done: list[Any], failed: list[Any], status: int) -> JSONResponse:
    """TheHive's multi-result: all done → ``status``; all failed → 400;
    mixed → 207 with ``{"success", "failure"}``."""
    if not failed:
        return JSONResponse(done, status_code=status)
    if not done:
        return JSONResponse(failed, status_code=400)
    return JSONResponse({"success": done, "failure": failed}, status_code=207)


def empty(status: int = 204) -> Response:
    return Response(status_code=status)
