"""Status, health, DB lists, attachments download and model description."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import fastapi
import sqlalchemy
from fastapi import APIRouter
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

import cerana
from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response
from cerana.connectors.cortex import health as cortex_health
from cerana.domain import attributes as attrs
from cerana.domain.errors import InvalidInput, NotFound
from cerana.services import lists
from cerana.services.attachments import check_filename, get_attachment
from cerana.store.zipcrypto import write_encrypted_zip

router = APIRouter()


@router.get("/api/status")
async def status(request: Request) -> Response:
    p = platform(request)
    return json_response(
        {
            "versions": {
                "Cerana": cerana.__version__,
                "TheHive": "3.0.10",
                "Python": sys.version.split()[0],
                "FastAPI": fastapi.__version__,
                "SQLAlchemy": sqlalchemy.__version__,
                "Database": p.db.dialect,
            },
            "connectors": {
                "cortex": await read(
                    request, cortex_health.connector_status, p.settings
                )
            },
            "health": {"database": "OK"},
            "config": {
                "protectDownloadsWith": p.settings.attachment_password,
                "authType": ["key", "local"],
                "capabilities": ["authByKey", "changePassword", "setPassword"],
            },
        }
    )


@router.get("/api/health")
async def health(request: Request) -> Response:
    try:
        await read(request, lambda conn: conn.execute(text("SELECT 1")).scalar())
    except Exception:  # the probe answers, whatever the failure
        return PlainTextResponse("Error", status_code=503)
    return PlainTextResponse("Ok")


@router.get("/api/list")
async def list_names(request: Request) -> Response:
    actor = await guard(request, "read")
    return json_response(await read(request, lists.list_names, actor.organisation))


@router.get("/api/list/{list_name}")
async def list_items(request: Request, list_name: str) -> Response:
    actor = await guard(request, "read")
    return json_response(
        await read(request, lists.list_items, actor.organisation, list_name)
    )


@router.post("/api/list/{list_name}")
async def add_item(request: Request, list_name: str) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(request, 256 * 1024, with_query=False)
    if "value" not in fields.values:
        return empty()
    identifier = await write(
        request, lists.add_item, actor, list_name, fields.values["value"]
    )
    return json_response(identifier)


@router.post("/api/list/{list_name}/_exists")
async def item_exists(request: Request, list_name: str) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(request, 256 * 1024, with_query=False)
    key = fields.values.get("key")
    if not isinstance(key, str):
        raise InvalidInput("_exists needs a 'key' string and a 'value'")
    found = await read(
        request,
        lists.item_exists,
        actor.organisation,
        list_name,
        key,
        fields.values.get("value"),
    )
    return json_response({"found": found})


@router.patch("/api/list/{item_id}")
async def replace_item(request: Request, item_id: str) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(request, 256 * 1024, with_query=False)
    if "value" not in fields.values:
        raise InvalidInput("send the new value as {'value': ...}")
    identifier = await write(
        request, lists.replace_item, actor, item_id, fields.values["value"]
    )
    return json_response(identifier)


@router.delete("/api/list/{item_id}")
async def remove_item(request: Request, item_id: str) -> Response:
    actor = await guard(request, "admin")
    await write(request, lists.remove_item, actor, item_id)
    return empty()


@router.get("/api/datastore/{sha256}")
async def download(request: Request, sha256: str) -> Response:
    await guard(request, "read")
    p = platform(request)
    name = _download_name(request, sha256)
    await read(request, get_attachment, sha256)
    return FileResponse(
        p.store.path(sha256),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{quote(name)}"'},
    )


@router.get("/api/datastorezip/{sha256}")
async def download_zip(request: Request, sha256: str) -> Response:
    await guard(request, "read")
    p = platform(request)
    name = _download_name(request, sha256)
    await read(request, get_attachment, sha256)

    def build() -> bytes:
        with p.store.open(sha256) as handle:
            return write_encrypted_zip(
                name, handle.read(), p.settings.attachment_password
            )

    from starlette.concurrency import run_in_threadpool

    archive = await run_in_threadpool(build)
    return Response(
        archive,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{quote(name)}.zip"'},
    )


def _download_name(request: Request, sha256: str) -> str:
    name = request.query_params.get("name") or sha256
    try:
        return check_filename(name)
    except InvalidInput:
        raise InvalidInput(
            f"download name '{name[:80]}' contains a forbidden character"
        ) from None


@router.get("/api/describe/_all")
async def describe_all(request: Request) -> Response:
    await guard(request, "read")
    models = ("case", "case_task", "case_task_log", "case_artifact")
    return json_response({name: _describe(attrs.ENTITIES[name]) for name in models})


@router.get("/api/describe/{model}")
async def describe(request: Request, model: str) -> Response:
    await guard(request, "read")
    spec = attrs.ENTITIES.get(model)
    if spec is None or model == "user":
        raise NotFound(f"model {model} not found")
    return json_response(_describe(spec))


_LABELS = {
    "severity": ["low", "medium", "high"],
    "tlp": ["white", "green", "amber", "red"],
}


def _describe(spec: attrs.EntitySpec) -> dict[str, Any]:
    described = []
    for attribute in spec.attributes.values():
        if attribute.sensitive or attribute.kind in (
            attrs.Kind.METRICS,
            attrs.Kind.CUSTOM_FIELDS,
            attrs.Kind.JSON,
        ):
            continue
        kind = {"tags": "string", "strings": "string"}.get(
            attribute.kind.value, attribute.kind.value
        )
        item: dict[str, Any] = {"name": attribute.name, "type": kind, "description": ""}
        item["values"] = list(attribute.values)
        item["labels"] = _LABELS.get(attribute.name, [])
        described.append(item)
    return {"label": spec.label, "path": spec.path, "attributes": described}
