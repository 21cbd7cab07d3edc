"""The alert preview: header, description, artifacts with where they were
seen before, similar cases; and its actions (mark read or unread, follow,
ignore, import as a case, merge into a case).

Opening the preview changes nothing: TheHive 3 marks an alert read only
when asked to, and so does Cerana.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.domain.errors import InvalidInput, NotFound
from cerana.services import alert_cases
from cerana.services import alert_similarity as similarity
from cerana.services import alerts as alert_service
from cerana.services import cases as case_service
from cerana.services.attachments import attachment_rows
from cerana.services.context import Actor
from cerana.web import forms
from cerana.web.database import read, write
from cerana.web.pages.alert_list import (
    case_number,
    live_templates,
    merge_into_numbered_case,
)
from cerana.web.routing import page_router
from cerana.web.session import Viewer, run_write_form, signed_in
from cerana.web.templating import redirect, render

router = page_router()

# Each artifact links to at most this many of the cases it was seen in.
MAX_SEEN_CASES = 10
TRIAGE_ACTIONS: dict[str, tuple[Callable[..., Any], tuple[Any, ...], str]] = {
    "read": (alert_service.mark_alert_read, (), "Alert marked read."),
    "unread": (alert_service.mark_alert_unread, (), "Alert marked unread."),
    "follow": (alert_service.follow_alert, (True,), "Alert followed."),
    "unfollow": (alert_service.follow_alert, (False,), "Alert no longer followed."),
    "ignore": (alert_service.ignore_alert, (), "Alert ignored."),
}

AlertAction = Callable[[Viewer, FormData], Awaitable[Response]]


@router.get("/alerts/{alert_id}")
async def alert_page(request: Request, alert_id: str) -> Response:
    viewer = await signed_in(request)
    return await alert_page_response(request, viewer, alert_id)


async def alert_page_response(
    request: Request,
    viewer: Viewer,
    alert_id: str,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """Renders the preview; a form that failed passes its message in
    ``errors`` and what was typed in ``values``."""
    limit = platform(request).settings.max_similar_cases
    view = await read(request, load_alert_page, viewer.actor, alert_id, limit)
    view.update(errors=errors or {}, values=values or {})
    return render(request, "alerts/preview.html", view, status=status)


def load_alert_page(
    conn: Connection, actor: Actor, alert_id: str, similar_limit: int
) -> dict[str, Any]:
    """Returns the alert, its artifacts with what is known of each, the
    similar cases, its case (when imported) and the case templates."""
    organisation = actor.organisation
    record = alert_service.get_alert_record(conn, organisation, alert_id)
    stored = attachment_rows(
        conn, {a["attachment_id"] for a in record.artifacts if a["attachment_id"]}
    )
    probes = similarity.probes_of(record.artifacts, stored)
    known = similarity.known_observables(conn, organisation, alert_id, probes)
    seen = [p for p in probes if known[p.artifact_id].cases]
    return {
        "alert": record.row,
        "artifacts": record.artifacts,
        "known": known,
        "seen_in": similarity.cases_seen_in(conn, organisation, seen, MAX_SEEN_CASES),
        "similar": similarity.similar_cases(conn, organisation, probes, similar_limit),
        "case": _case_or_none(conn, organisation, record.row["case_id"]),
        "templates": live_templates(conn, organisation),
    }


def _case_or_none(
    conn: Connection, organisation: str, case_id: str | None
) -> RowMapping | None:
    if not case_id:
        return None
    try:
        return case_service.get_case(conn, organisation, case_id)
    except NotFound:
        return None


async def _alert_form(
    request: Request, alert_id: str, form_name: str, action: AlertAction
) -> Response:
    """Runs an action form of the preview; on bad input the preview comes
    back with the message next to that form and status 400."""

    async def redisplay(
        viewer: Viewer, message: str, values: dict[str, str]
    ) -> Response:
        return await alert_page_response(
            request,
            viewer,
            alert_id,
            errors={form_name: message},
            values=values,
            status=400,
        )

    return await run_write_form(request, action, redisplay)


@router.post("/alerts/{alert_id}/triage")
async def triage(request: Request, alert_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        chosen = forms.text(form, "action")
        if chosen not in TRIAGE_ACTIONS:
            raise InvalidInput("Choose an action")
        triage_fn, args, done = TRIAGE_ACTIONS[chosen]
        await write(request, triage_fn, viewer.actor, alert_id, *args)
        return redirect(f"/alerts/{alert_id}", done)

    return await _alert_form(request, alert_id, "header", action)


@router.post("/alerts/{alert_id}/import")
async def import_alert(request: Request, alert_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        template = forms.text(form, "template") or None
        case = await write(
            request, alert_cases.open_case_from_alert, viewer.actor, alert_id, template
        )
        return redirect(
            f"/cases/{case['id']}", f"Alert imported as case #{case['number']}."
        )

    return await _alert_form(request, alert_id, "import", action)


@router.post("/alerts/{alert_id}/merge")
async def merge(request: Request, alert_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        number = case_number(form)
        case = await write(
            request, merge_into_numbered_case, viewer.actor, number, [alert_id]
        )
        return redirect(
            f"/cases/{case['id']}", f"Alert merged into case #{case['number']}."
        )

    return await _alert_form(request, alert_id, "merge", action)
