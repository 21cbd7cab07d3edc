"""The audit trail: one typed record per create, update and delete.

Records are written in the caller's transaction, so an audit record exists
exactly when the change it describes was committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert

from cerana.domain.attributes import EntitySpec
from cerana.domain.dates import now_ms
from cerana.services import webhooks
from cerana.services.context import Actor
from cerana.store import bulk, tables
from cerana.store.rows import Row


def audited_details(spec: EntitySpec, columns: Row) -> dict[str, Any]:
    """Returns the audited attributes among ``columns``, under wire names.

    Read-only, sensitive and unaudited attributes are left out, as TheHive
    leaves them out of audit details.
    """
    details: dict[str, Any] = {}
    for attribute in spec.attributes.values():
        if attribute.readonly or attribute.sensitive or not attribute.audited:
            continue
        if attribute.model_only and attribute.column in (
            "created_by",
            "created_at",
            "updated_by",
            "updated_at",
        ):
            continue
        if attribute.column in columns:
            details[attribute.name] = columns[attribute.column]
    return details


_INSERT_AUDIT = insert(tables.audit)


def record_audit(
    conn: Connection,
    actor: Actor,
    *,
    operation: str,
    spec: EntitySpec,
    object_id: str,
    root_id: str,
    details: Mapping[str, Any],
) -> None:
    """Writes one audit record for ``operation`` on ``object_id``.

    ``operation`` is Creation, Update or Delete; ``root_id`` is the case an
    object belongs to, or the object itself for a root entity.
    """
    # Parameters apart from the statement: it is compiled once and cached,
    # where .values(...) built a new statement for every record (#4, bulk
    # ingestion writes thousands per request).
    row = _audit_row(
        actor,
        operation,
        spec,
        (object_id, root_id, details),
        actor.audited == 0,
        now_ms(),
    )
    inserted = conn.execute(_INSERT_AUDIT, row)
    actor.audited += 1
    webhooks.queue_deliveries(conn, actor.organisation, spec.model, operation, inserted)


def record_audits(
    conn: Connection,
    actor: Actor,
    *,
    operation: str,
    spec: EntitySpec,
    changes: Sequence[tuple[str, str, Mapping[str, Any]]],
) -> None:
    """Writes one audit record per ``(object_id, root_id, details)`` of
    ``changes``, as `record_audit` does for each, in one statement.

    When a webhook wants these records they are written one by one instead,
    since each delivery row names its audit record's id (#4: bulk alert
    ingestion audits a thousand alerts per request).
    """
    if webhooks.wants_deliveries(conn, actor.organisation, spec.model, operation):
        for object_id, root_id, details in changes:
            record_audit(
                conn,
                actor,
                operation=operation,
                spec=spec,
                object_id=object_id,
                root_id=root_id,
                details=details,
            )
        return
    now, first = now_ms(), actor.audited
    rows = [
        _audit_row(actor, operation, spec, change, first + number == 0, now)
        for number, change in enumerate(changes)
    ]
    bulk.insert_rows(conn, tables.audit, rows)
    actor.audited += len(rows)


def _audit_row(
    actor: Actor,
    operation: str,
    spec: EntitySpec,
    change: tuple[str, str, Mapping[str, Any]],
    base: bool,
    created_at: int,
) -> dict[str, Any]:
    """The columns of one audit record; ``change`` is (object id, root id,
    details), ``base`` whether it is the request's first record."""
    object_id, root_id, details = change
    return {
        "organisation": actor.organisation,
        "operation": operation,
        "object_type": spec.model,
        "object_id": object_id,
        "root_id": root_id,
        "request_id": actor.request_id,
        "details": dict(details),
        "created_by": actor.login,
        "base": base,
        "created_at": created_at,
    }
