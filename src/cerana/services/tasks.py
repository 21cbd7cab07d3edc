"""Tasks of a case and their status transitions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from cerana.domain import attributes as attrs
from cerana.domain.dates import now_ms
from cerana.domain.errors import InvalidInput, NotFound
from cerana.domain.identifiers import new_id
from cerana.services.audit import audited_details, record_audit
from cerana.services.context import Actor
from cerana.store import models, records, tables
from cerana.store.rows import Row

logger = logging.getLogger(__name__)

# Allowed moves between statuses. A completed or cancelled task can be
# reopened (analysts do reopen work), but nothing returns to Waiting once
# work has started, which would lose the start date's meaning.
_TRANSITIONS: dict[str, frozenset[str]] = {
    "Waiting": frozenset({"Waiting", "InProgress", "Completed", "Cancel"}),
    "InProgress": frozenset({"InProgress", "Completed", "Cancel"}),
    "Completed": frozenset({"Completed", "InProgress"}),
    "Cancel": frozenset({"Cancel", "InProgress", "Waiting"}),
}


def create_task(
    conn: Connection, actor: Actor, case_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Adds a task to a case that is not deleted; returns the task row."""
    from cerana.services.cases import require_open_case

    require_open_case(conn, actor.organisation, case_id)
    values = attrs.check_create(attrs.TASK, body)
    _apply_status_hooks(actor, None, values)
    values.update(
        id=new_id(),
        case_id=case_id,
        organisation=actor.organisation,
        created_by=actor.login,
        created_at=now_ms(),
        version=1,
    )
    records.insert_record(conn, models.TASK, values)
    _audit(conn, actor, "Creation", values, audited_details(attrs.TASK, values))
    return values


def get_task(conn: Connection, organisation: str, task_id: str) -> RowMapping:
    """Returns the task row; raises NotFound."""
    return records.fetch(conn, models.TASK, task_id, organisation)


def update_task(
    conn: Connection, actor: Actor, task_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Applies a PATCH body to a task, enforcing status transitions.

    Raises InvalidInput for a forbidden transition (Completed → Waiting).
    """
    current = get_task(conn, actor.organisation, task_id)
    changes = attrs.check_update(attrs.TASK, body)
    _apply_status_hooks(actor, current, changes)
    updated = records.update_record(
        conn, models.TASK, current, changes, actor=actor.login, at=now_ms()
    )
    _audit(conn, actor, "Update", updated, audited_details(attrs.TASK, changes))
    return updated


def start_task_on_first_log(conn: Connection, actor: Actor, task: RowMapping) -> None:
    """Moves a Waiting task to InProgress when its first log is written."""
    if task["status"] == "Waiting":
        update_task(conn, actor, task["id"], {"status": "InProgress"})


def close_open_tasks(conn: Connection, actor: Actor, case_id: str) -> None:
    """Closes the tasks of a case being resolved: Waiting ones are
    cancelled, InProgress ones completed, as TheHive does."""
    task = tables.task
    rows = conn.execute(
        select(task).where(
            task.c.case_id == case_id, task.c.status.in_(("Waiting", "InProgress"))
        )
    ).mappings()
    for row in list(rows):
        status = "Cancel" if row["status"] == "Waiting" else "Completed"
        update_task(conn, actor, row["id"], {"status": status, "flag": False})


def _apply_status_hooks(
    actor: Actor, current: RowMapping | None, changes: dict[str, Any]
) -> None:
    status = changes.get("status")
    if status is None:
        return
    before = current["status"] if current is not None else "Waiting"
    if status not in _TRANSITIONS[before]:
        raise InvalidInput(f"a task cannot go from {before} to {status}")
    now = now_ms()
    start = current["start_date"] if current is not None else None
    if status == "InProgress" and start is None and changes.get("start_date") is None:
        changes["start_date"] = now
    if status == "Completed":
        if (current is None or current["end_date"] is None) and changes.get(
            "end_date"
        ) is None:
            changes["end_date"] = now
        changes["flag"] = False
    owner = current["owner"] if current is not None else None
    if status != "Waiting" and owner is None and changes.get("owner") is None:
        changes["owner"] = actor.login


def _audit(
    conn: Connection,
    actor: Actor,
    operation: str,
    task: Row,
    details: Mapping[str, Any],
) -> None:
    record_audit(
        conn,
        actor,
        operation=operation,
        spec=attrs.TASK,
        object_id=task["id"],
        root_id=task["case_id"],
        details=details,
    )


def require_task(conn: Connection, organisation: str, task_id: str) -> RowMapping:
    """Returns the task of a case that is not deleted; raises NotFound."""
    task = get_task(conn, organisation, task_id)
    case = conn.execute(
        select(tables.case.c.status).where(tables.case.c.id == task["case_id"])
    ).scalar()
    if case is None or case == "Deleted":
        raise NotFound(f"task {task_id} not found")
    return task
