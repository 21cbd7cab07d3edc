"""Service calls from pages: in a transaction, off the event loop, timed.

The time spent is added up per request and reported in the page's
``Server-Timing`` header next to the total.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from cerana.api import deps

T = TypeVar("T")


async def read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs ``fn(conn, *args, **kwargs)`` in a read transaction."""
    started = time.perf_counter()
    try:
        return await deps.read(request, fn, *args, **kwargs)
    finally:
        _add_time(request, started)


async def write(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs ``fn(conn, *args, **kwargs)`` in a write transaction."""
    started = time.perf_counter()
    try:
        return await deps.write(request, fn, *args, **kwargs)
    finally:
        _add_time(request, started)


def database_seconds(request: Request) -> float:
    """Returns the time this request spent in service calls so far."""
    spent: float = getattr(request.state, "database_seconds", 0.0)
    return spent


def _add_time(request: Request, started: float) -> None:
    request.state.database_seconds = (
        database_seconds(request) + time.perf_counter() - started
    )
