"""Analyzer jobs: the list with live statuses, one job's report, and
importing a report's artifacts as observables of the job's case."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cerana.api.deps import platform
from cerana.connectors.cortex import jobs as connector_jobs
from cerana.domain.errors import CeranaError
from cerana.domain.taxonomies import taxonomies_of_summary
from cerana.services.context import Actor
from cerana.store import tables
from cerana.web.database import read
from cerana.web.routing import page_router
from cerana.web.session import SignInRequired, checked_form, signed_in
from cerana.web.templating import iso_time, redirect, render

router = page_router()

JOB_PAGE = 50
STATUSES = ("Waiting", "InProgress", "Success", "Failure")
ENDED = ("Success", "Failure", "Deleted")
MAX_POLLED = 100
# A report is shown whole up to this size; the API gives all of it.
MAX_SHOWN_REPORT = 500_000


@router.get("/jobs")
async def job_list(request: Request) -> Response:
    viewer = await signed_in(request)
    status = request.query_params.get("status", "")
    status = status if status in STATUSES else ""
    raw_page = request.query_params.get("page", "")
    page = max(int(raw_page), 1) if raw_page.isdigit() and len(raw_page) < 7 else 1
    view = await read(request, _load_jobs, viewer.actor, status, page)
    view.update(status=status, page=page, statuses=STATUSES)
    return render(request, "analysis/jobs.html", view)


def _load_jobs(
    conn: Connection, actor: Actor, status: str, page: int
) -> dict[str, Any]:
    rows = connector_jobs.find_jobs(
        conn,
        actor.organisation,
        status=status or None,
        offset=(page - 1) * JOB_PAGE,
        limit=JOB_PAGE + 1,
    )
    shown = rows[:JOB_PAGE]
    return {
        "jobs": shown,
        "has_next": len(rows) > JOB_PAGE,
        "observables": _observables_by_id(conn, (j["observable_id"] for j in shown)),
        "cases": _cases_by_id(conn, actor, (j["case_id"] for j in shown)),
    }


def _observables_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    table = tables.observable
    statement = select(
        table.c.id, table.c.data_type, table.c.data, table.c.attachment_name
    ).where(table.c.id.in_(wanted))
    return {row["id"]: row for row in conn.execute(statement).mappings()}


def _cases_by_id(
    conn: Connection, actor: Actor, ids: Iterable[str]
) -> dict[str, RowMapping]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    table = tables.case
    statement = select(table.c.id, table.c.number, table.c.title).where(
        table.c.id.in_(wanted), table.c.organisation == actor.organisation
    )
    return {row["id"]: row for row in conn.execute(statement).mappings()}


@router.get("/jobs/status")
async def job_statuses(request: Request) -> Response:
    """The statuses of the jobs a page shows, polled by its script."""
    try:
        viewer = await signed_in(request)
    except SignInRequired:
        return PlainTextResponse("sign in first", status_code=401)
    ids = [i for i in request.query_params.getlist("id") if i][:MAX_POLLED]
    found = await read(request, _statuses, viewer.actor, ids)
    return JSONResponse({"jobs": found}, headers={"Cache-Control": "no-store"})


def _statuses(
    conn: Connection, actor: Actor, ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    if not ids:
        return {}
    table = tables.cortex_job
    statement = select(table.c.id, table.c.status, table.c.end_date).where(
        table.c.id.in_(list(ids)), table.c.organisation == actor.organisation
    )
    return {
        row.id: {"status": row.status, "endDate": iso_time(row.end_date)}
        for row in conn.execute(statement)
    }


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str) -> Response:
    viewer = await signed_in(request)
    view = await read(request, _load_job, viewer.actor, job_id)
    return render(request, "analysis/job.html", view)


def _load_job(conn: Connection, actor: Actor, job_id: str) -> dict[str, Any]:
    job = connector_jobs.get_job(conn, actor.organisation, job_id)
    report = job["report"] if isinstance(job["report"], Mapping) else {}
    observable = _observables_by_id(conn, [job["observable_id"]]).get(
        job["observable_id"]
    )
    artifacts = report.get("artifacts") if job["status"] == "Success" else None
    return {
        "job": job,
        "observable": observable,
        "case": _cases_by_id(conn, actor, [job["case_id"]]).get(job["case_id"]),
        "report_json": _readable(report) if report else "",
        "error_message": report.get("errorMessage")
        if job["status"] == "Failure"
        else None,
        "taxonomies": taxonomies_of_summary(report.get("summary")),
        "artifacts": [a for a in artifacts or [] if isinstance(a, Mapping)],
        "ended": job["status"] in ENDED,
    }


def _readable(report: Mapping[str, Any]) -> str:
    text = json.dumps(report, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_SHOWN_REPORT:
        # Limitation: a huge report is cut on the page, because a browser
        # stalls on megabytes of text; the API returns the whole report.
        return text[:MAX_SHOWN_REPORT] + "\n… (cut: get the whole report from the API)"
    return text


@router.post("/jobs/{job_id}/import")
async def import_artifacts(request: Request, job_id: str) -> Response:
    viewer = await signed_in(request)
    await checked_form(request, viewer)
    viewer.require("write")
    try:
        created, failed = await run_in_threadpool(
            connector_jobs.import_artifacts, platform(request), viewer.actor, job_id
        )
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        return redirect(f"/jobs/{job_id}", f"Nothing imported: {exc.message}")
    message = f"{len(created)} observable(s) imported into the case."
    if failed:
        message += f" {len(failed)} not imported: {failed[0].get('message', '')}"
    return redirect(f"/jobs/{job_id}", message)
