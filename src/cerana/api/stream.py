"""Live activity: TheHive's long-poll `/api/stream` and `/api/flow`.

Streams read the audit table, so every API process sees every change,
whatever process made it. A stream only remembers its position (the last
audit id it delivered); an unknown stream id starts at "now".
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection, RowMapping
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cerana.api import render
from cerana.api.deps import guard, platform, read
from cerana.api.responses import json_response
from cerana.domain.errors import InvalidInput
from cerana.services import activity

router = APIRouter()

_ALPHABET = string.ascii_letters + string.digits
_POLL_SECONDS = 0.25
_NEXT_ITEM_WAIT = 0.5
_STREAM_TTL = 15 * 60
# stream id -> (last audit id delivered, last poll time)
_streams: dict[str, tuple[int, float]] = {}


@router.post("/api/stream")
async def create_stream(request: Request) -> Response:
    await guard(request, "read")
    stream_id = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    _streams[stream_id] = (
        await read(request, lambda c: activity.last_audit_id(c)),
        time.monotonic(),
    )
    _forget_idle_streams()
    return PlainTextResponse(stream_id)


@router.get("/api/stream/status")
async def stream_status(request: Request) -> Response:
    await guard(request, None)
    remaining = platform(request).settings.session_inactivity
    return json_response({"remaining": remaining, "warning": False})


@router.get("/api/stream/{stream_id}")
async def poll_stream(request: Request, stream_id: str) -> Response:
    actor = await guard(request, "read")
    if len(stream_id) != 10 or not set(stream_id) <= set(_ALPHABET):
        raise InvalidInput(f"stream id '{stream_id[:20]}' is malformed")
    if stream_id not in _streams:
        _streams[stream_id] = (
            await read(request, lambda c: activity.last_audit_id(c)),
            time.monotonic(),
        )
    cursor = _streams[stream_id][0]
    wait = _refresh_seconds(request)
    deadline = time.monotonic() + wait
    audits: list[RowMapping] = []
    while True:
        audits = await read(request, activity.audits_after, actor.organisation, cursor)
        if audits or time.monotonic() >= deadline or await request.is_disconnected():
            break
        await asyncio.sleep(_POLL_SECONDS)
    if audits:
        # Let the rest of a burst arrive, then answer with all of it.
        await asyncio.sleep(_NEXT_ITEM_WAIT)
        audits += await read(
            request, activity.audits_after, actor.organisation, audits[-1]["id"]
        )
        cursor = audits[-1]["id"]
    _streams[stream_id] = (cursor, time.monotonic())
    messages = await read(request, _messages, actor.organisation, audits)
    return json_response(messages)


def _refresh_seconds(request: Request) -> float:
    raw = request.query_params.get("refresh")
    default = platform(request).settings.stream_refresh
    try:
        return max(0.0, min(float(raw), default)) if raw else default
    except ValueError:
        return default


def _forget_idle_streams() -> None:
    limit = time.monotonic() - _STREAM_TTL
    for stream_id, (_, seen) in list(_streams.items()):
        if seen < limit:
            del _streams[stream_id]


def _messages(
    conn: Connection, organisation: str, audits: Sequence[RowMapping]
) -> list[dict[str, Any]]:
    objects = activity.current_objects(conn, organisation, audits)
    summaries = activity.request_summaries(conn, [a["request_id"] for a in audits])
    grouped: dict[str, list[RowMapping]] = {}
    for audit in audits:
        grouped.setdefault(audit["request_id"], []).append(audit)
    messages = []
    for request_id, group in grouped.items():
        messages.append(
            {
                "base": _audit_json(group[0], objects),
                "summary": summaries.get(request_id, {}),
            }
        )
    return messages


def _audit_json(
    audit: RowMapping, objects: dict[tuple[str, str], Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(audit["id"]),
        "objectId": audit["object_id"],
        "objectType": audit["object_type"],
        "operation": audit["operation"],
        "startDate": audit["created_at"],
        "rootId": audit["root_id"],
        "user": audit["created_by"],
        "createdBy": audit["created_by"],
        "createdAt": audit["created_at"],
        "requestId": audit["request_id"],
        "base": audit["base"],
        "details": audit["details"],
    }
    row = objects.get((audit["object_type"], audit["object_id"]))
    if row is not None:
        body["object"] = render.RENDERERS[audit["object_type"]](row, None)
    return body


@router.get("/api/flow")
async def flow(request: Request) -> Response:
    actor = await guard(request, "read")
    root = request.query_params.get("rootId")
    root_id = None if root in (None, "", "any") else root
    try:
        count = max(1, min(int(request.query_params.get("count", "10")), 500))
    except ValueError:
        raise InvalidInput("count must be a number") from None

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        audits, total = activity.recent_audits(
            conn, actor.organisation, root_id=root_id, count=count
        )
        objects = activity.current_objects(conn, actor.organisation, audits)
        summaries = activity.request_summaries(conn, [a["request_id"] for a in audits])
        return [
            {
                "base": _audit_json(a, objects),
                "summary": summaries.get(a["request_id"], {}),
            }
            for a in audits
        ], total

    items, total = await read(request, run)
    return json_response(items, headers={"X-Total": str(total)})
