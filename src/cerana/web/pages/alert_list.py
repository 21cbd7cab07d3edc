"""The alert list: filters, sorting, paging and bulk triage (mark read or
unread, ignore, merge into an existing case or a new one)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import Connection, RowMapping
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.domain import attributes as attrs
from cerana.domain.errors import CeranaError, InvalidInput
from cerana.services import alert_cases
from cerana.services import alerts as alert_service
from cerana.services import cases as case_service
from cerana.services import templates as template_service
from cerana.services.alerts import AlertRecord
from cerana.services.context import Actor
from cerana.store import models, query, records
from cerana.web import forms
from cerana.web.database import read, write
from cerana.web.routing import page_router
from cerana.web.session import posted_form_as, signed_in
from cerana.web.templating import redirect, render, safe_next

router = page_router()

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "-date": "Newest first",
    "date": "Oldest first",
    "-lastSeen": "Recently seen",
    "-severity": "Severity, high to low",
    "title": "Title",
}
# TheHive's reading of the statuses: an alert is unread until someone
# looked at it (Ignored) or imported it (Imported).
UNREAD_STATUSES = ("New", "Updated")
READ_STATUSES = ("Ignored", "Imported")
TRIAGE: dict[str, tuple[Callable[[Connection, Actor, str], AlertRecord], str]] = {
    "read": (alert_service.mark_alert_read, "marked read"),
    "unread": (alert_service.mark_alert_unread, "marked unread"),
    "ignore": (alert_service.ignore_alert, "ignored"),
}
_CASE_NUMBER = re.compile(r"#?(\d{1,15})")
_KEPT = ("status", "type", "source", "severity", "tags", "read", "sort", "size")


@dataclass(frozen=True)
class AlertFilters:
    """The list's filters, as read from the query string."""

    status: str = ""
    type: str = ""
    source: str = ""
    severity: str = ""
    tags: str = ""
    read: str = ""
    sort: str = "-date"
    page: int = 1
    size: int = PAGE_SIZES[0]
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AlertFilters:
        size = _whole(params.get("size"), PAGE_SIZES[0])
        return cls(
            status=_one_of(params.get("status"), attrs.ALERT_STATUSES),
            type=params.get("type", "").strip()[:128],
            source=params.get("source", "").strip()[:256],
            severity=_one_of(params.get("severity"), ("1", "2", "3")),
            tags=params.get("tags", "").strip()[:500],
            read=_one_of(params.get("read"), ("read", "unread")),
            sort=_one_of(params.get("sort"), tuple(SORTS)) or "-date",
            page=max(1, _whole(params.get("page"), 1)),
            size=size if size in PAGE_SIZES else PAGE_SIZES[0],
            params={k: params[k] for k in _KEPT if params.get(k)},
        )

    def to_query(self) -> dict[str, Any]:
        """Returns the TheHive DSL query of these filters."""
        clauses: list[Any] = []
        if self.status:
            clauses.append({"status": self.status})
        if self.read:
            statuses = READ_STATUSES if self.read == "read" else UNREAD_STATUSES
            clauses.append({"_in": {"_field": "status", "_values": list(statuses)}})
        for name in ("type", "source"):
            if getattr(self, name):
                clauses.append({name: getattr(self, name)})
        if self.severity:
            clauses.append({"severity": int(self.severity)})
        clauses.extend(
            {"tags": tag.strip()} for tag in self.tags.split(",") if tag.strip()
        )
        return {"_and": clauses} if clauses else {}

    @property
    def range(self) -> tuple[int, int]:
        return (self.page - 1) * self.size, self.size


def _whole(raw: str | None, default: int) -> int:
    return int(raw) if raw and raw.isdigit() and len(raw) < 9 else default


def _one_of(raw: str | None, allowed: tuple[str, ...]) -> str:
    return raw if raw in allowed else ""


@router.get("/alerts")
async def alert_list(request: Request) -> Response:
    viewer = await signed_in(request)
    filters = AlertFilters.from_params(request.query_params)
    listing = await read(request, load_alert_list, viewer.actor, filters)
    return render(request, "alerts/list.html", listing)


def load_alert_list(
    conn: Connection, actor: Actor, filters: AlertFilters
) -> dict[str, Any]:
    """Returns what the alert list shows: one page of alerts, the total,
    the cases of imported alerts and the templates a new case may use."""
    rows, total = query.search(
        conn,
        models.ALERT,
        organisation=actor.organisation,
        query=filters.to_query(),
        range_=filters.range,
        sort=[(filters.sort.lstrip("-"), filters.sort.startswith("-"))],
    )
    case_ids = list({row["case_id"] for row in rows if row["case_id"]})
    return {
        "alerts": rows,
        "total": total,
        "filters": filters,
        "pages": max(1, -(-total // filters.size)),
        "first": filters.range[0] + 1 if rows else 0,
        "last": filters.range[0] + len(rows),
        "cases": records.fetch_many(conn, models.CASE, case_ids, actor.organisation),
        "templates": live_templates(conn, actor.organisation),
        "statuses": attrs.ALERT_STATUSES,
        "sorts": SORTS,
        "page_sizes": PAGE_SIZES,
        "ticked": [],
    }


def live_templates(conn: Connection, organisation: str) -> list[RowMapping]:
    """Returns the case templates an alert may be imported with, by name."""
    return [
        t
        for t in template_service.list_templates(conn, organisation)
        if t["status"] == "Ok"
    ]


@router.post("/alerts/bulk")
async def bulk_action(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "write")
    back = safe_next(forms.text(form, "next"), "/alerts")
    alert_ids = forms.ids(form, "alert")
    try:
        if not alert_ids:
            raise InvalidInput("Tick at least one alert first")
        return await _run_bulk(request, viewer.actor, form, alert_ids, back)
    except CeranaError as exc:
        if exc.status in (401, 403):
            raise
        # The list comes back as it was, the message above the table.
        filters = AlertFilters.from_params(dict(parse_qsl(urlsplit(back).query)))
        listing = await read(request, load_alert_list, viewer.actor, filters)
        listing["errors"] = {"bulk": exc.message}
        listing["values"] = {k: v for k, v in form.items() if isinstance(v, str)}
        listing["ticked"] = alert_ids
        return render(request, "alerts/list.html", listing, status=400)


async def _run_bulk(
    request: Request, actor: Actor, form: FormData, alert_ids: list[str], back: str
) -> Response:
    action = forms.text(form, "action")
    if action in TRIAGE:
        triage, done = TRIAGE[action]
        failed = await write(
            request, alert_service.triage_alerts, actor, alert_ids, triage
        )
        message = f"{len(alert_ids) - len(failed)} alert(s) {done}."
        if failed:
            message += f" {len(failed)} failed: {failed[0]['message']}"
        return redirect(back, message)
    if action == "merge":
        number = case_number(form)
        case = await write(request, merge_into_numbered_case, actor, number, alert_ids)
        return redirect(
            f"/cases/{case['id']}",
            f"{len(alert_ids)} alert(s) merged into case #{case['number']}.",
        )
    if action == "new-case":
        template = forms.text(form, "template") or None
        case = await write(
            request,
            alert_cases.merge_alerts_into_case,
            actor,
            None,
            alert_ids,
            template,
        )
        return redirect(
            f"/cases/{case['id']}",
            f"Case #{case['number']} opened from {len(alert_ids)} alert(s).",
        )
    raise InvalidInput("Choose an action")


def case_number(form: FormData) -> int:
    """Returns the case number typed in a merge form (``42`` or ``#42``)."""
    typed = forms.text(form, "number")
    found = _CASE_NUMBER.fullmatch(typed)
    if not found:
        raise InvalidInput(
            "Case number: type the number of the case to merge into, such as 42"
        )
    return int(found.group(1))


def merge_into_numbered_case(
    conn: Connection, actor: Actor, number: int, alert_ids: list[str]
) -> RowMapping | dict[str, Any]:
    """Merges alerts into the case numbered ``number``; returns the case.
    Raises InvalidInput when there is no such case, or it was deleted."""
    case = case_service.find_case_by_number(conn, actor.organisation, number)
    if case is None or case["status"] == "Deleted":
        raise InvalidInput(f"Case number: there is no case #{number}")
    return alert_cases.merge_alerts_into_case(conn, actor, case["id"], alert_ids)
