"""Task and task-log routes: `/api/case/task...`."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.api import render
from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response
from cerana.api.searching import search_endpoint, stats_endpoint
from cerana.services import logs as log_service
from cerana.services import tasks as task_service
from cerana.services.attachments import attachment_rows
from cerana.services.cases import require_open_case
from cerana.services.context import Actor
from cerana.store import models, tables

router = APIRouter()


@router.post("/api/case/task/_search")
async def search_tasks(request: Request) -> Response:
    return await search_endpoint(request, models.TASK, stats_flag="stats")


@router.post("/api/case/task/_stats")
async def task_stats(request: Request) -> Response:
    return await stats_endpoint(request, models.TASK)


@router.post("/api/case/task/log/_search")
async def search_logs(request: Request) -> Response:
    return await search_endpoint(request, models.LOG)


@router.get("/api/case/task/log/{log_id}")
async def get_log(request: Request, log_id: str) -> Response:
    actor = await guard(request, "read")

    def run(conn: Connection) -> dict[str, object]:
        row = log_service.get_log(conn, actor.organisation, log_id)
        return render.render_log(
            row,
            attachment_rows(
                conn, {row["attachment_id"]} if row["attachment_id"] else set()
            ),
        )

    return json_response(await read(request, run))


@router.patch("/api/case/task/log/{log_id}")
async def update_log(request: Request, log_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, log_service.update_log, actor, log_id, fields.values)
    return json_response(render.render_log(row))


@router.delete("/api/case/task/log/{log_id}")
async def delete_log(request: Request, log_id: str) -> Response:
    actor = await guard(request, "write")
    await write(request, log_service.delete_log, actor, log_id)
    return empty(200)


@router.get("/api/case/task/{task_id}")
async def get_task(request: Request, task_id: str) -> Response:
    actor = await guard(request, "read")
    row = await read(request, task_service.get_task, actor.organisation, task_id)
    return json_response(render.render_task(row))


@router.patch("/api/case/task/{task_id}")
async def update_task(request: Request, task_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, task_service.update_task, actor, task_id, fields.values)
    return json_response(render.render_task(row))


@router.post("/api/case/task/{task_id}/log")
async def create_log(request: Request, task_id: str) -> Response:
    # TheHive 3 asked only for the read role to write a log; it is a write.
    actor = await guard(request, "write")
    p = platform(request)
    fields = await read_fields(request, p.settings.max_body_size, with_query=False)
    upload = fields.files.get("attachment")

    def run(conn: Connection) -> dict[str, object]:
        row = log_service.create_log(
            conn,
            actor,
            task_id,
            fields.values,
            upload=upload,
            store=p.store,
            max_size=p.settings.max_attachment_size,
        )
        return render.render_log(
            row,
            attachment_rows(
                conn, {row["attachment_id"]} if row.get("attachment_id") else set()
            ),
        )

    return json_response(await write(request, run), 201)


@router.get("/api/case/task/{task_id}/log")
async def list_logs(request: Request, task_id: str) -> Response:
    return await search_endpoint(
        request, models.LOG, scope=tables.task_log.c.task_id == task_id
    )


@router.post("/api/case/task/{task_id}/log/_search")
async def search_task_logs(request: Request, task_id: str) -> Response:
    return await search_endpoint(
        request, models.LOG, scope=tables.task_log.c.task_id == task_id
    )


@router.post("/api/case/{case_id}/task")
async def create_task(request: Request, case_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, task_service.create_task, actor, case_id, fields.values)
    return json_response(render.render_task(row), 201)


@router.post("/api/case/{case_id}/task/_search")
async def search_case_tasks(request: Request, case_id: str) -> Response:
    actor = await guard(request, "read")
    await read(request, _visible_case, actor, case_id)
    return await search_endpoint(
        request, models.TASK, scope=tables.task.c.case_id == case_id, stats_flag="stats"
    )


def _visible_case(conn: Connection, actor: Actor, case_id: str) -> None:
    require_open_case(conn, actor.organisation, case_id)
