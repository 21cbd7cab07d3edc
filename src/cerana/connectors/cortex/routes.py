"""TheHive 3's Cortex connector routes, ``/api/connector/cortex/...``,
plus auto-run rules and artifact import (Cerana additions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection, RowMapping
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response, multi_response, search_response
from cerana.api.searching import render_rows
from cerana.connectors.cortex import autorun, jobs
from cerana.domain.errors import InvalidInput, InvalidQuery, NotFound
from cerana.store import models, query

router = APIRouter(prefix="/api/connector/cortex")


@router.get("/analyzer")
async def list_analyzers(request: Request) -> Response:
    await guard(request, "read")
    return json_response(
        await run_in_threadpool(jobs.list_analyzers, platform(request))
    )


@router.get("/analyzer/type/{data_type}")
async def analyzers_for_type(request: Request, data_type: str) -> Response:
    await guard(request, "read")
    found = await run_in_threadpool(jobs.list_analyzers, platform(request), data_type)
    return json_response(found)


@router.get("/analyzer/{analyzer_id}")
async def get_analyzer(request: Request, analyzer_id: str) -> Response:
    await guard(request, "read")
    found = await run_in_threadpool(jobs.list_analyzers, platform(request))
    for analyzer in found:
        if analyzer_id in (analyzer["id"], analyzer["name"]):
            return json_response(analyzer)
    raise NotFound(f"analyzer {analyzer_id[:128]} not found")


@router.post("/job")
async def create_job(request: Request) -> Response:
    """``{"analyzerId", "artifactId", "cortexId"?}`` as TheHive 3 sends it,
    or ``analyzerIds`` / ``artifactIds`` lists to run many at once."""
    actor = await guard(request, "write")
    fields = await read_fields(request, 256 * 1024, with_query=False)
    analyzer_ids = _ids(fields.values, "analyzerId")
    observable_ids = _ids(fields.values, "artifactId")
    cortex_id = fields.values.get("cortexId")
    created = await run_in_threadpool(
        jobs.run_analyzers,
        platform(request),
        actor,
        analyzer_ids,
        observable_ids,
        cortex_id if isinstance(cortex_id, str) else None,
    )
    rendered = [render_job(r) for r in created]
    single = "analyzerIds" not in fields.values and "artifactIds" not in fields.values
    return json_response(rendered[0] if single and len(rendered) == 1 else rendered)


def _ids(values: dict[str, Any], name: str) -> list[str]:
    many = values.get(name + "s")
    if many is None:
        one = values.get(name)
        many = [one] if isinstance(one, str) else None
    if (
        not isinstance(many, list)
        or not many
        or not all(isinstance(i, str) for i in many)
    ):
        raise InvalidInput(f"{name} is missing")
    return many


@router.get("/job/{job_id}")
async def get_job(request: Request, job_id: str) -> Response:
    actor = await guard(request, "read")
    row = await read(request, jobs.get_job, actor.organisation, job_id)
    return json_response(render_job(row))


@router.post("/job/_search")
async def search_jobs(request: Request) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(request, 256 * 1024)
    offset, limit = query.parse_range(fields.values.get("range"))
    observable_id, status = _job_filters(fields.values.get("query") or {})
    sort = query.parse_sort(fields.values.get("sort"))

    def run(conn: Connection) -> tuple[list[RowMapping], int]:
        filters = {"observable_id": observable_id, "status": status}
        rows = jobs.find_jobs(
            conn,
            actor.organisation,
            offset=offset,
            limit=limit,
            sort=sort,
            **filters,
        )
        return rows, jobs.count_jobs(conn, actor.organisation, **filters)

    rows, total = await read(request, run)
    items = [render_job(r, with_report=False) for r in rows]
    return search_response(items, total)


def _job_filters(condition: Any) -> tuple[str | None, str | None]:
    """Reads the filters TheHive's UI sends: the parent observable and the
    status, alone or in an ``_and``. Raises InvalidQuery for anything else,
    so that a filter is never silently ignored."""
    if not isinstance(condition, dict):
        raise InvalidQuery("Invalid query: expected an object")
    if "_and" in condition:
        if set(condition) != {"_and"} or not isinstance(condition["_and"], list):
            raise InvalidQuery("Invalid query: _and expects a list of filters")
        parts: list[Any] = condition["_and"]
    else:
        parts = [condition] if condition else []
    observable_id = status = None
    for part in parts:
        if not isinstance(part, dict):
            raise InvalidQuery(f"Invalid job filter {part!r:.80}: expected an object")
        if len(part) == 1 and next(iter(part)) in ("artifactId", "status"):
            # The DSL's short form: {"status": "Success"}.
            ((name, value),) = part.items()
            part = {"_field": name, "_value": value}
        parent = part.get("_parent")
        if parent is not None:
            inner = parent.get("_query") if isinstance(parent, dict) else None
            found = parent.get("_id") if isinstance(parent, dict) else None
            if found is None and isinstance(inner, dict):
                found = inner.get("_id")
            observable_id = _filter_text("_parent", found)
        elif part.get("_field") in ("artifactId", "status") and set(part) == {
            "_field",
            "_value",
        }:
            value = _filter_text(str(part["_field"]), part["_value"])
            if part["_field"] == "status":
                status = value
            else:
                observable_id = value
        else:
            raise InvalidQuery(
                f"Invalid job filter {part!r:.80}: jobs are filtered by _parent "
                "(the observable), artifactId or status"
            )
    return observable_id, status


def _filter_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidQuery(f"Invalid job filter: {name} expects a string")
    return value


@router.post("/job/{job_id}/_import")
async def import_artifacts(request: Request, job_id: str) -> Response:
    actor = await guard(request, "write")
    p = platform(request)
    created, failed = await run_in_threadpool(jobs.import_artifacts, p, actor, job_id)

    def render(conn: Connection) -> list[dict[str, Any]]:
        return render_rows(
            conn, models.OBSERVABLE, created, organisation=actor.organisation
        )

    done = await read(request, render)
    if not done and not failed:
        return json_response([], 201)
    return multi_response(done, failed, 201)


@router.get("/autorun")
async def list_rules(request: Request) -> Response:
    actor = await guard(request, "read")
    rows = await read(request, autorun.list_rules, actor.organisation)
    return json_response([render_rule(r) for r in rows])


@router.post("/autorun")
async def create_rule(request: Request) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(request, 64 * 1024, with_query=False)
    row = await write(request, autorun.create_rule, actor, fields.values)
    return json_response(render_rule(row), 201)


@router.delete("/autorun/{rule_id}")
async def delete_rule(request: Request, rule_id: str) -> Response:
    actor = await guard(request, "admin")
    await write(request, autorun.delete_rule, actor, rule_id)
    return empty()


def render_rule(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "dataType": row["data_type"],
        "analyzers": row["analyzers"],
        "enabled": row["enabled"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
    }


def render_job(
    row: RowMapping | dict[str, Any], *, with_report: bool = True
) -> dict[str, Any]:
    """A platform job in TheHive 3's ``case_artifact_job`` shape."""
    body: dict[str, Any] = {
        "id": row["id"],
        "_id": row["id"],
        "_type": "case_artifact_job",
        "_parent": row["observable_id"],
        "_routing": row["case_id"],
        "analyzerId": row["analyzer_id"],
        "analyzerName": row["analyzer_name"],
        "analyzerDefinition": row["analyzer_definition"],
        "artifactId": row["observable_id"],
        "cortexId": row["cortex_id"],
        "cortexJobId": row["cortex_job_id"],
        "status": row["status"],
        "startDate": row["start_date"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
    }
    if row.get("end_date") is not None:
        body["endDate"] = row["end_date"]
    if with_report:
        body["report"] = row["report"] if isinstance(row["report"], dict) else {}
    return body
