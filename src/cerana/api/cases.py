"""Case routes: `/api/case...` (TheHive 3 paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.api import render
from cerana.api.body import expected_version, id_list, read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response, multi_response
from cerana.api.searching import render_rows, search_endpoint, stats_endpoint
from cerana.services import cases as case_service
from cerana.services import merge as merge_service
from cerana.services.context import Actor
from cerana.store import models

router = APIRouter()


@router.get("/api/case")
async def list_cases(request: Request) -> Response:
    return await search_endpoint(request, models.CASE)


@router.post("/api/case/_search")
async def search_cases(request: Request) -> Response:
    return await search_endpoint(request, models.CASE)


@router.post("/api/case/_stats")
async def case_stats(request: Request) -> Response:
    return await stats_endpoint(request, models.CASE)


@router.post("/api/case")
async def create_case(request: Request) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, case_service.create_case, actor, fields.values)
    return json_response(render.render_case(row), 201)


@router.patch("/api/case/_bulk")
async def bulk_update_cases(request: Request) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    ids = id_list(fields.pop("ids"))
    done, failed = await write(
        request,
        case_service.bulk_update_cases,
        actor,
        ids,
        fields.values,
        require_metrics=platform(request).settings.metrics_required_to_close,
    )
    return multi_response([render.render_case(r) for r in done], failed, 200)


@router.get("/api/case/{case_id}")
async def get_case(request: Request, case_id: str) -> Response:
    actor = await guard(request, "read")
    with_stats = request.query_params.get("nstats") in ("true", "1")

    def run(conn: Connection) -> dict[str, Any]:
        row = case_service.get_case(conn, actor.organisation, case_id)
        return render_rows(
            conn,
            models.CASE,
            [row],
            with_stats=with_stats,
            organisation=actor.organisation,
        )[0]

    return json_response(await read(request, run))


@router.patch("/api/case/{case_id}")
async def update_case(request: Request, case_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    version = expected_version(request, fields.pop("_version"))
    row = await write(
        request,
        case_service.update_case,
        actor,
        case_id,
        fields.values,
        expected_version=version,
        require_metrics=platform(request).settings.metrics_required_to_close,
    )
    return json_response(render.render_case(row))


@router.delete("/api/case/{case_id}")
async def delete_case(request: Request, case_id: str) -> Response:
    actor = await guard(request, "write")
    await write(request, case_service.delete_case, actor, case_id)
    return empty()


@router.delete("/api/case/{case_id}/force")
async def force_delete_case(request: Request, case_id: str) -> Response:
    actor = await guard(request, "admin")
    await write(request, case_service.force_delete_case, actor, case_id)
    return empty()


@router.get("/api/case/{case_id}/links")
async def case_links(request: Request, case_id: str) -> Response:
    actor = await guard(request, "read")
    return json_response(await read(request, _links, actor, case_id))


def _links(conn: Connection, actor: Actor, case_id: str) -> list[dict[str, Any]]:
    linked = case_service.linked_cases(conn, actor.organisation, case_id)
    result = []
    for case_row, matches in linked:
        body = render.render_case(case_row)
        body.pop("description", None)
        body["linkedWith"] = render_rows(
            conn, models.OBSERVABLE, matches, organisation=actor.organisation
        )
        body["linksCount"] = len(matches)
        result.append(body)
    return result


@router.post("/api/case/{case_id}/_merge/{other_id}")
async def merge_cases(request: Request, case_id: str, other_id: str) -> Response:
    # TheHive 3 asked only for the read role here; merging rewrites cases.
    actor = await guard(request, "write")
    row = await write(request, merge_service.merge_cases, actor, case_id, other_id)
    return json_response(render.render_case(row))
