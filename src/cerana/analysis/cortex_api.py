"""The Cortex REST API of the embedded engine, under ``/cortex/api``.

Clients written for Cortex (cortex4py, TheHive, scripts) point at
``http://<cerana>/cortex`` and authenticate with a Cerana API key
(``Authorization: Bearer``). Running needs the ``write`` role, editing
analyzer configuration ``admin``; reading needs ``read``.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection, RowMapping
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

import cerana
from cerana.analysis import configuration, jobs, search
from cerana.analysis.catalog import CatalogEntry
from cerana.analysis.engine import Engine, engine_for
from cerana.analysis.secrets import masked
from cerana.api.body import Fields, read_fields
from cerana.api.deps import authenticate_here, guard, platform, read, require, write
from cerana.api.responses import empty, json_response, search_response
from cerana.domain.errors import InvalidInput, NotFound
from cerana.services.attachments import get_attachment
from cerana.services.context import Actor
from cerana.store import query
from cerana.store.rows import Row

router = APIRouter(prefix="/cortex/api")

# waitreport never holds a request longer than this, whatever atMost says
# (cortex4py's default is "Inf"; Cortex answers it with a 500, #14).
MAX_WAIT_SECONDS = 600.0
_POLL_SECONDS = 0.1
SMALL_BODY = 64 * 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1.0,
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}


def _engine(request: Request) -> Engine:
    return engine_for(platform(request))


@router.get("/status")
async def status(request: Request) -> Response:
    return json_response(
        {
            "versions": {"Cortex": "3.1.8-cerana", "Cerana": cerana.__version__},
            "config": {
                "protectDownloadsWith": platform(request).settings.attachment_password,
                "authType": ["key"],
                "capabilities": ["authByKey"],
                "ssoAutoLogin": False,
            },
        }
    )


@router.get("/user/current")
async def current_user(request: Request) -> Response:
    actor = await guard(request, None)
    roles = ["read"] + ["analyze"] * actor.has_role("write")
    roles += ["orgadmin"] * actor.has_role("admin")
    return json_response(
        {
            "id": actor.login,
            "_id": actor.login,
            "name": actor.name,
            "roles": roles,
            "status": "Ok",
            "organization": actor.organisation,
        }
    )


@router.get("/analyzer")
async def list_analyzers(request: Request) -> Response:
    await guard(request, "read")
    items = [e.to_json() for e in _engine(request).catalog.all()]
    return search_response(items, len(items))


@router.post("/analyzer/_search")
async def search_analyzers(request: Request) -> Response:
    await guard(request, "read")
    fields = await read_fields(request, 256 * 1024)
    condition = fields.values.get("query") or {}
    items = [
        e.to_json()
        for e in _engine(request).catalog.all()
        if _analyzer_matches(e, condition)
    ]
    offset, limit = query.parse_range(fields.values.get("range", "all"))
    page = items[offset : None if limit is None else offset + limit]
    return search_response(page, len(items))


def _analyzer_matches(entry: CatalogEntry, condition: Any) -> bool:
    if not isinstance(condition, dict) or "_field" not in condition:
        return True
    value = entry.to_json().get(str(condition["_field"]))
    wanted = condition.get("_value")
    return wanted in value if isinstance(value, list) else value == wanted


@router.get("/analyzer/type/{data_type}")
async def analyzers_for_type(request: Request, data_type: str) -> Response:
    await guard(request, "read")
    items = [e.to_json() for e in _engine(request).catalog.for_data_type(data_type)]
    return search_response(items, len(items))


@router.get("/analyzerdefinition")
async def list_definitions(request: Request) -> Response:
    await guard(request, "admin")
    return json_response([e.to_json() for e in _engine(request).catalog.all()])


@router.get("/analyzer/{analyzer_id}")
async def get_analyzer(request: Request, analyzer_id: str) -> Response:
    actor = await guard(request, "read")
    engine = _engine(request)
    entry = engine.catalog.get(analyzer_id)
    body = entry.to_json()
    if actor.has_role("admin"):
        config = await read(request, engine.configuration, entry)
        body["configuration"] = masked(config)
    return json_response(body)


@router.post("/analyzer/{analyzer_id}/run")
async def run_analyzer(request: Request, analyzer_id: str) -> Response:
    if not _small_json_body(request):
        await guard(request, "write")  # files and large bodies: users only
    fields: Fields | InvalidInput
    try:
        fields = await read_fields(request, platform(request).settings.max_body_size)
    except InvalidInput as exc:
        fields = exc  # reported once the user is known, as in other routes
    row, cached = await run_in_threadpool(_run_for_user, request, analyzer_id, fields)
    return json_response(render_job(row, from_cache=cached))


def _small_json_body(request: Request) -> bool:
    """Tells whether the body is JSON of at most `SMALL_BODY` bytes, read
    before authentication so that the request is authenticated and its job
    submitted in one trip through the thread pool: each trip cost about as
    much CPU time as the job's own transaction (#6)."""
    content_type = request.headers.get("content-type", "").lower()
    declared = request.headers.get("content-length", "")
    return (
        not content_type.startswith(("multipart/", "application/x-www-form"))
        and declared.isdigit()
        and int(declared) <= SMALL_BODY
    )


def _run_for_user(
    request: Request, analyzer_id: str, fields: Fields | InvalidInput
) -> tuple[dict[str, Any], bool]:
    actor = authenticate_here(request)
    require(actor, "write")
    if isinstance(fields, InvalidInput):
        raise fields
    job_request, upload = parse_run_body(fields)
    return jobs.open_job(
        platform(request),
        _engine(request),
        actor,
        analyzer_id,
        job_request,
        upload=upload,
    )


def parse_run_body(fields: Fields) -> tuple[jobs.JobRequest, Any]:
    """Reads the three Cortex run bodies: Cortex 2 JSON, multipart with a
    ``_json`` part, and the Cortex 1 / TheHive 3 ``attributes`` form."""
    values = dict(fields.values)
    attributes = values.pop("attributes", None)
    if isinstance(attributes, dict):
        values = {**attributes, **{k: v for k, v in values.items() if k == "data"}}
    upload = fields.files.get("data") or fields.files.get("attachment")
    data = values.get("data")
    if upload is None and data is not None and not isinstance(data, str):
        raise InvalidInput("data must be a string")
    data_type = values.get("dataType")
    if not isinstance(data_type, str) or not data_type:
        raise InvalidInput("dataType is missing")
    parameters = values.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters must be an object")
    return (
        jobs.JobRequest(
            data_type=data_type,
            data=data if upload is None else None,
            tlp=_level(values.get("tlp", 2), "tlp"),
            pap=_level(values.get("pap", 2), "pap"),
            message=str(values.get("message") or ""),
            parameters=parameters,
            label=str(values["label"])[:256] if values.get("label") else None,
            force=str(values.get("force", "")).lower() in ("1", "true"),
        ),
        upload,
    )


def _level(raw: Any, name: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number from 0 to 3") from None


@router.get("/analyzerconfig/{name}")
async def get_analyzer_config(request: Request, name: str) -> Response:
    actor = await guard(request, "admin")
    engine = _engine(request)
    items = configuration.configuration_items(engine.catalog, name)

    def run(conn: Connection) -> dict[str, Any]:
        stored = configuration.load_stored(conn, actor.organisation, engine.box)
        return stored.get(name, {})

    saved = await read(request, run)
    file_section = engine.file_tables.get(name) or {}
    config = masked({**file_section, **saved})
    return json_response({"name": name, "configurationItems": items, "config": config})


@router.patch("/analyzerconfig/{name}")
async def update_analyzer_config(request: Request, name: str) -> Response:
    actor = await guard(request, "admin")
    engine = _engine(request)
    fields = await read_fields(request, 256 * 1024, with_query=False)
    config = fields.values.get("config", fields.values.get("configuration"))
    if not isinstance(config, dict):
        raise InvalidInput('send the configuration as {"config": {...}}')
    items, saved = await write(
        request,
        configuration.update_configuration,
        engine.catalog,
        engine.box,
        actor.organisation,
        actor.login,
        name,
        config,
    )
    return json_response(
        {"name": name, "configurationItems": items, "config": masked(saved)}
    )


@router.get("/job")
async def list_jobs(request: Request) -> Response:
    actor = await guard(request, "read")
    params = request.query_params
    condition: list[dict[str, Any]] = []
    for param, field_name in (
        ("dataTypeFilter", "dataType"),
        ("dataFilter", "data"),
        ("analyzerFilter", "analyzerId"),
    ):
        if params.get(param):
            condition.append({"_field": field_name, "_value": params[param]})
    return await _search(request, actor, {"_and": condition}, params.get("range"), None)


@router.post("/job/_search")
async def search_jobs(request: Request) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(request, 256 * 1024)
    values = fields.values
    return await _search(
        request, actor, values.get("query"), values.get("range"), values.get("sort")
    )


async def _search(
    request: Request, actor: Actor, condition: Any, page: Any, sort: Any
) -> Response:
    offset, limit = query.parse_range(page)
    order = query.parse_sort(sort)

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        rows, total = search.search_jobs(
            conn, actor.organisation, condition, offset=offset, limit=limit, sort=order
        )
        return [render_job(r) for r in rows], total

    items, total = await read(request, run)
    return search_response(items, total)


@router.post("/job/status")
async def job_statuses(request: Request) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(request, 256 * 1024, with_query=False)
    ids = fields.values.get("jobIds")
    if not isinstance(ids, list):
        raise InvalidInput('send {"jobIds": [...]}')

    def run(conn: Connection) -> dict[str, str]:
        statuses = {}
        for job_id in ids[:1000]:
            try:
                statuses[str(job_id)] = jobs.get_job(
                    conn, actor.organisation, str(job_id)
                )["status"]
            except NotFound:
                statuses[str(job_id)] = "NotFound"
        return statuses

    return json_response(await read(request, run))


@router.get("/job/{job_id}")
async def get_job(request: Request, job_id: str) -> Response:
    actor = await guard(request, "read")
    row = await read(request, jobs.get_job, actor.organisation, job_id)
    return json_response(render_job(row))


@router.delete("/job/{job_id}")
async def delete_job(request: Request, job_id: str) -> Response:
    actor = await guard(request, "write")
    await write(request, jobs.cancel_job, actor, job_id, delete=True)
    return empty()


@router.post("/job/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    actor = await guard(request, "write")
    await write(request, jobs.cancel_job, actor, job_id)
    row = await read(request, jobs.get_job, actor.organisation, job_id)
    return json_response(render_job(row))


@router.get("/job/{job_id}/report")
async def job_report(request: Request, job_id: str) -> Response:
    actor = await guard(request, "read")
    row = await read(request, jobs.get_job, actor.organisation, job_id)
    return json_response(render_job(row, with_report=True))


@router.get("/job/{job_id}/waitreport")
async def wait_report(request: Request, job_id: str) -> Response:
    actor = await guard(request, "read")
    deadline = time.monotonic() + parse_duration(request.query_params.get("atMost"))
    row = await read(request, jobs.get_job, actor.organisation, job_id)
    while row["status"] in ("Waiting", "InProgress") and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_SECONDS)
        row = await read(request, jobs.get_job, actor.organisation, job_id)
    return json_response(render_job(row, with_report=True))


def parse_duration(raw: str | None) -> float:
    """Returns seconds for a Scala duration (``1minute``, ``30 seconds``,
    ``Inf``), capped at `MAX_WAIT_SECONDS`; default one minute."""
    if raw is None or not raw.strip():
        return 60.0
    if raw.strip().lower() in ("inf", "infinite", "plusinf"):
        return MAX_WAIT_SECONDS
    match = _DURATION.match(raw)
    if match is None or match.group(2).lower() not in _UNITS:
        raise InvalidInput(f"atMost {raw[:40]!r} is not a duration such as '1minute'")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    return min(seconds, MAX_WAIT_SECONDS)


@router.get("/job/{job_id}/artifacts")
async def job_artifacts(request: Request, job_id: str) -> Response:
    actor = await guard(request, "read")
    row = await read(request, jobs.get_job, actor.organisation, job_id)
    items = [render_artifact(row, i, a) for i, a in enumerate(row["artifacts"] or [])]
    return search_response(items, len(items))


@router.get("/datastore/{sha256}")
async def download(request: Request, sha256: str) -> Response:
    await guard(request, "read")
    await read(request, get_attachment, sha256)
    return FileResponse(
        platform(request).store.path(sha256), media_type="application/octet-stream"
    )


def render_job(
    row: Row,
    *,
    with_report: bool = False,
    from_cache: bool = False,
) -> dict[str, Any]:
    """Returns a job in Cortex 3's JSON shape (with ``report`` if asked)."""
    body: dict[str, Any] = {
        "id": row["id"],
        "_id": row["id"],
        "_type": "job",
        "workerId": row["analyzer_id"],
        "workerName": row["analyzer_name"],
        "workerDefinitionId": row["analyzer_id"],
        "analyzerId": row["analyzer_id"],
        "analyzerName": row["analyzer_name"],
        "analyzerDefinitionId": row["analyzer_id"],
        "organization": row["organisation"],
        "status": row["status"],
        "dataType": row["data_type"],
        "tlp": row["tlp"],
        "pap": row["pap"],
        "message": row["message"],
        "parameters": row["parameters"] or {},
        "type": "analyzer",
        "cacheTag": row["cache_tag"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "date": row["created_at"],
        "updatedAt": row.get("updated_at"),
        "fromCache": from_cache,
    }
    for key, column in (
        ("data", "data"),
        ("label", "label"),
        ("startDate", "start_date"),
        ("endDate", "end_date"),
        ("errorMessage", "error_message"),
    ):
        if row.get(column) is not None:
            body[key] = row[column]
    if row.get("attachment_id"):
        body["attachment"] = {
            "id": row["attachment_id"],
            "name": row["attachment_name"],
            "contentType": row["attachment_content_type"],
        }
    if row["status"] == "Failure" and row.get("input") is not None:
        body["input"] = row["input"]
    if with_report:
        body["report"] = render_report(row)
    return body


def render_report(row: Row) -> Any:
    """The ``report`` of a job as Cortex gives it, by status."""
    status = row["status"]
    if status == "Success":
        report = row["report"] or {}
        return {
            "summary": report.get("summary") or {},
            "full": report.get("full") or {},
            "operations": report.get("operations") or [],
            "artifacts": row["artifacts"] or [],
            "success": True,
        }
    if status == "Failure":
        return {"errorMessage": row["error_message"], "input": None, "success": False}
    return {"InProgress": "Running"}.get(status, status)


def render_artifact(
    job: RowMapping, index: int, artifact: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "id": f"{job['id']}-{index}",
        "_id": f"{job['id']}-{index}",
        "_type": "artifact",
        "_parent": job["id"],
        "tlp": job["tlp"],
        "tags": [],
        "message": "",
        "createdAt": job.get("end_date"),
        "createdBy": job["created_by"],
    }
    body.update({k: v for k, v in artifact.items() if k != "file"})
    return body
