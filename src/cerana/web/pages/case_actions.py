"""Opening a case and what its header offers: flag, assign, edit, close,
reopen and merge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.domain import attributes as attrs
from cerana.domain.errors import CeranaError, InvalidInput, NotFound
from cerana.services import cases as case_service
from cerana.services import merge as merge_service
from cerana.services import templates as template_service
from cerana.services.context import Actor
from cerana.web import forms
from cerana.web.database import read, write
from cerana.web.pages.case import case_page_response
from cerana.web.pages.case_list import close_body
from cerana.web.routing import page_router
from cerana.web.session import (
    Viewer,
    posted_form_as,
    run_write_form,
    signed_in_as,
)
from cerana.web.templating import redirect, render, safe_next

router = page_router()

CaseAction = Callable[[Viewer, FormData], Awaitable[Response]]


@router.get("/cases/new")
async def new_case_form(request: Request) -> Response:
    viewer = await signed_in_as(request, "write")
    names = await read(request, _template_names, viewer.actor.organisation)
    # With templates to choose from, severity and TLP default to the
    # template's; a form value would always win over it (#5).
    default = "" if names else "2"
    values = {"severity": default, "tlp": default}
    return render(request, "cases/new.html", {"values": values, "templates": names})


@router.post("/cases/new")
async def open_case(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "write")
    try:
        row = await write(
            request, case_service.create_case, viewer.actor, _new_case_body(form)
        )
    except CeranaError as exc:
        if exc.status in (403, 404):
            raise
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        names = await read(request, _template_names, viewer.actor.organisation)
        return render(
            request,
            "cases/new.html",
            {"values": values, "errors": {"case": exc.message}, "templates": names},
            status=400,
        )
    return redirect(f"/cases/{row['id']}", f"Case #{row['number']} opened.")


def _template_names(conn: Connection, organisation: str) -> list[str]:
    rows = template_service.list_templates(conn, organisation)
    return [row["name"] for row in rows if row["status"] == "Ok"]


def _new_case_body(form: FormData) -> dict[str, Any]:
    """Returns the case body of the new case form. An empty severity or TLP
    is left out, and so are, with a template, an empty description and an
    unticked flag, so that the template's values apply."""
    template = forms.text(form, "template")
    body: dict[str, Any] = {
        "title": forms.text(form, "title"),
        "description": forms.text(form, "description"),
        "tags": forms.tag_list(form, "tags"),
        "flag": forms.checked(form, "flag"),
    }
    for name, label, choices in (
        ("severity", "Severity", attrs.SEVERITIES),
        ("tlp", "TLP", attrs.TLPS),
    ):
        if forms.text(form, name):  # empty: the template's, else the default
            body[name] = forms.number(form, name, label, choices)
    if not body["title"]:
        raise InvalidInput("Title: a case needs a title")
    if template:
        body["template"] = template
        if not body["flag"]:
            del body["flag"]
        if not body["description"]:
            del body["description"]
    elif not body["description"]:
        raise InvalidInput("Description: say what happened, in a sentence at least")
    start = forms.date_time(form, "start_date", "Start date")
    if start is not None:
        body["startDate"] = start
    return body


async def case_form(
    request: Request, case_id: str, form_name: str, tab: str, action: CaseAction
) -> Response:
    """Runs a header form's action; on bad input the case page comes back
    with the message next to that form and status 400."""

    async def redisplay(
        viewer: Viewer, message: str, values: dict[str, str]
    ) -> Response:
        return await case_page_response(
            request,
            viewer,
            case_id,
            tab,
            errors={form_name: message},
            values=values,
            status=400,
        )

    return await run_write_form(request, action, redisplay)


@router.post("/cases/{case_id}/flag")
async def toggle_flag(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        flag = forms.text(form, "flag") == "true"
        await write(
            request, case_service.update_case, viewer.actor, case_id, {"flag": flag}
        )
        return redirect(safe_next(forms.text(form, "next"), f"/cases/{case_id}"))

    return await case_form(request, case_id, "header", "details", action)


@router.post("/cases/{case_id}/assign")
async def assign(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        owner = forms.text(form, "owner")
        if not owner:
            raise InvalidInput("Assignee: choose a user")
        await write(
            request, case_service.update_case, viewer.actor, case_id, {"owner": owner}
        )
        return redirect(
            safe_next(forms.text(form, "next"), f"/cases/{case_id}"),
            f"Case assigned to {owner}.",
        )

    return await case_form(request, case_id, "assign", "details", action)


@router.post("/cases/{case_id}/edit")
async def edit(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        body = {
            "title": forms.text(form, "title"),
            "description": forms.text(form, "description"),
            "severity": forms.number(form, "severity", "Severity", attrs.SEVERITIES),
            "tlp": forms.number(form, "tlp", "TLP", attrs.TLPS),
            "tags": forms.tag_list(form, "tags"),
        }
        version = forms.text(form, "version")
        expected = int(version) if version.isdigit() else None
        await write(
            request,
            case_service.update_case,
            viewer.actor,
            case_id,
            body,
            expected_version=expected,
        )
        return redirect(f"/cases/{case_id}", "Case updated.")

    return await case_form(request, case_id, "edit", "details", action)


@router.post("/cases/{case_id}/close")
async def close(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        row = await write(
            request,
            case_service.update_case,
            viewer.actor,
            case_id,
            close_body(form),
            require_metrics=platform(request).settings.metrics_required_to_close,
        )
        return redirect(f"/cases/{case_id}", f"Case #{row['number']} closed.")

    return await case_form(request, case_id, "close", "details", action)


@router.post("/cases/{case_id}/reopen")
async def reopen(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        row = await write(
            request, case_service.update_case, viewer.actor, case_id, {"status": "Open"}
        )
        return redirect(f"/cases/{case_id}", f"Case #{row['number']} reopened.")

    return await case_form(request, case_id, "header", "details", action)


@router.post("/cases/{case_id}/merge")
async def merge(request: Request, case_id: str) -> Response:
    async def action(viewer: Viewer, form: FormData) -> Response:
        number = forms.text(form, "number").lstrip("#")
        if not number.isdigit() or len(number) > 15:
            raise InvalidInput(
                "Case number: type the number of the other case, such as 42"
            )
        row = await write(
            request, _merge_with_number, viewer.actor, case_id, int(number)
        )
        return redirect(f"/cases/{row['id']}", f"Cases merged into #{row['number']}.")

    return await case_form(request, case_id, "merge", "details", action)


def _merge_with_number(
    conn: Connection, actor: Actor, case_id: str, number: int
) -> dict[str, Any]:
    other = case_service.find_case_by_number(conn, actor.organisation, number)
    if other is None:
        raise InvalidInput(f"Case number: there is no case #{number}")
    try:
        return merge_service.merge_cases(conn, actor, case_id, other["id"])
    except NotFound as exc:
        raise InvalidInput(
            f"Case number: #{number} cannot be merged ({exc.message})"
        ) from None
