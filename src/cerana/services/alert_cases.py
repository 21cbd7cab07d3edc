"""Alerts into cases: open a case from an alert, or merge alerts into one.

Each alert artifact becomes an observable of the case, tagged
``src:<alert type>`` as TheHive tags it; an observable the case holds
already is not added twice (its tags are joined and it is flagged IOC if
the artifact is). Merging appends the alert's description to the case's,
in TheHive's words. The alert then points at the case and is Imported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from cerana.domain import attributes as attrs
from cerana.domain.datatypes import hash_kind
from cerana.domain.dates import now_ms
from cerana.domain.errors import InvalidInput, NotFound
from cerana.domain.identifiers import new_id
from cerana.services import alerts as alert_service
from cerana.services import cases as case_service
from cerana.services import templates
from cerana.services.attachments import attachment_rows
from cerana.services.audit import audited_details, record_audit
from cerana.services.context import Actor
from cerana.services.observables import hash_rows
from cerana.store import models, records, tables

logger = logging.getLogger(__name__)

MAX_ALERTS_PER_MERGE = 1000


def open_case_from_alert(
    conn: Connection, actor: Actor, alert_id: str, template: str | None = None
) -> RowMapping | dict[str, Any]:
    """Opens a case from an alert and returns the case row.

    The case takes the alert's title, description, severity, tags, TLP and
    date; the artifacts become its observables. An alert that has a case
    already returns that case, as in TheHive. Raises NotFound.
    """
    alert = alert_service.get_alert(conn, actor.organisation, alert_id)
    if alert["case_id"]:
        return case_service.get_case(conn, actor.organisation, alert["case_id"])
    fields: dict[str, Any] = {
        "title": alert["title"],
        "description": alert["description"],
        "severity": alert["severity"],
        "tags": alert["tags"] or None,
        "tlp": alert["tlp"],
        "startDate": alert["date"],
    }
    chosen = _template_for(conn, actor.organisation, template, alert)
    if chosen is not None:
        fields = templates.apply_template(conn, actor, fields, chosen)
    case = case_service.create_case(conn, actor, fields)
    added = _import_artifacts(conn, actor, case["id"], alert)
    alert_service.link_alert_to_case(conn, actor, alert, case["id"])
    logger.info(
        "case #%s opened from alert %s by %s (%d observables)",
        case["number"],
        alert_id,
        actor.login,
        added,
    )
    return case


def _template_for(
    conn: Connection, organisation: str, requested: str | None, alert: RowMapping
) -> str | None:
    """TheHive's choice of template: the one asked for, else the alert's
    caseTemplate, else one named like the alert's type. A template asked
    for must exist (apply_template says so); the others are used if found."""
    if requested is not None:
        return requested
    for name in (alert["case_template"], alert["type"]):
        if name and templates.find_template(conn, organisation, name) is not None:
            return str(name)
    return None


def merge_alert_into_case(
    conn: Connection, actor: Actor, alert_id: str, case_id: str
) -> RowMapping | dict[str, Any]:
    """Merges an alert into an open case; returns the case row.

    An alert that has a case already returns that case unchanged, as in
    TheHive. Raises NotFound for an unknown alert or a missing or deleted
    case.
    """
    alert = alert_service.get_alert(conn, actor.organisation, alert_id)
    if alert["case_id"]:
        return case_service.get_case(conn, actor.organisation, alert["case_id"])
    return merge_alerts_into_case(conn, actor, case_id, [alert_id])


def merge_alerts_into_case(
    conn: Connection,
    actor: Actor,
    case_id: str | None,
    alert_ids: Sequence[str],
    template: str | None = None,
) -> RowMapping | dict[str, Any]:
    """Merges several alerts into one case in one transaction; returns it.

    With no ``case_id`` a case is opened from the first alert and the
    others are merged into it. Alerts already merged into that case are
    skipped. Raises NotFound for an unknown alert or case, InvalidInput for
    an alert imported into another case: nothing is written then.
    """
    ids = list(dict.fromkeys(alert_ids))
    if not ids or len(ids) > MAX_ALERTS_PER_MERGE:
        raise InvalidInput(f"give 1 to {MAX_ALERTS_PER_MERGE} alert ids to merge")
    alerts = _load_alerts(conn, actor.organisation, ids)
    if case_id is None:
        case_id = str(open_case_from_alert(conn, actor, ids[0], template)["id"])
        alerts = alerts[1:]
    case = case_service.require_open_case(conn, actor.organisation, case_id)
    notes = []
    for alert in alerts:
        if alert["case_id"] == case_id:
            continue
        if alert["case_id"]:
            raise InvalidInput(
                f"alert {alert['id']} was imported into another case already"
            )
        _import_artifacts(conn, actor, case_id, alert)
        alert_service.link_alert_to_case(conn, actor, alert, case_id)
        notes.append(_merge_note(alert))
    if not notes:
        return case
    description = case["description"] + "".join(notes)
    merged = case_service.update_case(
        conn, actor, case_id, {"description": description}
    )
    logger.info(
        "%d alerts merged into case #%s by %s", len(notes), case["number"], actor.login
    )
    return merged


def _load_alerts(
    conn: Connection, organisation: str, ids: Sequence[str]
) -> list[RowMapping]:
    found = records.fetch_many(conn, models.ALERT, ids, organisation)
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"alert {missing[0]} not found")
    return [found[i] for i in ids]


def _merge_note(alert: RowMapping) -> str:
    # TheHive's wording, so merged cases read the same after a migration.
    return (
        f"\n  \n#### Merged with alert #{alert['source_ref']} {alert['title']}"
        f"\n\n{alert['description'].strip()}"
    )


def _import_artifacts(
    conn: Connection, actor: Actor, case_id: str, alert: RowMapping
) -> int:
    """Adds the alert's artifacts to the case as observables; returns how
    many were new. Known ones are joined, revived when deleted."""
    artifacts = alert_service.load_artifacts(conn, [alert["id"]])[alert["id"]]
    existing = _case_observables(conn, case_id)
    source_tag = f"src:{alert['type']}"
    fresh: list[dict[str, Any]] = []
    for artifact in artifacts:
        known = existing.get((artifact["data_type"], artifact["data_key"]))
        tags = list(dict.fromkeys([*artifact["tags"], source_tag]))
        if known is None:
            fresh.append(_observable_row(actor, case_id, artifact, tags))
        else:
            _join_observable(conn, actor, known, artifact, tags)
    _insert_observables(conn, actor, case_id, fresh)
    return len(fresh)


def _case_observables(
    conn: Connection, case_id: str
) -> dict[tuple[str, str], RowMapping]:
    observable = tables.observable
    rows = conn.execute(
        select(observable).where(observable.c.case_id == case_id)
    ).mappings()
    return {(row["data_type"], row["data_key"]): row for row in rows}


def _observable_row(
    actor: Actor, case_id: str, artifact: dict[str, Any], tags: list[str]
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "case_id": case_id,
        "data_type": artifact["data_type"],
        "data": artifact["data"],
        "data_key": artifact["data_key"],
        "message": artifact["message"] or "",
        "start_date": artifact["start_date"],
        "tlp": artifact["tlp"],
        "ioc": artifact["ioc"],
        "sighted": False,
        "status": "Ok",
        "reports": {},
        "tags": tags,
        "attachment_id": artifact["attachment_id"],
        "attachment_name": artifact["attachment_name"],
        "attachment_content_type": artifact["attachment_content_type"],
        "organisation": actor.organisation,
        "created_by": actor.login,
        "created_at": now_ms(),
        "updated_by": None,
        "updated_at": None,
        "version": 1,
    }


def _join_observable(
    conn: Connection,
    actor: Actor,
    known: RowMapping,
    artifact: dict[str, Any],
    tags: list[str],
) -> None:
    changes: dict[str, Any] = {}
    joined = list(dict.fromkeys([*known["tags"], *tags]))
    if joined != known["tags"]:
        changes["tags"] = joined
    if artifact["ioc"] and not known["ioc"]:
        changes["ioc"] = True
    if known["status"] == "Deleted":
        changes["status"] = "Ok"
    if not changes:
        return
    records.update_record(
        conn, models.OBSERVABLE, known, changes, actor=actor.login, at=now_ms()
    )
    _audit_observable(conn, actor, "Update", known["id"], known["case_id"], changes)


def _insert_observables(
    conn: Connection, actor: Actor, case_id: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    records.insert_records(conn, models.OBSERVABLE, rows)
    stored = attachment_rows(
        conn, {r["attachment_id"] for r in rows if r["attachment_id"]}
    )
    digests = [h for row in rows for h in hash_rows(row, _hashes(row, stored))]
    if digests:
        conn.execute(insert(tables.observable_hash), digests)
    for row in rows:
        details = audited_details(attrs.OBSERVABLE, row)
        _audit_observable(conn, actor, "Creation", row["id"], case_id, details)


def _hashes(row: dict[str, Any], stored: dict[str, dict[str, Any]]) -> list[str]:
    if row["data_type"] == "hash" and row["data"]:
        return [row["data"]] if hash_kind(row["data"]) else []
    attachment = stored.get(row["attachment_id"] or "")
    if attachment is None:
        return []
    return list(
        dict.fromkeys([attachment["id"], attachment["sha1"], attachment["md5"]])
    )


def _audit_observable(
    conn: Connection,
    actor: Actor,
    operation: str,
    observable_id: str,
    case_id: str,
    details: Any,
) -> None:
    record_audit(
        conn,
        actor,
        operation=operation,
        spec=attrs.OBSERVABLE,
        object_id=observable_id,
        root_id=case_id,
        details=details,
    )
