"""The case list: filters, full-text search, sorting, paging and bulk
actions (flag, assign, close)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.domain import attributes as attrs
from cerana.domain.errors import CeranaError, InvalidInput
from cerana.services import cases as case_service
from cerana.services.context import Actor
from cerana.store import models, query
from cerana.web import choices, forms
from cerana.web.database import read, write
from cerana.web.routing import page_router
from cerana.web.session import posted_form_as, signed_in
from cerana.web.templating import redirect, render, safe_next

router = page_router()

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "-startDate": "Newest first",
    "startDate": "Oldest first",
    "-caseId": "Number, high to low",
    "caseId": "Number, low to high",
    "-severity": "Severity, high to low",
    "-updatedAt": "Recently updated",
    "title": "Title",
}
STATUS_CHOICES = ("Open", "Resolved", "any")
_CASE_NUMBER = re.compile(r"#?(\d{1,15})")
_DSL_HINT = re.compile(r"[:\"()]|\b(AND|OR|NOT)\b")


@dataclass(frozen=True)
class CaseFilters:
    """The list's filters, as read from the query string."""

    status: str = "Open"
    severity: str = ""
    tlp: str = ""
    tags: str = ""
    owner: str = ""
    flagged: bool = False
    text: str = ""
    sort: str = "-startDate"
    page: int = 1
    size: int = PAGE_SIZES[0]
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> CaseFilters:
        status = params.get("status", "Open")
        size = _whole(params.get("size"), PAGE_SIZES[0])
        kept = {
            k: params[k]
            for k in (
                "status",
                "severity",
                "tlp",
                "tags",
                "owner",
                "flagged",
                "q",
                "sort",
                "size",
            )
            if params.get(k)
        }
        return cls(
            status=status if status in STATUS_CHOICES else "Open",
            severity=params.get("severity", "")
            if params.get("severity", "") in ("1", "2", "3")
            else "",
            tlp=params.get("tlp", "")
            if params.get("tlp", "") in ("0", "1", "2", "3")
            else "",
            tags=params.get("tags", "").strip()[:500],
            owner=params.get("owner", "").strip()[:128],
            flagged=params.get("flagged") == "1",
            text=params.get("q", "").strip()[:1000],
            sort=params.get("sort", "-startDate")
            if params.get("sort") in SORTS
            else "-startDate",
            page=max(1, _whole(params.get("page"), 1)),
            size=size if size in PAGE_SIZES else PAGE_SIZES[0],
            params=kept,
        )

    def to_query(self) -> dict[str, Any]:
        """Returns the TheHive DSL query of these filters."""
        clauses: list[Any] = []
        if self.status == "any":
            clauses.append({"_not": {"status": "Deleted"}})
        else:
            clauses.append({"status": self.status})
        if self.severity:
            clauses.append({"severity": int(self.severity)})
        if self.tlp:
            clauses.append({"tlp": int(self.tlp)})
        clauses.extend(
            {"tags": tag.strip()} for tag in self.tags.split(",") if tag.strip()
        )
        if self.owner:
            clauses.append({"owner": self.owner})
        if self.flagged:
            clauses.append({"flag": True})
        if self.text:
            clauses.append(text_query(self.text))
        return {"_and": clauses}

    @property
    def range(self) -> tuple[int, int]:
        return (self.page - 1) * self.size, self.size


def _whole(raw: str | None, default: int) -> int:
    return int(raw) if raw and raw.isdigit() and len(raw) < 9 else default


def text_query(text: str) -> dict[str, Any]:
    """The query of the search box: a case number (``#42``), a Lucene-like
    query string when the text has fields or operators, else words
    searched in titles and descriptions."""
    number = _CASE_NUMBER.fullmatch(text)
    if number:
        return {"caseId": int(number.group(1))}
    if _DSL_HINT.search(text):
        return {"_string": text}
    return {
        "_or": [
            {"_like": {"_field": "title", "_value": text}},
            {"_like": {"_field": "description", "_value": text}},
        ]
    }


@router.get("/cases")
async def case_list(request: Request) -> Response:
    viewer = await signed_in(request)
    filters = CaseFilters.from_params(request.query_params)
    try:
        listing = await read(request, load_case_list, viewer.actor, filters)
    except InvalidInput as exc:
        # A search the DSL cannot parse shows its message, not a result.
        listing = await read(
            request, load_case_list, viewer.actor, filters, searching=False
        )
        listing["search_error"] = f"Search not understood: {exc.message}"
        return render(request, "cases/list.html", listing, status=400)
    return render(request, "cases/list.html", listing)


def load_case_list(
    conn: Connection, actor: Actor, filters: CaseFilters, *, searching: bool = True
) -> dict[str, Any]:
    """Returns what the case list shows: one page of cases and the total
    (none when not ``searching``)."""
    rows: list[Any] = []
    total = 0
    if searching:
        rows, total = query.search(
            conn,
            models.CASE,
            organisation=actor.organisation,
            query=filters.to_query(),
            range_=filters.range,
            sort=[(filters.sort.lstrip("-"), filters.sort.startswith("-"))],
        )
    pages = max(1, -(-total // filters.size))
    return {
        "cases": rows,
        "total": total,
        "filters": filters,
        "pages": pages,
        "first": filters.range[0] + 1 if rows else 0,
        "last": filters.range[0] + len(rows),
        "assignees": choices.assignees(conn, actor.organisation),
        "sorts": SORTS,
        "page_sizes": PAGE_SIZES,
        "search_error": None,
    }


@router.post("/cases/bulk")
async def bulk_action(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "write")
    back = safe_next(forms.text(form, "next"), "/cases")
    case_ids = forms.ids(form, "case")
    try:
        body, done_message = _bulk_body(form)
        if not case_ids:
            raise InvalidInput("Tick at least one case first")
    except CeranaError as exc:
        # The list comes back as it was, the message above the table.
        filters = CaseFilters.from_params(dict(parse_qsl(urlsplit(back).query)))
        listing = await read(request, load_case_list, viewer.actor, filters)
        listing["errors"] = {"bulk": exc.message}
        return render(request, "cases/list.html", listing, status=400)
    _, failed = await write(
        request,
        case_service.bulk_update_cases,
        viewer.actor,
        case_ids,
        body,
        require_metrics=platform(request).settings.metrics_required_to_close,
    )
    message = f"{len(case_ids) - len(failed)} case(s) {done_message}."
    if failed:
        message += f" {len(failed)} failed: {failed[0]['message']}"
    return redirect(back, message)


def _bulk_body(form: FormData) -> tuple[dict[str, Any], str]:
    action = forms.text(form, "action")
    if action in ("flag", "unflag"):
        return {"flag": action == "flag"}, f"{action}ged"
    if action == "assign":
        owner = forms.text(form, "owner")
        if not owner:
            raise InvalidInput("Choose whom to assign the cases to")
        return {"owner": owner}, f"assigned to {owner}"
    if action == "close":
        return close_body(form), "closed"
    raise InvalidInput("Choose an action")


def close_body(form: FormData) -> dict[str, Any]:
    """Returns the update that closes a case, from a close form."""
    resolution = forms.choice(
        form, "resolution", "Resolution", attrs.RESOLUTION_STATUSES[:-1]
    )
    impact = forms.text(form, "impact")
    summary = forms.text(form, "summary")
    if not summary:
        raise InvalidInput("Summary: say in a few words how the case ended")
    body: dict[str, Any] = {
        "status": "Resolved",
        "resolutionStatus": resolution,
        "summary": summary,
    }
    if impact:
        body["impactStatus"] = forms.choice(
            form, "impact", "Impact", attrs.IMPACT_STATUSES
        )
    return body
