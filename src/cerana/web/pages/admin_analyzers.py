"""Administration of the embedded engine: analyzers with their
configuration, and auto-run rules (admin role).

Secrets never leave the server: the page says whether each is set, and a
secret field left empty keeps the stored value. Saving goes through
`cerana.analysis.configuration.update_configuration`, as the Cortex API's
``PATCH /cortex/api/analyzerconfig/{name}`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.analysis import configuration
from cerana.analysis.catalog import CatalogEntry
from cerana.analysis.engine import Engine, engine_for
from cerana.analysis.secrets import MASK, is_secret
from cerana.api.deps import platform
from cerana.connectors.cortex import autorun
from cerana.domain.errors import CeranaError
from cerana.services.context import Actor
from cerana.web import choices, forms
from cerana.web.database import read, write
from cerana.web.routing import page_router
from cerana.web.session import (
    Viewer,
    checked_form,
    posted_form_as,
    signed_in,
    signed_in_as,
)
from cerana.web.templating import redirect, render

router = page_router()

FIELD_PREFIX = "item_"
# The engine keys administrators tune most, offered after each analyzer's
# own items; the others stay settable through the Cortex API.
LIMIT_ITEMS = (
    ("concurrency", "Jobs of this analyzer running at once"),
    ("rate", "Jobs allowed per rate unit"),
    ("rate_unit", "Second, Minute, Hour, Day or Month"),
    ("job_timeout", "Minutes before a job is stopped"),
    ("job_cache", "Minutes a report is reused for the same observable"),
)


@router.get("/admin/analyzers")
async def analyzer_list(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    return await _analyzers_page(request, viewer)


async def _analyzers_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    engine = engine_for(platform(request))
    view = await read(request, _load_analyzers, viewer.actor, engine)
    view["errors"] = errors or {}
    return render(request, "analysis/admin.html", view, status=status)


def _load_analyzers(conn: Connection, actor: Actor, engine: Engine) -> dict[str, Any]:
    stored = configuration.load_stored(conn, actor.organisation, engine.box)
    entries = sorted(engine.catalog.all(), key=lambda e: (e.name.lower(), e.version))
    return {
        "analyzers": [_shown(entry, engine, stored) for entry in entries],
        "rules": autorun.list_rules(conn, actor.organisation),
        "datatypes": choices.datatypes(conn, actor.organisation),
        "embedded": engine.settings.cortex_embedded,
    }


def _shown(
    entry: CatalogEntry, engine: Engine, stored: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """An analyzer as the page shows it: secrets only as set or not set."""
    merged = configuration.merged_configuration(entry, engine.file_tables, stored)
    items = []
    for item in _editable(entry.configuration_items):
        name = str(item["name"])
        value = merged.get(name)
        secret = is_secret(name)
        items.append(
            {
                "name": name,
                "type": item.get("type", "string"),
                "multi": bool(item.get("multi")),
                "description": item.get("description", ""),
                "required": bool(item.get("required")),
                "secret": secret,
                "is_set": value not in (None, "", []),
                "value": None if secret else value,
            }
        )
    return {"entry": entry, "items": items}


def _editable(declared: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    items = list(declared)
    names = {item["name"] for item in items}
    for key, description in LIMIT_ITEMS:
        if key not in names:
            kind = configuration.ENGINE_KEYS[key]
            items.append({"name": key, "type": kind, "description": description})
    return items


@router.post("/admin/analyzers/{name}")
async def save_analyzer(request: Request, name: str) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    engine = engine_for(platform(request))
    try:
        await write(request, _save, viewer.actor, engine, name, form)
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await _analyzers_page(
            request, viewer, errors={name: exc.message}, status=400
        )
    return redirect(
        f"/admin/analyzers#analyzer-{name}", f"Configuration of {name} saved."
    )


def _save(
    conn: Connection, actor: Actor, engine: Engine, name: str, form: FormData
) -> None:
    items = configuration.configuration_items(engine.catalog, name)
    stored = configuration.load_stored(conn, actor.organisation, engine.box)
    current = stored.get(name, {})
    # The stored record is replaced whole: what the form does not show
    # (engine keys set through the API) is kept, as is a secret left empty.
    values: dict[str, Any] = {key: MASK for key in current}
    for item in _editable(items):
        key = str(item["name"])
        raw = forms.text(form, FIELD_PREFIX + key)
        if raw == "":
            if not is_secret(key):
                values.pop(key, None)
            continue
        values[key] = _typed(
            raw, str(item.get("type", "string")), bool(item.get("multi"))
        )
    configuration.update_configuration(
        conn, engine.catalog, engine.box, actor.organisation, actor.login, name, values
    )


def _typed(raw: str, kind: str, multi: bool) -> Any:
    """Reads a form field as its item's type; a value that is not leaves
    as typed, for the configuration check to name it."""
    if multi:
        return [
            _typed(line.strip(), kind, False)
            for line in raw.splitlines()
            if line.strip()
        ]
    if kind == "number":
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    return raw


@router.post("/admin/analyzers/autorun/add")
async def add_rule(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    body = {
        "dataType": forms.text(form, "data_type"),
        "analyzers": forms.ids(form, "analyzer"),
    }
    try:
        await write(request, autorun.create_rule, viewer.actor, body)
    except CeranaError as exc:
        if exc.status in (401, 403):
            raise
        return await _analyzers_page(
            request, viewer, errors={"autorun": exc.message}, status=400
        )
    return redirect("/admin/analyzers#autorun", "Auto-run rule added.")


@router.post("/admin/analyzers/autorun/{rule_id}/delete")
async def delete_rule(request: Request, rule_id: str) -> Response:
    viewer = await signed_in(request)
    await checked_form(request, viewer)
    viewer.require("admin")
    await write(request, autorun.delete_rule, viewer.actor, rule_id)
    return redirect("/admin/analyzers#autorun", "Auto-run rule deleted.")
