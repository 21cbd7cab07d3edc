"""Case template routes: `/api/case/template...` (TheHive 3 paths), plus
export and import in TheHive 3's template file format (#5)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.render import render_entity
from cerana.api.responses import empty, json_response, search_response
from cerana.domain import attributes as attrs
from cerana.domain import templates as shapes
from cerana.domain.errors import InvalidInput
from cerana.services import templates as template_service
from cerana.services.context import Actor
from cerana.store import models, query
from cerana.store.rows import Row

router = APIRouter()

MAX_IMPORT_FILES = 64


def render_template(row: Row) -> dict[str, Any]:
    """A template row as TheHive 3's entity JSON."""
    return render_entity(attrs.CASE_TEMPLATE, row)


@router.post("/api/case/template/_search")
async def search_templates(request: Request) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(request, platform(request).settings.max_body_size)
    range_ = query.parse_range(fields.values.get("range"))
    sort = query.parse_sort(fields.values.get("sort"))

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        rows, total = query.search(
            conn,
            models.CASE_TEMPLATE,
            organisation=actor.organisation,
            query=fields.values.get("query"),
            range_=range_,
            sort=sort,
        )
        return [render_template(row) for row in rows], total

    items, total = await read(request, run)
    return search_response(items, total)


@router.post("/api/case/template")
async def create_template(request: Request) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, template_service.create_template, actor, fields.values)
    return json_response(render_template(row), 201)


@router.get("/api/case/template/_export")
async def export_all_templates(request: Request) -> Response:
    actor = await guard(request, "read")
    exported = await read(
        request, template_service.export_templates, actor.organisation
    )
    return _download(exported, "Case-Templates.json")


@router.post("/api/case/template/_import")
async def import_templates(request: Request) -> Response:
    actor = await guard(request, "admin")
    documents, create_missing = await _import_request(request)
    outcome = await write(
        request,
        _import_all,
        actor,
        documents,
        create_missing=create_missing,
    )
    body = {
        "templates": [render_template(row) for row in outcome.templates],
        "createdCustomFields": outcome.created_fields,
        "createdMetrics": outcome.created_metrics,
    }
    return json_response(body, 201)


@router.get("/api/case/template/{template_id}")
async def get_template(request: Request, template_id: str) -> Response:
    actor = await guard(request, "read")
    row = await read(
        request, template_service.get_template, actor.organisation, template_id
    )
    return json_response(render_template(row))


@router.get("/api/case/template/{template_id}/_export")
async def export_template(request: Request, template_id: str) -> Response:
    actor = await guard(request, "read")
    (exported,) = await read(
        request, template_service.export_templates, actor.organisation, template_id
    )
    return _download(exported, shapes.export_file_name(exported["name"]))


@router.patch("/api/case/template/{template_id}")
async def update_template(request: Request, template_id: str) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(
        request, template_service.update_template, actor, template_id, fields.values
    )
    return json_response(render_template(row))


@router.delete("/api/case/template/{template_id}")
async def delete_template(request: Request, template_id: str) -> Response:
    actor = await guard(request, "admin")
    await write(request, template_service.delete_template, actor, template_id)
    return empty()


def _download(content: Any, file_name: str) -> Response:
    return json_response(
        content, headers={"Content-Disposition": f'attachment; filename="{file_name}"'}
    )


def _import_all(
    conn: Connection,
    actor: Actor,
    documents: list[tuple[str, Any]],
    *,
    create_missing: bool,
) -> template_service.ImportOutcome:
    outcome = template_service.ImportOutcome()
    for source, document in documents:
        part = template_service.import_templates(
            conn,
            actor,
            document if isinstance(document, list) else [document],
            create_missing=create_missing,
            source=source,
        )
        outcome.templates.extend(part.templates)
        outcome.created_fields.extend(part.created_fields)
        outcome.created_metrics.extend(part.created_metrics)
    return outcome


async def _import_request(request: Request) -> tuple[list[tuple[str, Any]], bool]:
    """Returns ``[(source, parsed JSON)]`` and the createMissing flag of an
    import: a JSON body (one template or a list), or multipart files."""
    max_size = platform(request).settings.max_body_size
    flag = request.query_params.get("createMissing", "false")
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type.lower() != "multipart/form-data":
        raw = await _limited_body(request, max_size)
        return [("request body", _parse_document(raw, "request body"))], _flag(flag)
    form = await request.form(max_files=MAX_IMPORT_FILES, max_fields=16)
    request.state.open_form = form  # closed by the request middleware
    documents = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            source = value.filename or name
            raw = await value.read(max_size + 1)
            if len(raw) > max_size:
                raise InvalidInput(f"{source} is larger than {max_size} bytes")
            documents.append((source, _parse_document(raw, source)))
        elif name == "createMissing":
            flag = value
    if not documents:
        raise InvalidInput("send the template files as multipart file parts")
    return documents, _flag(flag)


async def _limited_body(request: Request, max_size: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_size:
            raise InvalidInput(f"request body is larger than {max_size} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_document(raw: bytes, source: str) -> Any:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(document, dict | list):
        raise InvalidInput(
            f"{source} must hold a case template object or a list of them"
        )
    return document


def _flag(raw: str) -> bool:
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0", ""):
        return False
    raise InvalidInput(f"createMissing must be true or false, not {raw[:40]!r}")
