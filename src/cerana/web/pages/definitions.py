"""Administration: custom field and metric definitions (admin role, #5).

Definitions are items of TheHive's DB lists; an edit replaces the item, as
TheHive's list API does. A field's reference is what cases and templates
name it by, and a metric's name likewise, so they are set once, when the
definition is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.domain import custom_fields as shapes
from cerana.domain.errors import CeranaError, InvalidInput, NotFound
from cerana.services import lists
from cerana.services.context import Actor
from cerana.web import custom_values, forms
from cerana.web.database import read, write
from cerana.web.routing import page_router
from cerana.web.session import (
    Viewer,
    posted_form_as,
    signed_in_as,
)
from cerana.web.templating import redirect, render

router = page_router()

FIELDS_PATH = "/admin/custom-fields"
METRICS_PATH = "/admin/metrics"


def _definitions(
    conn: Connection, organisation: str, list_name: str
) -> list[tuple[str, Any, Any]]:
    """Returns ``(item id, definition, raw item)`` of a list, by reference
    or name; the definition is None for an item that is not a valid one."""
    shown: list[tuple[str, Any, Any]] = []
    for item_id, raw in lists.list_items(conn, organisation, list_name).items():
        definition: Any
        try:
            if list_name == shapes.FIELD_LIST:
                definition = shapes.parse_field_definition(raw)
            else:
                definition = shapes.parse_metric_definition(raw)
        except InvalidInput:
            definition = None
        shown.append((item_id, definition, raw))
    return sorted(shown, key=lambda item: _sort_key(item[1]))


def _sort_key(definition: Any) -> str:
    if isinstance(definition, shapes.FieldDefinition):
        return definition.reference.lower()
    if isinstance(definition, shapes.MetricDefinition):
        return definition.name.lower()
    return ""


async def _page(
    request: Request,
    viewer: Viewer,
    list_name: str,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    items = await read(request, _definitions, viewer.actor.organisation, list_name)
    template = (
        "admin/custom_fields.html"
        if list_name == shapes.FIELD_LIST
        else "admin/metrics.html"
    )
    context = {
        "items": items,
        "type_pairs": [(k, k) for k in shapes.FIELD_TYPES if k != "number"],
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, template, context, status=status)


async def _save(
    request: Request,
    viewer: Viewer,
    form: FormData,
    list_name: str,
    item_id: str | None,
) -> Response:
    """Adds (no ``item_id``) or replaces a definition; on bad input the
    page comes back with the message next to that form, nothing written."""
    key = item_id or "create"
    try:
        if list_name == shapes.FIELD_LIST:
            value = _field_item(form)
        else:
            value = _metric_item(form)
        if item_id is None:
            await write(request, lists.add_item, viewer.actor, list_name, value)
        else:
            await write(request, _replace, viewer.actor, list_name, item_id, value)
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        typed = {k: v for k, v in form.items() if isinstance(v, str)}
        return await _page(
            request,
            viewer,
            list_name,
            errors={key: exc.message},
            values={key: typed},
            status=400,
        )
    path = FIELDS_PATH if list_name == shapes.FIELD_LIST else METRICS_PATH
    what = "Custom field" if list_name == shapes.FIELD_LIST else "Metric"
    name = value.get("reference") or value["name"]
    return redirect(path, f"{what} {name} {'saved' if item_id else 'created'}.")


def _replace(
    conn: Connection,
    actor: Actor,
    list_name: str,
    item_id: str,
    value: dict[str, Any],
) -> str:
    current = lists.list_items(conn, actor.organisation, list_name).get(item_id)
    if current is None:
        raise NotFound(f"there is no such definition (item {item_id[:64]})")
    # The reference or name is what cases and templates hold values under.
    key = "reference" if list_name == shapes.FIELD_LIST else "name"
    if isinstance(current, dict):
        value[key] = current.get(key)
    return lists.replace_item(conn, actor, item_id, value)


def _field_item(form: FormData) -> dict[str, Any]:
    kind = forms.choice(form, "type", "Type", shapes.FIELD_TYPES)
    reference = forms.text(form, "reference")
    name = forms.text(form, "name")
    return {
        "reference": reference,
        "name": name,
        "description": forms.text(form, "description"),
        "type": kind,
        "options": _options(form, reference, name, kind),
        "mandatory": forms.checked(form, "mandatory"),
    }


def _options(form: FormData, reference: str, name: str, kind: str) -> list[Any]:
    lines = forms.lines(form, "options")
    if lines and kind == "boolean":
        raise InvalidInput("Options: a yes/no field takes no options")
    probe = shapes.FieldDefinition(reference, name or reference, "", kind)
    options = []
    for line in lines:
        try:
            options.append(custom_values.typed_value(probe, line))
        except InvalidInput as exc:
            reason = exc.message.split(": ", 1)[-1]
            raise InvalidInput(f"Options: {reason}") from None
    return list(dict.fromkeys(options))


def _metric_item(form: FormData) -> dict[str, Any]:
    return {
        "name": forms.text(form, "name"),
        "title": forms.text(form, "title"),
        "description": forms.text(form, "description"),
    }


async def _remove(
    request: Request, list_name: str, item_id: str, path: str, message: str
) -> Response:
    viewer, _ = await posted_form_as(request, "admin")
    await write(request, _remove_item, viewer.actor, list_name, item_id)
    return redirect(path, message)


def _remove_item(conn: Connection, actor: Actor, list_name: str, item_id: str) -> None:
    if item_id not in lists.list_items(conn, actor.organisation, list_name):
        raise NotFound(f"there is no such definition (item {item_id[:64]})")
    lists.remove_item(conn, actor, item_id)


# -- custom fields -----------------------------------------------------------


@router.get(FIELDS_PATH)
async def field_list(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    return await _page(request, viewer, shapes.FIELD_LIST)


@router.post(FIELDS_PATH)
async def create_field(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    return await _save(request, viewer, form, shapes.FIELD_LIST, None)


@router.post(FIELDS_PATH + "/{item_id}")
async def change_field(request: Request, item_id: str) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    return await _save(request, viewer, form, shapes.FIELD_LIST, item_id)


@router.post(FIELDS_PATH + "/{item_id}/remove")
async def remove_field(request: Request, item_id: str) -> Response:
    return await _remove(
        request,
        shapes.FIELD_LIST,
        item_id,
        FIELDS_PATH,
        "Custom field removed; cases and templates that have a value keep it.",
    )


# -- metrics -----------------------------------------------------------------


@router.get(METRICS_PATH)
async def metric_list(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    return await _page(request, viewer, shapes.METRIC_LIST)


@router.post(METRICS_PATH)
async def create_metric(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    return await _save(request, viewer, form, shapes.METRIC_LIST, None)


@router.post(METRICS_PATH + "/{item_id}")
async def change_metric(request: Request, item_id: str) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    return await _save(request, viewer, form, shapes.METRIC_LIST, item_id)


@router.post(METRICS_PATH + "/{item_id}/remove")
async def remove_metric(request: Request, item_id: str) -> Response:
    return await _remove(
        request,
        shapes.METRIC_LIST,
        item_id,
        METRICS_PATH,
        "Metric removed; cases and templates that have a value keep it.",
    )
