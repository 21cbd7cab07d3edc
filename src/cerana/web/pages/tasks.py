"""Tasks: adding one to a case, the task page with its logs, status moves
(start, close, cancel, reopen) and writing logs with an attachment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.domain.errors import CeranaError, InvalidInput
from cerana.platform import Platform
from cerana.services import activity
from cerana.services import cases as case_service
from cerana.services import logs as log_service
from cerana.services import tasks as task_service
from cerana.services.attachments import Upload, attachment_rows
from cerana.services.context import Actor
from cerana.store import models, query, tables
from cerana.web import choices, forms
from cerana.web.database import read, write
from cerana.web.pages.case import case_page_response
from cerana.web.routing import page_router
from cerana.web.session import Viewer, posted_form_as, signed_in
from cerana.web.templating import redirect, render, safe_next

router = page_router()

MAX_LOGS = 200
# What each button asks for; the service refuses moves it does not allow.
STATUS_ACTIONS = {
    "start": "InProgress",
    "close": "Completed",
    "cancel": "Cancel",
    "reopen": "InProgress",
}


@router.post("/cases/{case_id}/tasks")
async def add_task(request: Request, case_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    body: dict[str, Any] = {
        "title": forms.text(form, "title"),
        "group": forms.text(form, "group") or "default",
        "description": forms.text(form, "description") or None,
        "owner": forms.text(form, "owner") or None,
    }
    order = forms.text(form, "order")
    if order.lstrip("-").isdigit():
        body["order"] = int(order)
    try:
        if not body["title"]:
            raise InvalidInput("Title: a task needs a title")
        row = await write(
            request, task_service.create_task, viewer.actor, case_id, body
        )
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return await case_page_response(
            request,
            viewer,
            case_id,
            "tasks",
            errors={"task": exc.message},
            values=values,
            status=400,
        )
    return redirect(f"/cases/{case_id}?tab=tasks", f"Task “{row['title']}” added.")


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str) -> Response:
    viewer = await signed_in(request)
    return await _task_page_response(request, viewer, task_id)


async def _task_page_response(
    request: Request,
    viewer: Viewer,
    task_id: str,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    view = await read(request, load_task_page, viewer.actor, task_id)
    view.update(errors=errors or {}, values=values or {})
    return render(request, "task.html", view, status=status)


def load_task_page(conn: Connection, actor: Actor, task_id: str) -> dict[str, Any]:
    """Returns a task, its case and its newest logs with their attachments."""
    cursor = activity.last_audit_id(conn)
    task = task_service.require_task(conn, actor.organisation, task_id)
    case = case_service.get_case(conn, actor.organisation, task["case_id"])
    logs, total = query.search(
        conn,
        models.LOG,
        organisation=actor.organisation,
        query={"status": "Ok"},
        range_=(0, MAX_LOGS),
        sort=[("startDate", True)],
        scope=tables.task_log.c.task_id == task_id,
    )
    files = attachment_rows(
        conn, {row["attachment_id"] for row in logs if row["attachment_id"]}
    )
    return {
        "task": task,
        "case": case,
        "logs": logs,
        "log_total": total,
        "files": files,
        "cursor": cursor,
        "assignees": choices.assignees(conn, actor.organisation),
    }


@router.post("/tasks/{task_id}/status")
async def change_status(request: Request, task_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    action = forms.text(form, "action")
    back = safe_next(forms.text(form, "next"), f"/tasks/{task_id}")
    if action not in STATUS_ACTIONS:
        return redirect(back, "Choose start, close or cancel.")
    try:
        row = await write(
            request,
            task_service.update_task,
            viewer.actor,
            task_id,
            {"status": STATUS_ACTIONS[action]},
        )
    except InvalidInput as exc:
        return redirect(back, exc.message)
    return redirect(
        back, f"Task “{row['title']}” is now {_status_word(row['status'])}."
    )


def _status_word(status: str) -> str:
    return {
        "InProgress": "in progress",
        "Completed": "completed",
        "Cancel": "cancelled",
    }.get(status, status.lower())


@router.post("/tasks/{task_id}/owner")
async def assign_task(request: Request, task_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    owner = forms.text(form, "owner") or None
    await write(
        request, task_service.update_task, viewer.actor, task_id, {"owner": owner}
    )
    return redirect(
        f"/tasks/{task_id}",
        f"Task assigned to {owner}." if owner else "Task unassigned.",
    )


@router.post("/tasks/{task_id}/logs")
async def write_log(request: Request, task_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    message = forms.text(form, "message")
    attached = forms.upload(form, "attachment")
    try:
        if not message:
            raise InvalidInput("Log: write something (markdown is fine)")
        await write(
            request,
            _create_log,
            viewer.actor,
            task_id,
            message,
            attached,
            platform(request),
        )
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await _task_page_response(
            request,
            viewer,
            task_id,
            errors={"log": exc.message},
            values={"message": message},
            status=400,
        )
    return redirect(f"/tasks/{task_id}", "Log added.")


def _create_log(
    conn: Connection,
    actor: Actor,
    task_id: str,
    message: str,
    attached: Upload | None,
    p: Platform,
) -> None:
    log_service.create_log(
        conn,
        actor,
        task_id,
        {"message": message},
        upload=attached,
        store=p.store,
        max_size=p.settings.max_attachment_size,
    )
