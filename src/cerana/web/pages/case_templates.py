"""Administration: case templates, their editor, export and import (#5).

The editor is one form. Its task rows carry an ``order`` field; the move,
add and remove buttons post the whole form and get it back rearranged
without saving, so reordering needs no script (`template-editor.js` only
swaps rows in place and rewrites those order fields). Only "Save" writes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.domain import attributes as attrs
from cerana.domain import templates as shapes
from cerana.domain.errors import CeranaError, InvalidInput
from cerana.services import custom_fields
from cerana.services import templates as template_service
from cerana.services.context import Actor
from cerana.services.template_files import dump_templates
from cerana.web import choices, custom_values, forms
from cerana.web.database import read, write
from cerana.web.routing import page_router
from cerana.web.session import (
    Viewer,
    posted_form_as,
    signed_in_as,
)
from cerana.web.templating import redirect, render

logger = logging.getLogger(__name__)

router = page_router()

LIST_PATH = "/admin/templates"
TASK_KEYS = ("title", "group", "description", "owner")
MAX_IMPORT_FILES = 20


@dataclass(frozen=True)
class TaskRow:
    """One task row of the editor: its form index and what it holds."""

    index: int
    order: int
    values: dict[str, str]

    @property
    def blank(self) -> bool:
        return not any(self.values.values())


@dataclass
class MissingNames:
    """The custom fields and metrics an imported template names that are
    not defined here."""

    source: str
    template: str
    fields: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


# -- list, export, import, delete --------------------------------------------


@router.get(LIST_PATH)
async def template_list(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    return await _list_page(request, viewer)


async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    error: str | None = None,
    missing: Sequence[MissingNames] = (),
    create_missing: bool = False,
    status: int = 200,
) -> Response:
    rows = await read(
        request, template_service.list_templates, viewer.actor.organisation
    )
    context = {
        "templates": rows,
        "errors": {"import": error} if error else {},
        "missing": missing,
        "values": {"create_missing": create_missing},
    }
    return render(request, "admin/templates.html", context, status=status)


@router.get(LIST_PATH + "/export")
async def export_all(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    exported = await read(
        request, template_service.export_templates, viewer.actor.organisation
    )
    return _download(exported, "Case-Templates.json")


@router.post(LIST_PATH + "/import")
async def import_files(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    create_missing = forms.checked(form, "create_missing")
    try:
        documents = await _uploaded_documents(request, form)
        missing, imported = await write(
            request, _import, viewer.actor, documents, create_missing
        )
    except CeranaError as exc:
        if exc.status in (401, 403):
            raise
        return await _list_page(
            request,
            viewer,
            error=exc.message,
            create_missing=create_missing,
            status=400,
        )
    if missing:
        return await _list_page(
            request, viewer, missing=missing, create_missing=False, status=400
        )
    return redirect(LIST_PATH, _imported_message(imported))


async def _uploaded_documents(
    request: Request, form: FormData
) -> list[tuple[str, list[Any]]]:
    """Returns ``[(file name, template documents)]`` of the uploaded files;
    raises InvalidInput naming a file that is too large or not JSON."""
    max_size = platform(request).settings.max_body_size
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
    files = [f for f in files if f.filename]
    if not files:
        raise InvalidInput("Template file: choose a JSON file exported from TheHive")
    documents = []
    for upload in files[:MAX_IMPORT_FILES]:
        source = upload.filename or "file"
        raw = await upload.read(max_size + 1)
        if len(raw) > max_size:
            raise InvalidInput(f"{source} is larger than {max_size} bytes")
        documents.append((source, _parse_document(raw, source)))
    return documents


def _parse_document(raw: bytes, source: str) -> list[Any]:
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"{source} is not valid JSON ({exc}): nothing was imported"
        ) from None
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    raise InvalidInput(f"{source} must hold a case template object or a list of them")


def _import(
    conn: Connection,
    actor: Actor,
    documents: list[tuple[str, list[Any]]],
    create_missing: bool,
) -> tuple[list[MissingNames], template_service.ImportOutcome]:
    """Imports every document in one transaction; without ``create_missing``
    a document naming undefined custom fields or metrics stops the import
    first, and they are returned instead, nothing written."""
    outcome = template_service.ImportOutcome()
    if not create_missing:
        missing = _missing_names(conn, actor.organisation, documents)
        if missing:
            return missing, outcome
    for source, items in documents:
        part = template_service.import_templates(
            conn, actor, items, create_missing=create_missing, source=source
        )
        outcome.templates.extend(part.templates)
        outcome.created_fields.extend(part.created_fields)
        outcome.created_metrics.extend(part.created_metrics)
    logger.info(
        "%d case templates imported from the web UI by %s",
        len(outcome.templates),
        actor.login,
    )
    return [], outcome


def _missing_names(
    conn: Connection, organisation: str, documents: list[tuple[str, list[Any]]]
) -> list[MissingNames]:
    found = []
    for source, items in documents:
        for item in items:
            body = shapes.import_body(item, source)
            names, metrics = custom_fields.undefined_names(conn, organisation, body)
            if names or metrics:
                template = str(body.get("name", "(no name)"))
                found.append(
                    MissingNames(source, template, [str(n) for n in names], metrics)
                )
    return found


def _imported_message(outcome: template_service.ImportOutcome) -> str:
    names = ", ".join(str(row["name"]) for row in outcome.templates)
    message = f"Imported {len(outcome.templates)} template(s): {names}."
    if outcome.created_fields:
        message += " Created custom fields " + ", ".join(outcome.created_fields) + "."
    if outcome.created_metrics:
        message += " Created metrics " + ", ".join(outcome.created_metrics) + "."
    return message


# -- the editor --------------------------------------------------------------


@router.get(LIST_PATH + "/new")
async def new_template(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    values = {"severity": "2", "tlp": "2"}
    return await _editor(request, viewer, None, values, [])


@router.post(LIST_PATH + "/new")
async def create_template(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    return await _submit(request, viewer, form, None)


@router.get(LIST_PATH + "/{template_id}")
async def edit_template(request: Request, template_id: str) -> Response:
    viewer = await signed_in_as(request, "admin")
    row = await read(
        request, template_service.get_template, viewer.actor.organisation, template_id
    )
    tasks = [
        TaskRow(i, i, {k: str(task.get(k) or "") for k in TASK_KEYS})
        for i, task in enumerate(_ordered(row["tasks"] or []))
    ]
    return await _editor(request, viewer, row, _row_values(row), tasks)


@router.get(LIST_PATH + "/{template_id}/export")
async def export_one(request: Request, template_id: str) -> Response:
    viewer = await signed_in_as(request, "admin")
    (exported,) = await read(
        request,
        template_service.export_templates,
        viewer.actor.organisation,
        template_id,
    )
    return _download(exported, shapes.export_file_name(exported["name"]))


@router.post(LIST_PATH + "/{template_id}")
async def save_template(request: Request, template_id: str) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    return await _submit(request, viewer, form, template_id)


@router.post(LIST_PATH + "/{template_id}/delete")
async def delete_template(request: Request, template_id: str) -> Response:
    viewer, _ = await posted_form_as(request, "admin")
    row = await read(
        request, template_service.get_template, viewer.actor.organisation, template_id
    )
    await write(request, template_service.delete_template, viewer.actor, template_id)
    return redirect(LIST_PATH, f"Template {row['name']} deleted.")


async def _submit(
    request: Request, viewer: Viewer, form: FormData, template_id: str | None
) -> Response:
    """Saves the editor's form, or rearranges its tasks for a move, add or
    remove button; a refused save shows the form again as it was typed."""
    row = None
    if template_id is not None:
        row = await read(
            request,
            template_service.get_template,
            viewer.actor.organisation,
            template_id,
        )
    typed = {k: v for k, v in form.items() if isinstance(v, str)}
    tasks = _typed_tasks(form)
    action = forms.text(form, "op") or "save"
    if action != "save":
        rearranged = _rearranged(tasks, action)
        return await _editor(request, viewer, row, typed, rearranged, from_form=True)
    try:
        body = await read(request, _template_body, viewer.actor, form, tasks)
        if template_id is None:
            saved = await write(
                request, template_service.create_template, viewer.actor, body
            )
        else:
            saved = await write(
                request,
                template_service.update_template,
                viewer.actor,
                template_id,
                body,
            )
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await _editor(
            request, viewer, row, typed, tasks, exc.message, from_form=True, status=400
        )
    return redirect(f"{LIST_PATH}/{saved['id']}", f"Template {saved['name']} saved.")


async def _editor(
    request: Request,
    viewer: Viewer,
    row: RowMapping | None,
    values: Mapping[str, Any],
    tasks: Sequence[TaskRow],
    error: str | None = None,
    *,
    from_form: bool = False,
    status: int = 200,
) -> Response:
    """Renders the editor of ``row`` (None: a new template); ``from_form``
    when ``values`` is a posted form, whose typed values are shown again."""
    typed = values if from_form else None
    view = await read(request, _editor_choices, viewer.actor, row, typed)
    view.update(
        template=row,
        values=values,
        tasks=list(tasks) or [TaskRow(0, 0, dict.fromkeys(TASK_KEYS, ""))],
        errors={"template": error} if error else {},
    )
    return render(request, "admin/template.html", view, status=status)


def _editor_choices(
    conn: Connection,
    actor: Actor,
    row: RowMapping | None,
    typed: Mapping[str, Any] | None,
) -> dict[str, Any]:
    fields = custom_fields.field_definitions(conn, actor.organisation)
    metrics = custom_fields.metric_definitions(conn, actor.organisation)
    current_fields = (row["custom_fields"] if row else None) or {}
    current_metrics = (row["metrics"] if row else None) or {}
    owners = choices.assignees(conn, actor.organisation)
    return {
        "owners": owners,
        "owner_logins": {login for login, _ in owners},
        "field_inputs": custom_values.field_inputs(fields, current_fields, typed),
        "metric_inputs": custom_values.metric_inputs(metrics, current_metrics, typed),
        "undefined_fields": sorted(set(current_fields) - set(fields)),
        "undefined_metrics": sorted(set(current_metrics) - set(metrics)),
    }


def _template_body(
    conn: Connection, actor: Actor, form: FormData, tasks: Sequence[TaskRow]
) -> dict[str, Any]:
    """Returns the TheHive template body of the editor's form; raises
    InvalidInput naming the first field at fault."""
    fields = custom_fields.field_definitions(conn, actor.organisation)
    metrics = custom_fields.metric_definitions(conn, actor.organisation)
    return {
        "name": forms.text(form, "name"),
        "titlePrefix": forms.text(form, "title_prefix"),
        "description": forms.text(form, "description"),
        "severity": forms.number(form, "severity", "Severity", attrs.SEVERITIES),
        "tlp": forms.number(form, "tlp", "TLP", attrs.TLPS),
        "tags": forms.tag_list(form, "tags"),
        "flag": forms.checked(form, "flag"),
        "tasks": _task_bodies(tasks),
        "customFields": custom_values.read_custom_fields(
            form,
            fields,
            {},
            custom_values.listed_names(form, custom_values.FIELD_PREFIX),
        ),
        "metrics": custom_values.read_metrics(
            form,
            metrics,
            {},
            custom_values.listed_names(form, custom_values.METRIC_PREFIX),
        ),
    }


def _task_bodies(tasks: Sequence[TaskRow]) -> list[dict[str, Any]]:
    # Limitation: a task's flag, status and dates (which an imported TheHive
    # template may carry) are not in the editor, so saving there drops them,
    # because the form offers only what TheHive 3's own editor offered (#5).
    bodies = []
    for position, task in enumerate(t for t in tasks if not t.blank):
        if not task.values["title"]:
            raise InvalidInput(f"Task {position + 1}: a task needs a title")
        body: dict[str, Any] = {k: v for k, v in task.values.items() if v}
        bodies.append({**body, "order": position})
    return bodies


def _typed_tasks(form: FormData) -> list[TaskRow]:
    """Returns the task rows of a posted editor, in their order fields'
    order (the form's order when a field is missing or not a number)."""
    count = forms.text(form, "task_count")
    total = min(int(count), shapes.MAX_TEMPLATE_TASKS) if count.isdigit() else 0
    rows = []
    for index in range(total):
        order = forms.text(form, f"task-{index}-order")
        rows.append(
            TaskRow(
                index,
                int(order) if order.isdigit() and len(order) < 7 else index,
                {k: forms.text(form, f"task-{index}-{k}") for k in TASK_KEYS},
            )
        )
    return sorted(rows, key=lambda row: (row.order, row.index))


def _rearranged(tasks: list[TaskRow], action: str) -> list[TaskRow]:
    """Applies a move-up, move-down, remove or add button to the rows and
    numbers them again by position."""
    verb, _, raw_index = action.partition("-")
    rows = list(tasks)
    positions = [i for i, row in enumerate(rows) if str(row.index) == raw_index]
    if verb == "add":
        rows.append(TaskRow(len(rows), len(rows), dict.fromkeys(TASK_KEYS, "")))
    elif positions and verb == "remove":
        rows.pop(positions[0])
    elif positions and verb in ("up", "down"):
        at = positions[0]
        other = at - 1 if verb == "up" else at + 1
        if 0 <= other < len(rows):
            rows[at], rows[other] = rows[other], rows[at]
    return [TaskRow(i, i, row.values) for i, row in enumerate(rows)]


def _ordered(tasks: list[Any]) -> list[Mapping[str, Any]]:
    listed = [t for t in tasks if isinstance(t, Mapping)]
    return [
        task
        for _, task in sorted(
            enumerate(listed), key=lambda item: (item[1].get("order", item[0]), item[0])
        )
    ]


def _row_values(row: RowMapping) -> dict[str, str]:
    return {
        "name": row["name"],
        "title_prefix": row["title_prefix"] or "",
        "description": row["description"] or "",
        "severity": str(row["severity"] or 2),
        "tlp": str(row["tlp"] if row["tlp"] is not None else 2),
        "tags": ", ".join(row["tags"] or []),
        "flag": "on" if row["flag"] else "",
    }


def _download(content: Any, file_name: str) -> Response:
    return Response(
        dump_templates(content),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{file_name}"'},
    )
