"""Case templates: define, search, apply, export and import them (#5).

Templates are admin-managed and, as in TheHive 3, not audited; changes are
logged instead. Every value a template carries is checked as a case's would
be: task owners must be users, metric and custom field defaults must match
their definitions. A template is looked up by its exact name when a case
is opened from it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.exc import IntegrityError

from cerana.domain import attributes as attrs
from cerana.domain import templates as shapes
from cerana.domain.dates import now_ms
from cerana.domain.errors import (
    AttributeCheckingError,
    AttributeProblem,
    Conflict,
    Forbidden,
    InvalidInput,
    invalid_format,
)
from cerana.domain.identifiers import new_id
from cerana.services import custom_fields
from cerana.services.context import Actor
from cerana.store import models, records, tables

logger = logging.getLogger(__name__)


@dataclass
class ImportOutcome:
    """What an import wrote: the template rows and the definitions it added."""

    templates: list[dict[str, Any]] = field(default_factory=list)
    created_fields: list[str] = field(default_factory=list)
    created_metrics: list[str] = field(default_factory=list)


def create_template(
    conn: Connection, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Creates a template from a TheHive template body (admin only).

    Returns the row. Raises AttributeCheckingError naming each bad field
    (an unknown task owner, a default of the wrong type, an undefined custom
    field or metric) and Conflict when the name is taken; nothing is
    written then.
    """
    _require_admin(actor)
    fields = _client_fields(body)
    shapes.check_name(fields.get("name"))
    values = attrs.check_create(attrs.CASE_TEMPLATE, fields)
    values["tags"] = values.get("tags") or []
    _check_contents(conn, actor.organisation, values)
    values.update(
        id=new_id(),
        organisation=actor.organisation,
        created_by=actor.login,
        created_at=now_ms(),
        version=1,
    )
    _insert(conn, values)
    logger.info("case template %s created by %s", values["name"], actor.login)
    return values


def get_template(conn: Connection, organisation: str, template_id: str) -> RowMapping:
    """Returns the template row; raises NotFound."""
    return records.fetch(conn, models.CASE_TEMPLATE, template_id, organisation)


def find_template(conn: Connection, organisation: str, name: str) -> RowMapping | None:
    """Returns the template named exactly ``name`` (status Ok), if any."""
    table = tables.case_template
    return (
        conn.execute(
            select(table).where(
                table.c.organisation == organisation,
                table.c.name == name,
                table.c.status == "Ok",
            )
        )
        .mappings()
        .first()
    )


def list_templates(conn: Connection, organisation: str) -> list[RowMapping]:
    """Returns every template of the organisation, by name."""
    table = tables.case_template
    return list(
        conn.execute(
            select(table)
            .where(table.c.organisation == organisation)
            .order_by(table.c.name, table.c.id)
        ).mappings()
    )


def update_template(
    conn: Connection, actor: Actor, template_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Applies a PATCH body to a template (admin only); returns the new row.

    Raises as `create_template` does, and NotFound.
    """
    _require_admin(actor)
    current = get_template(conn, actor.organisation, template_id)
    fields = _client_fields(body)
    shapes.check_name(fields.get("name"))
    changes = attrs.check_update(attrs.CASE_TEMPLATE, fields)
    # An emptied list or status takes its default: the columns are NOT NULL.
    for column, default in (("tasks", []), ("status", "Ok")):
        if column in changes and changes[column] is None:
            changes[column] = default
    _check_contents(conn, actor.organisation, changes)
    if changes.get("name", current["name"]) != current["name"]:
        _check_name_free(conn, actor.organisation, changes["name"])
    try:
        with conn.begin_nested():
            updated = records.update_record(
                conn,
                models.CASE_TEMPLATE,
                current,
                changes,
                actor=actor.login,
                at=now_ms(),
            )
    except IntegrityError:
        raise Conflict(
            f"a case template named {changes['name']} exists already"
        ) from None
    logger.info("case template %s updated by %s", updated["name"], actor.login)
    return updated


def delete_template(conn: Connection, actor: Actor, template_id: str) -> None:
    """Removes a template for good (admin only), as TheHive 3 does."""
    _require_admin(actor)
    current = get_template(conn, actor.organisation, template_id)
    table = tables.case_template
    conn.execute(table.delete().where(table.c.id == current["id"]))
    logger.info("case template %s deleted by %s", current["name"], actor.login)


def apply_template(
    conn: Connection, actor: Actor, fields: Mapping[str, Any], template_name: Any
) -> dict[str, Any]:
    """Returns the fields of a new case completed by the template named
    ``template_name`` (see `cerana.domain.templates.merge_into_case`).

    ``fields`` is a TheHive case body; its ``tasks`` must already be a
    list of task objects. Raises InvalidInput naming the template when no
    template has that name (TheHive 3 ignored it silently).
    """
    if not isinstance(template_name, str):
        raise invalid_format(
            "case", "template", template_name, "string", "expected a template name"
        )
    template = find_template(conn, actor.organisation, template_name)
    if template is None:
        raise InvalidInput(f"case template '{template_name[:256]}' does not exist")
    logger.debug("case opened from template %s by %s", template_name, actor.login)
    return shapes.merge_into_case(template, fields)


def export_templates(
    conn: Connection, organisation: str, template_id: str | None = None
) -> list[dict[str, Any]]:
    """Returns one template (``template_id``) or all of them in TheHive 3's
    export format; raises NotFound for an unknown id."""
    if template_id is not None:
        return [shapes.export_template(get_template(conn, organisation, template_id))]
    return [shapes.export_template(row) for row in list_templates(conn, organisation)]


def import_templates(
    conn: Connection,
    actor: Actor,
    documents: Sequence[Any],
    *,
    create_missing: bool = False,
    source: str = "request body",
) -> ImportOutcome:
    """Creates a template from each exported document (admin only).

    A document that names custom fields or metrics nobody defined is
    refused with a message listing them all, unless ``create_missing``:
    then they are defined first, each field's type taken from its value.
    Raises as `create_template` does; the caller's transaction makes the
    whole import succeed or write nothing.
    """
    _require_admin(actor)
    bodies = [shapes.import_body(document, source) for document in documents]
    outcome = ImportOutcome()
    for body in bodies:
        name = body.get("name")
        if isinstance(name, str):  # else the template's own rules name the fault
            _define_names(conn, actor, body, name, create_missing, outcome)
        outcome.templates.append(create_template(conn, actor, body))
    return outcome


def _define_names(
    conn: Connection,
    actor: Actor,
    body: Mapping[str, Any],
    name: str,
    create_missing: bool,
    outcome: ImportOutcome,
) -> None:
    fields, metrics = custom_fields.undefined_names(conn, actor.organisation, body)
    if (fields or metrics) and not create_missing:
        raise InvalidInput(_undefined_message(name, list(fields), metrics))
    custom_fields.define_missing(conn, actor, fields, metrics, name)
    outcome.created_fields.extend(str(reference) for reference in fields)
    outcome.created_metrics.extend(metrics)


def _undefined_message(name: str, fields: list[str], metrics: list[str]) -> str:
    parts = []
    if fields:
        parts.append("custom fields " + ", ".join(fields))
    if metrics:
        parts.append("metrics " + ", ".join(metrics))
    return (
        f"case template {name} names {' and '.join(parts)} that are not defined: "
        "define them first, or import with createMissing"
    )


def _client_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(body)
    # Limitation: templates have no PAP, because TheHive 3.0 had none;
    # thehive4py 1.8 sends pap=2 (its default), which is ignored, and any
    # other value is refused rather than lost (as for cases).
    pap = fields.pop("pap", None)
    if pap is not None and pap != 2:
        raise invalid_format(
            shapes.TABLE, "pap", pap, "number", "case templates have no PAP"
        )
    return fields


def _check_contents(
    conn: Connection, organisation: str, values: dict[str, Any]
) -> None:
    if "tasks" in values:
        values["tasks"] = shapes.check_template_tasks(values["tasks"])
        _check_owners(conn, organisation, values["tasks"])
    custom_fields.check_values(
        conn,
        organisation,
        shapes.TABLE,
        values.get("custom_fields"),
        values.get("metrics"),
    )


def _check_owners(
    conn: Connection, organisation: str, tasks: list[dict[str, Any]]
) -> None:
    # Limitation: owners are checked when a template is saved, not when it is
    # applied, and an import never creates users: a template naming owners
    # of another instance is refused until they exist here (#5).
    owners = shapes.task_owners(tasks)
    if not owners:
        return
    user = tables.user
    known = {
        row[0]
        for row in conn.execute(
            select(user.c.id).where(
                user.c.id.in_(list(owners)), user.c.organisation == organisation
            )
        )
    }
    problems = [
        AttributeProblem(
            "InvalidFormatAttributeError",
            "tasks.owner",
            f"Task owner {login} of task {', '.join(titles)} is not a user",
            value=login,
            format="user",
        )
        for login, titles in owners.items()
        if login not in known
    ]
    if problems:
        raise AttributeCheckingError(shapes.TABLE, problems)


def _check_name_free(conn: Connection, organisation: str, name: str) -> None:
    table = tables.case_template
    taken = conn.execute(
        select(table.c.id).where(
            table.c.organisation == organisation, table.c.name == name
        )
    ).first()
    if taken is not None:
        raise Conflict(f"a case template named {name} exists already")


def _insert(conn: Connection, values: dict[str, Any]) -> None:
    _check_name_free(conn, values["organisation"], values["name"])
    try:
        with conn.begin_nested():
            records.insert_record(conn, models.CASE_TEMPLATE, values)
    except IntegrityError:
        # Another transaction took the name between the check and the insert.
        raise Conflict(
            f"a case template named {values['name']} exists already"
        ) from None


def _require_admin(actor: Actor) -> None:
    if not actor.has_role("admin"):
        raise Forbidden("managing case templates needs the admin role")
