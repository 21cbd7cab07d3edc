"""Task logs: the analyst's notebook, in markdown, with one attachment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping

from cerana.domain import attributes as attrs
from cerana.domain.dates import now_ms
from cerana.domain.identifiers import new_id
from cerana.services import tasks as task_service
from cerana.services.attachments import Upload, store_upload
from cerana.services.audit import audited_details, record_audit
from cerana.services.context import Actor
from cerana.store import models, records
from cerana.store.attachments import AttachmentStore
from cerana.store.rows import Row


def create_log(
    conn: Connection,
    actor: Actor,
    task_id: str,
    body: Mapping[str, Any],
    *,
    upload: Upload | None = None,
    store: AttachmentStore | None = None,
    max_size: int = 0,
) -> dict[str, Any]:
    """Writes a log on a task; the task's first log sets it InProgress.

    Returns the log row. Raises NotFound for a missing task or deleted case.
    """
    task = task_service.require_task(conn, actor.organisation, task_id)
    fields = dict(body)
    fields.setdefault("owner", actor.login)
    values = attrs.check_create(attrs.LOG, fields)
    if upload is not None and store is not None:
        values.update(store_upload(conn, store, upload, max_size))
    values.update(
        id=new_id(),
        task_id=task_id,
        case_id=task["case_id"],
        organisation=actor.organisation,
        created_by=actor.login,
        created_at=now_ms(),
        version=1,
    )
    records.insert_record(conn, models.LOG, values)
    _audit(conn, actor, "Creation", values, audited_details(attrs.LOG, values))
    task_service.start_task_on_first_log(conn, actor, task)
    return values


def get_log(conn: Connection, organisation: str, log_id: str) -> RowMapping:
    """Returns the log row; raises NotFound."""
    return records.fetch(conn, models.LOG, log_id, organisation)


def update_log(
    conn: Connection, actor: Actor, log_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Applies a PATCH body to a log; returns the new row."""
    current = get_log(conn, actor.organisation, log_id)
    changes = attrs.check_update(attrs.LOG, body)
    updated = records.update_record(
        conn, models.LOG, current, changes, actor=actor.login, at=now_ms()
    )
    _audit(conn, actor, "Update", updated, audited_details(attrs.LOG, changes))
    return updated


def delete_log(conn: Connection, actor: Actor, log_id: str) -> None:
    """Soft-deletes a log."""
    current = get_log(conn, actor.organisation, log_id)
    records.update_record(
        conn, models.LOG, current, {"status": "Deleted"}, actor=actor.login, at=now_ms()
    )
    _audit(conn, actor, "Delete", current, {})


def _audit(
    conn: Connection,
    actor: Actor,
    operation: str,
    log: Row,
    details: Mapping[str, Any],
) -> None:
    record_audit(
        conn,
        actor,
        operation=operation,
        spec=attrs.LOG,
        object_id=log["id"],
        root_id=log["case_id"],
        details=details,
    )
