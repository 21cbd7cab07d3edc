"""Reading the audit trail back: the live stream, the flow and a case's
history. Audit ids grow with every record, so a reader keeps its place
with the last id it has seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select

from cerana.store import models, records, tables

MAX_EVENTS = 500
# Audited model names and where their rows live.
_MODELS = {
    name: models.MODELS[name]
    for name in ("case", "case_task", "case_task_log", "case_artifact", "user")
}


def last_audit_id(conn: Connection) -> int:
    """Returns the id of the newest audit record (0 when there is none)."""
    return int(
        conn.execute(select(func.coalesce(func.max(tables.audit.c.id), 0))).scalar_one()
    )


def audits_after(
    conn: Connection,
    organisation: str,
    cursor: int,
    *,
    root_id: str | None = None,
    limit: int = MAX_EVENTS,
) -> list[RowMapping]:
    """Returns audit records newer than ``cursor``, oldest first."""
    audit = tables.audit
    where = [audit.c.id > cursor, audit.c.organisation == organisation]
    if root_id is not None:
        where.append(audit.c.root_id == root_id)
    return list(
        conn.execute(
            select(audit).where(*where).order_by(audit.c.id).limit(limit)
        ).mappings()
    )


def recent_audits(
    conn: Connection,
    organisation: str,
    *,
    root_id: str | None,
    count: int,
    base_only: bool = True,
) -> tuple[list[RowMapping], int]:
    """Returns the newest audit records (newest first) and how many match,
    leaving users out as TheHive's flow does."""
    audit = tables.audit
    where = [audit.c.organisation == organisation, audit.c.object_type != "user"]
    if base_only:
        where.append(audit.c.base.is_(True))
    if root_id is not None:
        where.append(audit.c.root_id == root_id)
    rows = (
        conn.execute(
            select(audit).where(*where).order_by(audit.c.id.desc()).limit(count)
        )
        .mappings()
        .all()
    )
    total = records.count(conn, audit, *where)
    return list(rows), total


def request_summaries(
    conn: Connection, request_ids: Sequence[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """Returns, per request id, how many operations it did on each type."""
    if not request_ids:
        return {}
    audit = tables.audit
    rows = conn.execute(
        select(audit.c.request_id, audit.c.object_type, audit.c.operation, func.count())
        .where(audit.c.request_id.in_(list(set(request_ids))))
        .group_by(audit.c.request_id, audit.c.object_type, audit.c.operation)
    )
    summaries: dict[str, dict[str, dict[str, int]]] = {}
    for request_id, object_type, operation, number in rows:
        summaries.setdefault(request_id, {}).setdefault(object_type, {})[operation] = (
            number
        )
    return summaries


def current_objects(
    conn: Connection, organisation: str, audits: Sequence[RowMapping]
) -> dict[tuple[str, str], Any]:
    """Returns the current rows of the objects the audits are about."""
    wanted: dict[str, set[str]] = {}
    for row in audits:
        if row["object_type"] in _MODELS:
            wanted.setdefault(row["object_type"], set()).add(row["object_id"])
    found: dict[tuple[str, str], Any] = {}
    for name, ids in wanted.items():
        for object_id, row in records.fetch_many(
            conn, _MODELS[name], list(ids), organisation
        ).items():
            found[(name, object_id)] = row
    return found
