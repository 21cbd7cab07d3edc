"""Custom field and metric values of a case, edited on its Details tab (#5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.services import cases as case_service
from cerana.services import custom_fields
from cerana.services.context import Actor
from cerana.web import custom_values
from cerana.web.database import write
from cerana.web.pages.case_actions import case_form
from cerana.web.routing import page_router
from cerana.web.session import Viewer
from cerana.web.templating import redirect

router = page_router()


@router.post("/cases/{case_id}/custom-fields")
async def save_values(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        await write(request, _save_values, viewer.actor, case_id, form)
        return redirect(f"/cases/{case_id}", "Custom fields and metrics saved.")

    return await case_form(request, case_id, "custom-fields", "details", action)


def _save_values(
    conn: Connection, actor: Actor, case_id: str, form: FormData
) -> dict[str, Any]:
    """Replaces the case's custom fields and metrics by the form's; a field
    or metric the case holds stays listed when its input is emptied."""
    case = case_service.get_case(conn, actor.organisation, case_id)
    fields = case["custom_fields"] or {}
    metrics = case["metrics"] or {}
    body = {
        "customFields": custom_values.read_custom_fields(
            form,
            custom_fields.field_definitions(conn, actor.organisation),
            fields,
            set(fields),
        ),
        "metrics": custom_values.read_metrics(
            form,
            custom_fields.metric_definitions(conn, actor.organisation),
            metrics,
            set(metrics),
        ),
    }
    version = form.get("version")
    expected = int(version) if isinstance(version, str) and version.isdigit() else None
    return case_service.update_case(
        conn, actor, case_id, body, expected_version=expected
    )
