"""Rows rendered as TheHive 3 entity JSON.

Wire names come from the attribute specs; every entity also carries ``id``,
``_id``, ``_type``, ``_routing``, ``_parent`` and ``_version``, as TheHive
3.0.6+ emits them. Sensitive attributes never leave the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from cerana.domain import attributes as attrs
from cerana.domain.attributes import EntitySpec
from cerana.store.rows import Row

Attachments = Mapping[str, Row]

_ATTACHMENT_COLUMNS = ("attachment_id", "attachment_name", "attachment_content_type")


def render_entity(
    spec: EntitySpec,
    row: Row,
    *,
    routing: str | None = None,
    parent: str | None = None,
    attachments: Attachments | None = None,
) -> dict[str, Any]:
    """Returns the JSON object of one row of ``spec``'s entity."""
    body: dict[str, Any] = {}
    for attribute in spec.attributes.values():
        if attribute.sensitive or attribute.column in _ATTACHMENT_COLUMNS:
            continue
        try:
            # Indexing, not .get(): on a RowMapping, .get() is the generic
            # Mapping one, several times slower, and this runs per column.
            value = row[attribute.column]
        except KeyError:  # a partial row
            continue
        if value is not None:
            body[attribute.name] = value
    record_id = row["id"]
    body.update(
        id=record_id,
        _id=record_id,
        _type=spec.model,
        _routing=routing or record_id,
        _parent=parent,
        _version=row.get("version", 1),
    )
    if row.get("attachment_id"):
        body["attachment"] = render_attachment(
            row, (attachments or {}).get(row["attachment_id"])
        )
    return body


def render_attachment(row: Row, stored: Row | None) -> dict[str, Any]:
    """TheHive's attachment object: name, hashes, size, contentType, id."""
    sha256 = row["attachment_id"]
    hashes = [sha256] if stored is None else [sha256, stored["sha1"], stored["md5"]]
    return {
        "name": row["attachment_name"],
        "hashes": hashes,
        "size": None if stored is None else stored["size"],
        "contentType": row["attachment_content_type"],
        "id": sha256,
    }


def render_case(row: Row) -> dict[str, Any]:
    return render_entity(attrs.CASE, row)


def render_task(row: Row) -> dict[str, Any]:
    return render_entity(attrs.TASK, row, routing=row["case_id"], parent=row["case_id"])


def render_log(row: Row, attachments: Attachments | None = None) -> dict[str, Any]:
    return render_entity(
        attrs.LOG,
        row,
        routing=row["case_id"],
        parent=row["task_id"],
        attachments=attachments,
    )


def render_observable(
    row: Row, attachments: Attachments | None = None
) -> dict[str, Any]:
    body = render_entity(
        attrs.OBSERVABLE,
        row,
        routing=row["case_id"],
        parent=row["case_id"],
        attachments=attachments,
    )
    if "data" not in body and "attachment" not in body:
        body["data"] = None
    body.setdefault("reports", {})
    body.setdefault("tags", [])
    return body


def render_user(row: Row, *, with_preferences: bool = False) -> dict[str, Any]:
    body = render_entity(attrs.USER, row)
    body.pop("login", None)
    body["login"] = row["id"]
    body["hasKey"] = bool(row.get("key_hash"))
    body["hasPassword"] = bool(row.get("password_hash"))
    if with_preferences:
        try:
            body["preferences"] = orjson.loads(row.get("preferences") or "{}")
        except orjson.JSONDecodeError:
            body["preferences"] = {}
    return body


def _case_with(row: Row, attachments: Attachments | None) -> dict[str, Any]:
    return render_case(row)


def _task_with(row: Row, attachments: Attachments | None) -> dict[str, Any]:
    return render_task(row)


def _user_with(row: Row, attachments: Attachments | None) -> dict[str, Any]:
    return render_user(row)


Renderer = Callable[[Row, "Attachments | None"], dict[str, Any]]

# How each audited model is rendered, given its row and known attachments.
RENDERERS: dict[str, Renderer] = {
    "case": _case_with,
    "case_task": _task_with,
    "case_task_log": render_log,
    "case_artifact": render_observable,
    "user": _user_with,
}
