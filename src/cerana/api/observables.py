"""Observable routes: `/api/case/artifact...` and `/api/case/{id}/artifact`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from cerana.api import render
from cerana.api.body import id_list, read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response, multi_response, search_response
from cerana.api.searching import render_rows, search_endpoint, stats_endpoint
from cerana.connectors.cortex import autorun
from cerana.domain.errors import InvalidInput
from cerana.services import observables as observable_service
from cerana.services.attachments import attachment_rows
from cerana.store import models, query, tables

router = APIRouter()


@router.post("/api/case/artifact/_search")
async def search_observables(request: Request) -> Response:
    return await search_endpoint(request, models.OBSERVABLE)


@router.post("/api/case/artifact/_stats")
async def observable_stats(request: Request) -> Response:
    return await stats_endpoint(request, models.OBSERVABLE)


@router.patch("/api/case/artifact/_bulk")
async def bulk_update_observables(request: Request) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    ids = id_list(fields.pop("ids"))
    done, failed = await write(
        request, observable_service.bulk_update_observables, actor, ids, fields.values
    )
    return multi_response([render.render_observable(r) for r in done], failed, 200)


@router.get("/api/case/artifact/{observable_id}")
async def get_observable(request: Request, observable_id: str) -> Response:
    actor = await guard(request, "read")
    with_stats = request.query_params.get("nstats") in ("true", "1")

    def run(conn: Connection) -> dict[str, Any]:
        row = observable_service.get_observable(conn, actor.organisation, observable_id)
        return render_rows(
            conn,
            models.OBSERVABLE,
            [row],
            with_stats=with_stats,
            organisation=actor.organisation,
        )[0]

    return json_response(await read(request, run))


@router.patch("/api/case/artifact/{observable_id}")
async def update_observable(request: Request, observable_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )

    def run(conn: Connection) -> dict[str, Any]:
        row = observable_service.update_observable(
            conn, actor, observable_id, fields.values
        )
        return render.render_observable(
            row,
            attachment_rows(
                conn, {row["attachment_id"]} if row.get("attachment_id") else set()
            ),
        )

    return json_response(await write(request, run))


@router.delete("/api/case/artifact/{observable_id}")
async def delete_observable(request: Request, observable_id: str) -> Response:
    actor = await guard(request, "write")
    await write(request, observable_service.delete_observable, actor, observable_id)
    return empty()


@router.get("/api/case/artifact/{observable_id}/similar")
async def similar_observables(request: Request, observable_id: str) -> Response:
    actor = await guard(request, "read")
    # TheHive's default page, as for every search: the first 10, with the
    # total in X-Total.
    offset, limit = query.parse_range(request.query_params.get("range"))

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        pairs, total = observable_service.similar_observables(
            conn, actor.organisation, observable_id, offset=offset, limit=limit
        )
        observables = render_rows(
            conn,
            models.OBSERVABLE,
            [o for o, _ in pairs],
            organisation=actor.organisation,
        )
        for body, (_, case_row) in zip(observables, pairs, strict=True):
            body.pop("reports", None)
            body["case"] = render.render_case(case_row)
        return observables, total

    items, total = await read(request, run)
    return search_response(items, total)


@router.post("/api/case/{case_id}/artifact")
async def create_observables(request: Request, case_id: str) -> Response:
    actor = await guard(request, "write")
    p = platform(request)
    fields = await read_fields(request, p.settings.max_body_size, with_query=False)
    upload = fields.files.get("attachment")
    single = isinstance(fields.values.get("data"), str) or upload is not None
    if upload is not None and "data" in fields.values:
        raise InvalidInput("send either data or an attachment, not both")

    def run(conn: Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        done, failed = observable_service.create_observables(
            conn,
            actor,
            case_id,
            fields.values,
            upload=upload,
            store=p.store,
            max_size=p.settings.max_attachment_size,
        )
        return render_rows(
            conn, models.OBSERVABLE, done, organisation=actor.organisation
        ), failed

    done, failed = await write(request, run)
    if done:  # auto-run rules (#6): one query, the runs are queued
        await run_in_threadpool(autorun.schedule_autorun, p, actor, done)
    if single and len(done) + len(failed) == 1:
        return json_response(done[0], 201) if done else json_response(failed[0], 400)
    return multi_response(done, failed, 201)


@router.post("/api/case/{case_id}/artifact/_search")
async def search_case_observables(request: Request, case_id: str) -> Response:
    return await search_endpoint(
        request, models.OBSERVABLE, scope=tables.observable.c.case_id == case_id
    )
