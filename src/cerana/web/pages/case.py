"""The case page: a header and four tabs (details, tasks, observables,
history), each loaded with paged queries only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping
from starlette.requests import Request
from starlette.responses import Response

from cerana.domain.errors import NotFound
from cerana.domain.taxonomies import taxonomies_of_reports
from cerana.services import activity, custom_fields
from cerana.services import cases as case_service
from cerana.services import observables as observable_service
from cerana.services.context import Actor
from cerana.store import models, query, tables
from cerana.web import choices, custom_values
from cerana.web.database import read
from cerana.web.pages.analyzer_runs import analyzer_choices
from cerana.web.routing import page_router
from cerana.web.session import Viewer, signed_in
from cerana.web.templating import SEVERITY_NAMES, TLP_NAMES, format_time, render

router = page_router()

TABS = {
    "details": "Details",
    "tasks": "Tasks",
    "observables": "Observables",
    "history": "History",
}
MAX_TASKS = 500
OBSERVABLE_PAGE = 50
MAX_HISTORY = 200
OBSERVABLE_SORTS = {
    "-startDate": "Newest first",
    "startDate": "Oldest first",
    "dataType": "Datatype",
    "data": "Value",
}


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: str) -> Response:
    viewer = await signed_in(request)
    return await case_page_response(
        request, viewer, case_id, request.query_params.get("tab", "details")
    )


async def case_page_response(
    request: Request,
    viewer: Viewer,
    case_id: str,
    tab: str,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    """Renders the case page on ``tab``; a form that failed passes its
    message in ``errors`` and what was typed in ``values``."""
    tab = tab if tab in TABS else "details"
    params = dict(request.query_params)
    view = await read(request, load_case_page, viewer.actor, case_id, tab, params)
    if tab == "observables":
        data_types = {row["data_type"] for row in view["observables"]}
        view.update(await analyzer_choices(request, data_types))
    view.update(errors=errors or {}, values=values or {}, params=params, **extra)
    return render(request, "case/page.html", view, status=status)


def load_case_page(
    conn: Connection, actor: Actor, case_id: str, tab: str, params: Mapping[str, str]
) -> dict[str, Any]:
    """Returns the header data of a case and the content of one tab."""
    # The live cursor is read first: a change committed while the page is
    # built is then replayed by the event stream, never missed.
    cursor = activity.last_audit_id(conn)
    case = case_service.get_case(conn, actor.organisation, case_id)
    view: dict[str, Any] = {
        "case": case,
        "tab": tab,
        "tabs": TABS,
        "stats": case_service.case_stats(conn, case_id),
        "assignees": choices.assignees(conn, actor.organisation),
        "cursor": cursor,
        "merged_into": _case_or_none(conn, actor, case["merge_into"]),
    }
    view.update(_TAB_LOADERS[tab](conn, actor, case, params))
    return view


def _case_or_none(
    conn: Connection, actor: Actor, case_id: str | None
) -> RowMapping | None:
    if not case_id:
        return None
    try:
        return case_service.get_case(conn, actor.organisation, case_id)
    except NotFound:
        return None


def _details(
    conn: Connection, actor: Actor, case: RowMapping, params: Mapping[str, str]
) -> dict[str, Any]:
    custom = sorted(
        (case["custom_fields"] or {}).items(),
        key=lambda item: (
            item[1].get("order") is None,
            item[1].get("order") or 0,
            item[0],
        ),
    )
    sources = [_case_or_none(conn, actor, i) for i in case["merge_from"] or []]
    fields = custom_fields.field_definitions(conn, actor.organisation)
    metrics = custom_fields.metric_definitions(conn, actor.organisation)
    return {
        "custom_fields": [(ref, _custom_value(value)) for ref, value in custom],
        "field_names": {ref: d.name for ref, d in fields.items()},
        "field_inputs": custom_values.field_inputs(fields, case["custom_fields"] or {}),
        "metric_inputs": custom_values.metric_inputs(metrics, case["metrics"] or {}),
        "metric_titles": {name: d.title for name, d in metrics.items()},
        "metrics": sorted((case["metrics"] or {}).items()),
        "merged_from": [c for c in sources if c is not None],
        "linked": case_service.linked_cases(
            conn, actor.organisation, case["id"], limit=20
        ),
    }


def _custom_value(value: Mapping[str, Any]) -> tuple[str, Any]:
    for kind, content in value.items():
        if kind != "order" and content is not None:
            return kind, content
    return "", None


def _tasks(
    conn: Connection, actor: Actor, case: RowMapping, params: Mapping[str, str]
) -> dict[str, Any]:
    rows, total = query.search(
        conn,
        models.TASK,
        organisation=actor.organisation,
        query={"_not": {"status": "Cancel"}}
        if params.get("cancelled") != "1"
        else None,
        range_=(0, MAX_TASKS),
        sort=[("group", False), ("order", False), ("startDate", False)],
        scope=tables.task.c.case_id == case["id"],
    )
    groups: dict[str, list[RowMapping]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return {
        "task_groups": groups,
        "task_total": total,
        "show_cancelled": params.get("cancelled") == "1",
    }


def observable_query(params: Mapping[str, str]) -> dict[str, Any]:
    """Returns the DSL query of the observables tab's filters."""
    clauses: list[Any] = [{"status": "Ok"}]
    if params.get("dt"):
        clauses.append({"dataType": params["dt"][:64]})
    if params.get("oq"):
        clauses.append({"_like": {"_field": "data", "_value": params["oq"][:1000]}})
    if params.get("ioc") == "1":
        clauses.append({"ioc": True})
    if params.get("sighted") == "1":
        clauses.append({"sighted": True})
    return {"_and": clauses}


def _observables(
    conn: Connection, actor: Actor, case: RowMapping, params: Mapping[str, str]
) -> dict[str, Any]:
    raw_page = params.get("op", "")
    page = max(int(raw_page), 1) if raw_page.isdigit() and len(raw_page) < 7 else 1
    sort = params.get("osort", "-startDate")
    sort = sort if sort in OBSERVABLE_SORTS else "-startDate"
    rows, total = query.search(
        conn,
        models.OBSERVABLE,
        organisation=actor.organisation,
        query=observable_query(params),
        range_=((page - 1) * OBSERVABLE_PAGE, OBSERVABLE_PAGE),
        sort=[(sort.lstrip("-"), sort.startswith("-"))],
        scope=tables.observable.c.case_id == case["id"],
    )
    # Limitation: the cases behind each count are listed on the observable's
    # page, not in this table, because a similar-observables look-up per row
    # costs ~3 ms at the benchmark's size (#3).
    seen = observable_service.seen_counts(conn, actor.organisation, rows)
    return {
        "taxonomies": {
            row["id"]: taxonomies_of_reports(row["reports"]) for row in rows
        },
        "observables": rows,
        "observable_total": total,
        "observable_page": page,
        "observable_pages": max(1, -(-total // OBSERVABLE_PAGE)),
        "observable_sorts": OBSERVABLE_SORTS,
        "observable_sort": sort,
        "seen": seen,
        "datatypes": choices.datatypes(conn, actor.organisation),
    }


def _history(
    conn: Connection, actor: Actor, case: RowMapping, params: Mapping[str, str]
) -> dict[str, Any]:
    audits, total = activity.recent_audits(
        conn, actor.organisation, root_id=case["id"], count=MAX_HISTORY, base_only=False
    )
    objects = activity.current_objects(conn, actor.organisation, audits)
    changes = {audit["id"]: describe_changes(audit["details"]) for audit in audits}
    return {
        "audits": audits,
        "audit_total": total,
        "audit_objects": objects,
        "changes": changes,
    }


_DATE_FIELDS = frozenset({"startDate", "endDate", "dueDate"})
_TEXT_FIELDS = frozenset({"description", "message", "summary"})
_NAMED_VALUES = {"tlp": TLP_NAMES, "severity": SEVERITY_NAMES}
MAX_CHANGE_LENGTH = 120


def describe_changes(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Returns an audit record's changed fields as (name, shown value),
    leaving out empty values; long texts are only said to have changed."""
    shown: list[tuple[str, str]] = []
    for name, value in details.items():
        if value in (None, "", [], {}):
            continue
        if name in _TEXT_FIELDS:
            shown.append((name, "changed"))
        elif name in _DATE_FIELDS and isinstance(value, int):
            shown.append((name, format_time(value) + " UTC"))
        elif name in _NAMED_VALUES and isinstance(value, int):
            shown.append((name, _NAMED_VALUES[name].get(value, str(value))))
        elif isinstance(value, list):
            shown.append((name, ", ".join(str(item) for item in value)))
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            shown.append(
                (
                    name,
                    text
                    if len(text) <= MAX_CHANGE_LENGTH
                    else text[:MAX_CHANGE_LENGTH] + "…",
                )
            )
    return shown


_TAB_LOADERS = {
    "details": _details,
    "tasks": _tasks,
    "observables": _observables,
    "history": _history,
}
