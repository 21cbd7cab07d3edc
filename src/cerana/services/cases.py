"""Cases: open, update, close, delete, link and merge.

Every function takes the open transaction and the acting user, writes the
audit trail in that transaction, and returns plain rows (dicts of columns).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, select

from cerana.domain import attributes as attrs
from cerana.domain.dates import now_ms
from cerana.domain.errors import (
    CeranaError,
    Forbidden,
    InvalidInput,
    NotFound,
    invalid_format,
)
from cerana.domain.identifiers import new_id
from cerana.services import custom_fields
from cerana.services import tasks as task_service
from cerana.services import templates as case_templates
from cerana.services.audit import audited_details, record_audit
from cerana.services.context import Actor
from cerana.store import models, records, tables

logger = logging.getLogger(__name__)

MAX_TASKS_PER_REQUEST = 1000


def create_case(
    conn: Connection, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Opens a case from a TheHive case body; returns the case row.

    ``tasks`` (a list of task bodies) are created with the case, and
    ``template`` names a case template to apply. The case number is the
    organisation's next one. Raises AttributeCheckingError for bad fields
    (custom fields and metrics are checked against their definitions) and
    InvalidInput for an unknown template; nothing is written then.
    """
    fields = dict(body)
    task_bodies = _task_bodies(fields.pop("tasks", None))
    template_name = fields.pop("template", None)
    if template_name not in (None, ""):  # thehive4py sends null without one
        with_tasks = {**fields, "tasks": task_bodies}
        fields = case_templates.apply_template(conn, actor, with_tasks, template_name)
        task_bodies = fields.pop("tasks")
    _drop_client_pap(fields)
    if fields.get("owner") is None:  # null takes the default, as in TheHive
        fields["owner"] = actor.login
    values = attrs.check_create(attrs.CASE, fields)
    custom_fields.check_case_values(conn, actor.organisation, values)
    now = now_ms()
    values.update(
        id=new_id(),
        number=records.next_number(conn, actor.organisation, "case"),
        organisation=actor.organisation,
        created_by=actor.login,
        created_at=now,
        version=1,
        merge_from=None,
        tags=values.get("tags") or [],
    )
    records.insert_record(conn, models.CASE, values)
    _audit(conn, actor, "Creation", values["id"], audited_details(attrs.CASE, values))
    for index, task_body in enumerate(task_bodies):
        task_body = dict(task_body)
        task_body.setdefault("order", index)
        task_service.create_task(conn, actor, values["id"], task_body)
    logger.debug("case #%s created by %s", values["number"], actor.login)
    return values


def _task_bodies(raw: Any) -> list[Mapping[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise InvalidInput("tasks must be a list of task objects")
    if len(raw) > MAX_TASKS_PER_REQUEST:
        raise InvalidInput(
            f"a case can be created with at most {MAX_TASKS_PER_REQUEST} tasks"
        )
    # thehive4py serialises its CaseTask objects whole, with "id": null.
    return [{k: v for k, v in t.items() if k != "id" or v is not None} for t in raw]


def _drop_client_pap(fields: dict[str, Any]) -> None:
    # Limitation: cases have no PAP, because TheHive 3.0 had none; thehive4py
    # 1.8 sends pap=2 (its default) with every case, so that value is
    # ignored, and any other is refused rather than silently lost.
    pap = fields.pop("pap", None)
    if pap is not None and pap != 2:
        raise invalid_format(
            "case", "pap", pap, "number", "cases have no PAP in TheHive 3.0"
        )


def get_case(conn: Connection, organisation: str, case_id: str) -> RowMapping:
    """Returns the case row; raises NotFound."""
    return records.fetch(conn, models.CASE, case_id, organisation)


def find_case_by_number(
    conn: Connection, organisation: str, number: int
) -> RowMapping | None:
    """Returns the case numbered ``number`` (any status), or None."""
    table = tables.case
    return (
        conn.execute(
            select(table).where(
                table.c.organisation == organisation, table.c.number == number
            )
        )
        .mappings()
        .first()
    )


def update_case(
    conn: Connection,
    actor: Actor,
    case_id: str,
    body: Mapping[str, Any],
    *,
    expected_version: int | None = None,
    require_metrics: bool = False,
) -> dict[str, Any]:
    """Applies a PATCH body to a case and returns the new row.

    Resolving sets ``endDate`` (when absent) and clears the flag, then
    closes the case's tasks; reopening removes ``endDate``. Resolving needs
    the mandatory custom fields set and, with ``require_metrics`` (setting
    ``metrics_required_to_close``), the case's metrics too. Raises
    VersionConflict when ``expected_version`` is stale.
    """
    current = get_case(conn, actor.organisation, case_id)
    _check_version(current, expected_version)
    fields = dict(body)
    _drop_client_pap(fields)
    changes = attrs.check_update(attrs.CASE, fields)
    custom_fields.check_case_update(
        conn, actor.organisation, current, changes, require_metrics=require_metrics
    )
    _apply_status_hooks(current, changes)
    updated = records.update_record(
        conn, models.CASE, current, changes, actor=actor.login, at=now_ms()
    )
    _audit(conn, actor, "Update", case_id, audited_details(attrs.CASE, changes))
    if changes.get("status") == "Resolved" and current["status"] != "Resolved":
        task_service.close_open_tasks(conn, actor, case_id)
        logger.info("case #%s closed by %s", current["number"], actor.login)
    return updated


def _check_version(current: RowMapping, expected: int | None) -> None:
    from cerana.domain.errors import VersionConflict

    if expected is not None and expected != current["version"]:
        raise VersionConflict(
            f"case {current['id']} is at version {current['version']}, "
            f"not {expected}; reload it and try again"
        )


def _apply_status_hooks(current: RowMapping, changes: dict[str, Any]) -> None:
    status = changes.get("status")
    if status == "Resolved":
        if changes.get("end_date") is None and current["end_date"] is None:
            changes["end_date"] = now_ms()
        changes["flag"] = False
    elif status == "Open":
        changes["end_date"] = None


def bulk_update_cases(
    conn: Connection,
    actor: Actor,
    ids: Sequence[str],
    body: Mapping[str, Any],
    *,
    require_metrics: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Updates many cases; returns (updated rows, error objects).

    Each case is updated in a savepoint, so one bad id does not undo the
    others, as TheHive's multi-result answer expects.
    """
    done: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for case_id in ids:
        try:
            with conn.begin_nested():
                done.append(
                    update_case(
                        conn, actor, case_id, body, require_metrics=require_metrics
                    )
                )
        except CeranaError as exc:
            failed.append({**exc.to_json(), "object": {"id": case_id}})
    return done, failed


def delete_case(conn: Connection, actor: Actor, case_id: str) -> None:
    """Soft-deletes a case: its status becomes Deleted."""
    current = get_case(conn, actor.organisation, case_id)
    records.update_record(
        conn,
        models.CASE,
        current,
        {"status": "Deleted"},
        actor=actor.login,
        at=now_ms(),
    )
    _audit(conn, actor, "Delete", case_id, {})
    logger.info("case #%s deleted by %s", current["number"], actor.login)


def force_delete_case(conn: Connection, actor: Actor, case_id: str) -> None:
    """Removes a case and everything under it (admin only).

    Tasks, logs, observables and the case's audit records go; attachment
    files stay, as other records may share them by content.
    """
    if not actor.has_role("admin"):
        raise Forbidden("deleting a case for good needs the admin role")
    current = get_case(conn, actor.organisation, case_id)
    task_ids = [
        r[0]
        for r in conn.execute(
            select(tables.task.c.id).where(tables.task.c.case_id == case_id)
        )
    ]
    records.delete_records(conn, tables.task_log, "task_id", task_ids)
    records.delete_records(conn, tables.audit, "root_id", [case_id])
    conn.execute(tables.case.delete().where(tables.case.c.id == case_id))
    _audit(conn, actor, "Delete", case_id, audited_details(attrs.CASE, current))
    logger.info("case #%s removed for good by %s", current["number"], actor.login)


def case_stats(conn: Connection, case_id: str) -> dict[str, Any]:
    """Returns TheHive's ``stats`` of a case: task counts by status and the
    number of observables, plus the cases it was merged from or into."""
    task = tables.task
    by_status: dict[str, int] = dict(
        conn.execute(
            select(task.c.status, func.count())
            .where(task.c.case_id == case_id)
            .group_by(task.c.status)
        ).all()
    )
    observables = records.count(
        conn,
        tables.observable,
        tables.observable.c.case_id == case_id,
        tables.observable.c.status == "Ok",
    )
    tasks = {
        status: by_status.get(status, 0)
        for status in ("Waiting", "InProgress", "Completed")
    }
    tasks["total"] = sum(v for k, v in by_status.items() if k != "Cancel")
    return {"tasks": tasks, "artifacts": {"count": observables}, "alerts": []}


def linked_cases(
    conn: Connection, organisation: str, case_id: str, limit: int = 100
) -> list[tuple[RowMapping, list[RowMapping]]]:
    """Returns other cases sharing observables with ``case_id``.

    Each element is (case row, its matching observables), newest case first.
    Deleted and duplicate cases are left out, as in TheHive.
    """
    get_case(conn, organisation, case_id)
    mine = tables.observable.alias("mine")
    other = tables.observable.alias("other")
    case = tables.case
    matches = (
        conn.execute(
            select(other)
            .join(
                mine,
                and_(
                    mine.c.data_type == other.c.data_type,
                    mine.c.data_key == other.c.data_key,
                ),
            )
            .join(case, case.c.id == other.c.case_id)
            .where(
                mine.c.case_id == case_id,
                mine.c.status == "Ok",
                other.c.case_id != case_id,
                other.c.status == "Ok",
                case.c.status != "Deleted",
                case.c.resolution_status.is_distinct_from("Duplicated"),
                case.c.organisation == organisation,
            )
            .limit(limit * 20)
        )
        .mappings()
        .all()
    )
    grouped: dict[str, list[RowMapping]] = {}
    for row in matches:
        grouped.setdefault(row["case_id"], []).append(row)
    cases = records.fetch_many(conn, models.CASE, list(grouped)[:limit], organisation)
    ordered = sorted(cases.values(), key=lambda c: c["start_date"], reverse=True)
    return [(c, grouped[c["id"]]) for c in ordered]


def require_open_case(conn: Connection, organisation: str, case_id: str) -> RowMapping:
    """Returns the case when it exists and is not deleted; raises NotFound."""
    case = get_case(conn, organisation, case_id)
    if case["status"] == "Deleted":
        raise NotFound(f"case {case_id} not found")
    return case


def _audit(
    conn: Connection,
    actor: Actor,
    operation: str,
    case_id: str,
    details: Mapping[str, Any],
) -> None:
    record_audit(
        conn,
        actor,
        operation=operation,
        spec=attrs.CASE,
        object_id=case_id,
        root_id=case_id,
        details=details,
    )
