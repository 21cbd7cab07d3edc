"""Observables of a case: add many values or a file, toggle and bulk-set
the IOC and sighted flags, export as CSV, see where else a value was seen."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Connection, RowMapping
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cerana.api.deps import platform
from cerana.connectors.cortex import jobs as connector_jobs
from cerana.domain import attributes as attrs
from cerana.domain.errors import CeranaError, InvalidInput
from cerana.domain.taxonomies import taxonomies_of_reports
from cerana.platform import Platform
from cerana.services import cases as case_service
from cerana.services import observables as observable_service
from cerana.services.context import Actor
from cerana.store import models, query, tables
from cerana.web import forms
from cerana.web.database import read, write
from cerana.web.pages.analyzer_runs import analyzer_choices
from cerana.web.pages.case import case_page_response, observable_query
from cerana.web.routing import page_router
from cerana.web.session import posted_form_as, signed_in
from cerana.web.templating import TLP_NAMES, format_time, redirect, render, safe_next

router = page_router()

EXPORT_CHUNK = 1000
SIMILAR_PAGE = 100
RECENT_JOBS = 20
BULK_ACTIONS = {
    "ioc": {"ioc": True},
    "not-ioc": {"ioc": False},
    "sighted": {"sighted": True},
    "not-sighted": {"sighted": False},
}
CSV_COLUMNS = (
    "dataType",
    "data",
    "message",
    "tags",
    "tlp",
    "ioc",
    "sighted",
    "startDate",
    "createdBy",
)
# Spreadsheets run cells starting with these as formulas (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@router.post("/cases/{case_id}/observables")
async def add_observables(request: Request, case_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        created, failed = await write(
            request, _create, viewer.actor, case_id, form, platform(request)
        )
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        errors = {"observables": exc.message}
        return await case_page_response(
            request,
            viewer,
            case_id,
            "observables",
            errors=errors,
            values=values,
            status=400,
        )
    if failed:
        values["data"] = "\n".join(str(f["object"].get("data", "")) for f in failed)
        return await case_page_response(
            request,
            viewer,
            case_id,
            "observables",
            values=values,
            status=400 if not created else 200,
            added=len(created),
            not_added=failed,
        )
    return redirect(
        f"/cases/{case_id}?tab=observables", f"{len(created)} observable(s) added."
    )


def _create(
    conn: Connection, actor: Actor, case_id: str, form: FormData, p: Platform
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data_type = forms.text(form, "data_type")
    body: dict[str, Any] = {
        "dataType": data_type,
        "message": forms.text(form, "message") or None,
        "tags": forms.tag_list(form, "tags"),
        "tlp": forms.number(form, "tlp", "TLP", attrs.TLPS),
        "ioc": forms.checked(form, "ioc"),
        "sighted": forms.checked(form, "sighted"),
    }
    attached = forms.upload(form, "attachment")
    if data_type == "file":
        if attached is None:
            raise InvalidInput("File: choose the file to add")
        return observable_service.create_observables(
            conn,
            actor,
            case_id,
            body,
            upload=attached,
            store=p.store,
            max_size=p.settings.max_attachment_size,
        )
    if attached is not None:
        raise InvalidInput("File: a file can only be added with the file datatype")
    values = forms.lines(form, "data")
    if not values:
        raise InvalidInput("Values: paste at least one value, one per line")
    return observable_service.create_observables(
        conn, actor, case_id, {**body, "data": values}
    )


@router.post("/cases/{case_id}/observables/bulk")
async def bulk_flags(request: Request, case_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    back = safe_next(forms.text(form, "next"), f"/cases/{case_id}?tab=observables")
    action = forms.text(form, "action")
    chosen = forms.ids(form, "observable")
    if action not in BULK_ACTIONS or not chosen:
        return redirect(back, "Tick at least one observable, then choose an action.")
    done, failed = await write(
        request,
        observable_service.bulk_update_observables,
        viewer.actor,
        chosen,
        BULK_ACTIONS[action],
    )
    message = f"{len(done)} observable(s) updated."
    if failed:
        message += f" {len(failed)} failed: {failed[0]['message']}"
    return redirect(back, message)


@router.post("/observables/{observable_id}/flags")
async def toggle_flag(request: Request, observable_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    # One button sends both: "sighted:true", "ioc:false".
    name, _, wanted = forms.text(form, "toggle").partition(":")
    if name not in ("ioc", "sighted") or wanted not in ("true", "false"):
        raise InvalidInput("Choose the IOC or the sighted flag")
    value = wanted == "true"
    row = await write(
        request,
        observable_service.update_observable,
        viewer.actor,
        observable_id,
        {name: value},
    )
    return redirect(
        safe_next(forms.text(form, "next"), f"/cases/{row['case_id']}?tab=observables")
    )


@router.get("/observables/{observable_id}")
async def observable_page(request: Request, observable_id: str) -> Response:
    viewer = await signed_in(request)
    view = await read(request, _load_observable, viewer.actor, observable_id)
    view.update(await analyzer_choices(request, [view["observable"]["data_type"]]))
    return render(request, "observable.html", view)


def _load_observable(
    conn: Connection, actor: Actor, observable_id: str
) -> dict[str, Any]:
    observable = observable_service.get_observable(
        conn, actor.organisation, observable_id
    )
    case = case_service.get_case(conn, actor.organisation, observable["case_id"])
    pairs, total = observable_service.similar_observables(
        conn, actor.organisation, observable_id, limit=SIMILAR_PAGE
    )
    return {
        "observable": observable,
        "taxonomies": taxonomies_of_reports(observable["reports"]),
        "jobs": connector_jobs.find_jobs(
            conn, actor.organisation, observable_id=observable_id, limit=RECENT_JOBS
        ),
        "case": case,
        "similar": pairs,
        "similar_total": total,
    }


@router.get("/cases/{case_id}/observables.csv")
async def export_csv(request: Request, case_id: str) -> Response:
    viewer = await signed_in(request)
    case = await read(
        request, case_service.get_case, viewer.actor.organisation, case_id
    )
    params = dict(request.query_params)

    async def chunks() -> AsyncIterator[str]:
        yield _csv_line(CSV_COLUMNS)
        offset = 0
        while True:
            rows = await read(
                request, _export_page, viewer.actor, case_id, params, offset
            )
            for row in rows:
                yield _csv_line(_csv_row(row))
            if len(rows) < EXPORT_CHUNK:
                return
            offset += EXPORT_CHUNK

    filename = f"case-{case['number']}-observables.csv"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(
        chunks(), media_type="text/csv; charset=utf-8", headers=headers
    )


def _export_page(
    conn: Connection, actor: Actor, case_id: str, params: dict[str, str], offset: int
) -> list[RowMapping]:
    rows, _ = query.search(
        conn,
        models.OBSERVABLE,
        organisation=actor.organisation,
        query=observable_query(params),
        range_=(offset, EXPORT_CHUNK),
        sort=[("startDate", False)],
        scope=tables.observable.c.case_id == case_id,
    )
    return rows


def _csv_row(row: RowMapping) -> list[str]:
    return [
        row["data_type"],
        row["data"] if row["data"] is not None else (row["attachment_name"] or ""),
        row["message"] or "",
        ",".join(row["tags"] or []),
        f"TLP:{TLP_NAMES.get(row['tlp'], row['tlp'])}",
        "true" if row["ioc"] else "false",
        "true" if row["sighted"] else "false",
        format_time(row["start_date"], seconds=True),
        row["created_by"],
    ]


def _csv_line(cells: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_inert(str(cell)) for cell in cells])
    return buffer.getvalue()


def _inert(cell: str) -> str:
    # Limitation: a value starting with one of these gets a leading quote,
    # because the export is opened in spreadsheets far more often than
    # parsed; the API gives the exact values.
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell
