"""Merging two cases into a new one, by TheHive 3's rules.

The new case takes both titles, descriptions, the higher severity and TLP,
the earliest start, every tag; started tasks are copied with their logs,
waiting tasks once per title; identical observables become one. The two
source cases are then resolved as Duplicated and point to the new case.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from cerana.domain import attributes as attrs
from cerana.domain.dates import now_ms
from cerana.domain.errors import InvalidInput
from cerana.domain.identifiers import new_id
from cerana.services import cases as case_service
from cerana.services.audit import audited_details, record_audit
from cerana.services.context import Actor
from cerana.services.observables import hash_rows
from cerana.store import models, records, tables

logger = logging.getLogger(__name__)

_RESOLUTION_RANK = ("TruePositive", "Indeterminate", "FalsePositive", "Other")
_IMPACT_RANK = ("WithImpact", "NoImpact", "NotApplicable")


def merge_cases(
    conn: Connection, actor: Actor, first_id: str, second_id: str
) -> dict[str, Any]:
    """Merges two open cases into a new case and returns it.

    Raises InvalidInput when both ids are the same, NotFound when a case
    does not exist or is deleted.
    """
    if first_id == second_id:
        raise InvalidInput("a case cannot be merged with itself")
    sources = [
        case_service.require_open_case(conn, actor.organisation, i)
        for i in (first_id, second_id)
    ]
    merged = case_service.create_case(conn, actor, _merged_fields(sources))
    merged = _link_sources(conn, actor, merged, sources)
    for source in sources:
        _copy_tasks(conn, actor, source, merged["id"])
    _copy_observables(conn, actor, sources, merged["id"])
    for source in sources:
        _close_source(conn, actor, source, merged)
    logger.info(
        "cases #%s and #%s merged into #%s by %s",
        sources[0]["number"],
        sources[1]["number"],
        merged["number"],
        actor.login,
    )
    return merged


def _merged_fields(sources: Sequence[RowMapping]) -> dict[str, Any]:
    first, second = sources
    descriptions = [
        f"#### {c['title']} ([#{c['number']}](#/case/{c['id']}/details))\n\n{c['description']}"
        for c in sources
        if c["description"]
    ]
    fields: dict[str, Any] = {
        "title": f"#{first['number']}:{first['title']} / #{second['number']}:{second['title']}",
        "description": "\n  \n".join(descriptions) or "Merged case",
        "severity": max(c["severity"] for c in sources),
        "startDate": min(c["start_date"] for c in sources),
        "tags": list(dict.fromkeys(first["tags"] + second["tags"])),
        "flag": any(c["flag"] for c in sources),
        "tlp": max(c["tlp"] for c in sources),
        "owner": first["owner"],
        "metrics": _merged_metrics(sources),
        "customFields": _merged_custom_fields(sources),
    }
    resolution = _best(_RESOLUTION_RANK, [c["resolution_status"] for c in sources])
    impact = _best(_IMPACT_RANK, [c["impact_status"] for c in sources])
    summaries = [f"#{c['number']}:{c['summary']}" for c in sources if c["summary"]]
    if resolution:
        fields["resolutionStatus"] = resolution
    if impact:
        fields["impactStatus"] = impact
    if summaries:
        fields["summary"] = " / ".join(summaries)
    return fields


def _best(rank: Sequence[str], values: Sequence[str | None]) -> str | None:
    present = [v for v in values if v in rank]
    return min(present, key=rank.index) if present else None


def _merged_metrics(sources: Sequence[RowMapping]) -> dict[str, Any]:
    names = {name for c in sources for name in (c["metrics"] or {})}
    merged: dict[str, Any] = {}
    for name in names:
        numbers = [
            c["metrics"][name]
            for c in sources
            if (c["metrics"] or {}).get(name) is not None
        ]
        merged[name] = numbers[0] if len(numbers) == 1 else None
    return merged


def _merged_custom_fields(sources: Sequence[RowMapping]) -> dict[str, Any]:
    first, second = (c["custom_fields"] or {} for c in sources)
    return {
        ref: value for ref, value in first.items() if second.get(ref, value) == value
    } | {ref: value for ref, value in second.items() if ref not in first}


def _link_sources(
    conn: Connection,
    actor: Actor,
    merged: Mapping[str, Any],
    sources: Sequence[RowMapping],
) -> dict[str, Any]:
    current = case_service.get_case(conn, actor.organisation, merged["id"])
    return records.update_record(
        conn,
        models.CASE,
        current,
        {"merge_from": [c["id"] for c in sources]},
        actor=actor.login,
        at=now_ms(),
    )


def _copy_tasks(
    conn: Connection, actor: Actor, source: RowMapping, target_id: str
) -> None:
    task = tables.task
    rows = (
        conn.execute(
            select(task).where(task.c.case_id == source["id"]).order_by(task.c.order)
        )
        .mappings()
        .all()
    )
    waiting_titles = set(
        conn.execute(
            select(task.c.title).where(
                task.c.case_id == target_id, task.c.status == "Waiting"
            )
        ).scalars()
    )
    for row in rows:
        if row["status"] == "Cancel":
            continue
        if row["status"] == "Waiting":
            if row["title"] in waiting_titles:
                continue
            waiting_titles.add(row["title"])
        new_task = _copy_row(row, case_id=target_id, actor=actor)
        records.insert_record(conn, models.TASK, new_task)
        _audit(conn, actor, attrs.TASK, new_task, target_id)
        _copy_logs(conn, actor, row["id"], new_task["id"], target_id)


def _copy_logs(
    conn: Connection, actor: Actor, task_id: str, new_task_id: str, target_id: str
) -> None:
    log = tables.task_log
    rows = (
        conn.execute(select(log).where(log.c.task_id == task_id, log.c.status == "Ok"))
        .mappings()
        .all()
    )
    for row in rows:
        new_log = _copy_row(row, case_id=target_id, actor=actor, task_id=new_task_id)
        records.insert_record(conn, models.LOG, new_log)
        _audit(conn, actor, attrs.LOG, new_log, target_id)


def _copy_observables(
    conn: Connection, actor: Actor, sources: Sequence[RowMapping], target_id: str
) -> None:
    observable = tables.observable
    rows = (
        conn.execute(
            select(observable)
            .where(
                observable.c.case_id.in_([c["id"] for c in sources]),
                observable.c.status == "Ok",
            )
            .order_by(observable.c.start_date)
        )
        .mappings()
        .all()
    )
    numbers = {c["id"]: c["number"] for c in sources}
    groups: dict[tuple[str, str], list[RowMapping]] = {}
    for row in rows:
        groups.setdefault((row["data_type"], row["data_key"]), []).append(row)
    for group in groups.values():
        new_row = _merged_observable(group, numbers, target_id, actor)
        records.insert_record(conn, models.OBSERVABLE, new_row)
        hashes = (
            conn.execute(
                select(tables.observable_hash.c.hash).where(
                    tables.observable_hash.c.observable_id == group[0]["id"]
                )
            )
            .scalars()
            .all()
        )
        if hashes:
            conn.execute(insert(tables.observable_hash), hash_rows(new_row, hashes))
        _audit(conn, actor, attrs.OBSERVABLE, new_row, target_id)


def _merged_observable(
    group: Sequence[RowMapping],
    numbers: Mapping[str, int],
    target_id: str,
    actor: Actor,
) -> dict[str, Any]:
    new_row = _copy_row(group[0], case_id=target_id, actor=actor)
    if len(group) > 1:
        messages = [
            f"#{numbers[r['case_id']]}:{r['message']}" for r in group if r["message"]
        ]
        new_row.update(
            message="\n".join(messages) or None,
            start_date=min(r["start_date"] for r in group),
            tlp=min(r["tlp"] for r in group),
            tags=list(dict.fromkeys(t for r in group for t in r["tags"])),
            ioc=any(r["ioc"] for r in group),
            sighted=any(r["sighted"] for r in group),
        )
    return new_row


def _copy_row(
    row: RowMapping, *, case_id: str, actor: Actor, **changes: Any
) -> dict[str, Any]:
    copied = dict(row)
    copied.update(
        id=new_id(),
        case_id=case_id,
        created_by=actor.login,
        created_at=now_ms(),
        updated_by=None,
        updated_at=None,
        version=1,
        **changes,
    )
    return copied


def _close_source(
    conn: Connection, actor: Actor, source: RowMapping, merged: Mapping[str, Any]
) -> None:
    note = f"Merge into : {merged['title']} ([#{merged['number']}](#/case/{merged['id']}/details))"
    summary = f"{source['summary']}\n\n{note}" if source["summary"] else note
    changes = {
        "status": "Resolved",
        "resolutionStatus": "Duplicated",
        "summary": summary,
    }
    case_service.update_case(conn, actor, source["id"], changes)
    current = case_service.get_case(conn, actor.organisation, source["id"])
    records.update_record(
        conn,
        models.CASE,
        current,
        {"merge_into": merged["id"]},
        actor=actor.login,
        at=now_ms(),
    )


def _audit(
    conn: Connection,
    actor: Actor,
    spec: attrs.EntitySpec,
    row: Mapping[str, Any],
    root_id: str,
) -> None:
    record_audit(
        conn,
        actor,
        operation="Creation",
        spec=spec,
        object_id=row["id"],
        root_id=root_id,
        details=audited_details(spec, row),
    )
