"""Webhook routes (admins): endpoints under `/api/webhook`, and their
deliveries under `/api/webhook/delivery` (list failed ones, send again)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response, search_response
from cerana.domain.errors import InvalidInput
from cerana.services import webhooks as webhook_service
from cerana.store import query
from cerana.store.rows import Row

router = APIRouter()


@router.get("/api/webhook")
async def list_webhooks(request: Request) -> Response:
    actor = await guard(request, "admin")
    rows = await read(request, webhook_service.list_webhooks, actor.organisation)
    return json_response([render_webhook(r) for r in rows])


@router.post("/api/webhook")
async def create_webhook(request: Request) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, webhook_service.create_webhook, actor, fields.values)
    return json_response(render_webhook(row), 201)


@router.get("/api/webhook/delivery")
async def list_deliveries(request: Request) -> Response:
    actor = await guard(request, "admin")
    status = request.query_params.get("status")
    offset, limit = query.parse_range(request.query_params.get("range", "0-100"))

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        rows, total = webhook_service.list_deliveries(
            conn, actor.organisation, status=status, offset=offset, limit=limit
        )
        return [render_delivery(r) for r in rows], total

    items, total = await read(request, run)
    return search_response(items, total)


@router.post("/api/webhook/delivery/_retry")
async def retry_deliveries(request: Request) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    ids = _delivery_ids(fields.values.get("ids"))
    return await _retry(request, actor, ids)


@router.post("/api/webhook/delivery/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: str) -> Response:
    actor = await guard(request, "admin")
    return await _retry(request, actor, _delivery_ids([delivery_id]))


async def _retry(request: Request, actor: Any, ids: list[int]) -> Response:
    retried = await write(request, webhook_service.retry_deliveries, actor, ids)
    if retried:
        webhook_service.wake_workers(platform(request))
    return json_response({"retried": retried})


@router.get("/api/webhook/{webhook_id}")
async def get_webhook(request: Request, webhook_id: str) -> Response:
    actor = await guard(request, "admin")
    row = await read(
        request, webhook_service.get_webhook, actor.organisation, webhook_id
    )
    return json_response(render_webhook(row))


@router.patch("/api/webhook/{webhook_id}")
async def update_webhook(request: Request, webhook_id: str) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(
        request, webhook_service.update_webhook, actor, webhook_id, fields.values
    )
    return json_response(render_webhook(row))


@router.delete("/api/webhook/{webhook_id}")
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    actor = await guard(request, "admin")
    await write(request, webhook_service.delete_webhook, actor, webhook_id)
    return empty()


def render_webhook(row: Row) -> dict[str, Any]:
    """An endpoint as JSON; the secret is never sent back, only whether
    there is one."""
    return {
        "id": row["id"],
        "name": row["name"],
        "url": row["url"],
        "hasSecret": bool(row["secret"]),
        "objectTypes": row["object_types"],
        "operations": row["operations"],
        "enabled": row["enabled"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedBy": row["updated_by"],
        "updatedAt": row["updated_at"],
        "_version": row["version"],
    }


def render_delivery(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "webhookId": row["webhook_id"],
        "webhookName": row["webhook_name"],
        "auditId": row["audit_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "nextAttemptAt": row["next_attempt_at"],
        "lastStatusCode": row["last_status_code"],
        "lastError": row["last_error"],
        "createdAt": row["created_at"],
        "deliveredAt": row["delivered_at"],
    }


def _delivery_ids(raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw or len(raw) > 10_000:
        raise InvalidInput("ids must be a list of 1 to 10000 delivery ids")
    try:
        ids = [int(i) for i in raw]
    except (TypeError, ValueError):
        raise InvalidInput("delivery ids are numbers") from None
    if not all(0 < i < 2**63 for i in ids):  # the id column is a 64-bit integer
        raise InvalidInput("delivery ids are numbers from 1 to 2**63 - 1")
    return ids
