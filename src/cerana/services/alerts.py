"""Alerts: ingest one or a whole feed, deduplicate, triage, delete.

(organisation, type, source, sourceRef) names an alert once. A second
creation is refused with ConflictError, as in TheHive 3, unless upsert is
asked: then the repeat is counted (``occurrences``, ``lastSeen``) and its
new artifacts and tags are merged into the alert. Artifacts are merged,
never dropped: an update adds the new ones and folds known ones together.

Every function takes the open transaction and the acting user and writes
the audit trail (object type ``alert``) in that transaction.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cerana.domain import alerts as rules
from cerana.domain import attributes as attrs
from cerana.domain.alerts import AlertDraft, ArtifactDraft
from cerana.domain.dates import now_ms
from cerana.domain.errors import CeranaError, Conflict, Forbidden, InvalidInput
from cerana.domain.identifiers import new_id, new_ids
from cerana.services import lists
from cerana.services.attachments import Upload, attachment_rows, store_upload
from cerana.services.audit import audited_details, record_audit, record_audits
from cerana.services.context import Actor
from cerana.services.observables import data_key
from cerana.store import bulk, models, records, tables
from cerana.store.attachments import AttachmentStore
from cerana.store.rows import Row

logger = logging.getLogger(__name__)

MAX_BULK_ITEMS = 10_000


@dataclass(frozen=True)
class IngestOptions:
    """Where file artifacts go, how large they may be, and whether a repeat
    of a known alert is counted (upsert) or refused."""

    store: AttachmentStore
    max_file_size: int
    upsert: bool = False


@dataclass
class AlertRecord:
    """An alert row with its artifact rows, in the order they were sent."""

    row: dict[str, Any]
    artifacts: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return str(self.row["id"])


@dataclass(frozen=True)
class ItemOutcome:
    """What became of one item of a bulk ingestion."""

    index: int
    status: int  # 201 created, 200 counted as a repeat, 4xx refused
    alert_id: str | None = None
    error: dict[str, Any] | None = None


# -- creation ----------------------------------------------------------------


def create_alert(
    conn: Connection, actor: Actor, body: Any, options: IngestOptions
) -> tuple[AlertRecord, bool]:
    """Creates an alert from a TheHive alert body; returns it and whether it
    is new (False: an upsert counted a repeat).

    Raises AttributeCheckingError naming every bad attribute or artifact,
    and Conflict when the alert exists and upsert is off.
    """
    datatypes = lists.datatypes(conn, actor.organisation)
    draft = rules.check_alert(body, datatypes, max_file_size=options.max_file_size)
    existing = _existing_rows(conn, actor.organisation, [draft.id])
    if draft.id in existing:
        return _repeat_or_refuse(conn, actor, existing[draft.id], draft, options), False
    try:
        with conn.begin_nested():
            created = _insert_new(conn, actor, [draft], options)[0]
    except IntegrityError:
        # Another transaction created it between our look-up and insert.
        current = records.fetch(conn, models.ALERT, draft.id, actor.organisation)
        return _repeat_or_refuse(conn, actor, current, draft, options), False
    logger.debug("alert %s created by %s", created.id, actor.login)
    return created, True


def ingest_alerts(
    conn: Connection, actor: Actor, bodies: Sequence[Any], options: IngestOptions
) -> list[ItemOutcome]:
    """Creates alerts from a feed; returns one outcome per item, in order.

    Good items are kept and bad ones reported: every item is checked before
    anything is written, the new alerts are then inserted together in one
    savepoint (one statement per table for the whole request), and if that
    fails they are inserted again one savepoint each, so one bad item never
    undoes the others. Repeats are counted or refused as in `create_alert`.
    """
    # Limitation: below the 5,000 alerts/s target (about 2,100/s on an
    # empty database, 420 to 610/s at 500,000 to 570,000 alerts on the
    # two-core machine, docs/performance.md), because SQLite alone spends about
    # 0.35 ms per alert keeping the three artifact indexes of a 5-million-row
    # table, and every value is checked and normalised in Python on one
    # core (#4).
    if len(bodies) > MAX_BULK_ITEMS:
        raise InvalidInput(f"at most {MAX_BULK_ITEMS} alerts can be sent at once")
    datatypes = lists.datatypes(conn, actor.organisation)
    outcomes: dict[int, ItemOutcome] = {}
    drafts: list[tuple[int, AlertDraft]] = []
    for index, body in enumerate(bodies):
        try:
            drafts.append(
                (index, rules.check_alert(body, datatypes, **_limits(options)))
            )
        except CeranaError as exc:
            outcomes[index] = _refused(index, exc)
    fresh, repeats = _split_repeats(conn, actor, drafts, options, outcomes)
    outcomes.update(_insert_fresh(conn, actor, fresh, options))
    for index, draft in repeats:
        outcomes[index] = _repeat_one(conn, actor, index, draft, options)
    _log_ingest(actor, outcomes.values())
    return [outcomes[i] for i in sorted(outcomes)]


def _limits(options: IngestOptions) -> dict[str, int]:
    return {"max_file_size": options.max_file_size}


def _split_repeats(
    conn: Connection,
    actor: Actor,
    drafts: list[tuple[int, AlertDraft]],
    options: IngestOptions,
    outcomes: dict[int, ItemOutcome],
) -> tuple[list[tuple[int, AlertDraft]], list[tuple[int, AlertDraft]]]:
    """Splits drafts into new alerts and repeats of known ones (or of an
    earlier item of the same request); refuses repeats unless upsert."""
    known = set(_existing_rows(conn, actor.organisation, [d.id for _, d in drafts]))
    fresh: list[tuple[int, AlertDraft]] = []
    repeats: list[tuple[int, AlertDraft]] = []
    for index, draft in drafts:
        if draft.id not in known:
            known.add(draft.id)
            fresh.append((index, draft))
        elif options.upsert:
            repeats.append((index, draft))
        else:
            outcomes[index] = _refused(index, _duplicate(draft.values, draft.id))
    return fresh, repeats


def _insert_fresh(
    conn: Connection,
    actor: Actor,
    fresh: list[tuple[int, AlertDraft]],
    options: IngestOptions,
) -> dict[int, ItemOutcome]:
    if not fresh:
        return {}
    try:
        with conn.begin_nested():
            created = _insert_new(conn, actor, [d for _, d in fresh], options)
        return {
            index: ItemOutcome(index, 201, record.id)
            for (index, _), record in zip(fresh, created, strict=True)
        }
    except (IntegrityError, CeranaError):
        logger.debug("batch insert of %d alerts failed; one by one", len(fresh))
    outcomes = {}
    for index, draft in fresh:
        try:
            with conn.begin_nested():
                record = _insert_new(conn, actor, [draft], options)[0]
            outcomes[index] = ItemOutcome(index, 201, record.id)
        except IntegrityError:
            outcomes[index] = _refused(index, _duplicate(draft.values, draft.id))
        except CeranaError as exc:
            outcomes[index] = _refused(index, exc)
    return outcomes


def _repeat_one(
    conn: Connection,
    actor: Actor,
    index: int,
    draft: AlertDraft,
    options: IngestOptions,
) -> ItemOutcome:
    try:
        with conn.begin_nested():
            current = records.fetch(conn, models.ALERT, draft.id, actor.organisation)
            record = _repeat(conn, actor, current, draft, options)
        return ItemOutcome(index, 200, record.id)
    except CeranaError as exc:
        return _refused(index, exc)


def _refused(index: int, exc: CeranaError) -> ItemOutcome:
    return ItemOutcome(index, exc.status, error=exc.to_json())


def _log_ingest(actor: Actor, outcomes: Sequence[ItemOutcome] | Any) -> None:
    statuses = [o.status for o in outcomes]
    created, counted = statuses.count(201), statuses.count(200)
    refused = len(statuses) - created - counted
    logger.info(
        "%d alerts imported, %d repeats counted, %d refused, from %s",
        created,
        counted,
        refused,
        actor.login,
    )


def _duplicate(values: Mapping[str, Any], identifier: str) -> Conflict:
    return Conflict(
        f"alert {identifier} (type '{values['type']}', source "
        f"'{values['source']}', sourceRef '{values['source_ref']}') already "
        "exists; send it with upsert=true to count it as a repeat"
    )


# Kept, not rebuilt per call: single-alert ingest looks one id up per
# request, and building and keying an IN statement cost more than running it.
_ALERT_BY_ID = select(tables.alert).where(
    tables.alert.c.id == bindparam("id"),
    tables.alert.c.organisation == bindparam("organisation"),
)


def _existing_rows(
    conn: Connection, organisation: str, ids: Sequence[str]
) -> dict[str, RowMapping]:
    if len(ids) == 1:
        values = {"id": ids[0], "organisation": organisation}
        row = conn.execute(_ALERT_BY_ID, values).mappings().first()
        return {} if row is None else {ids[0]: row}
    found: dict[str, RowMapping] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        found.update(
            records.fetch_many(
                conn, models.ALERT, unique[start : start + 500], organisation
            )
        )
    return found


def _insert_new(
    conn: Connection,
    actor: Actor,
    drafts: Sequence[AlertDraft],
    options: IngestOptions,
) -> list[AlertRecord]:
    now = now_ms()
    # One read of the random source for every artifact id of the batch.
    ids = iter(new_ids(sum(len(draft.artifacts) for draft in drafts)))
    created = [_new_record(conn, actor, draft, options, now, ids) for draft in drafts]
    # One executemany per table for the whole batch, handed to the driver
    # as plain tuples: SQLAlchemy's per-row parameter processing cost more
    # than SQLite's work (#4).
    bulk.insert_rows(conn, tables.alert, [r.row for r in created])
    tag_rows = [{"alert_id": r.id, "tag": t} for r in created for t in r.row["tags"]]
    bulk.insert_rows(conn, tables.alert_tag, tag_rows)
    bulk.insert_rows(
        conn, tables.alert_artifact, [a for r in created for a in r.artifacts]
    )
    changes = [(r.id, r.id, audited_details(attrs.ALERT, r.row)) for r in created]
    record_audits(conn, actor, operation="Creation", spec=attrs.ALERT, changes=changes)
    return created


def _new_record(
    conn: Connection,
    actor: Actor,
    draft: AlertDraft,
    options: IngestOptions,
    now: int,
    artifact_ids: Iterator[str],
) -> AlertRecord:
    values = draft.values
    row: dict[str, Any] = {
        "id": draft.id,
        "type": values["type"],
        "source": values["source"],
        "source_ref": values["source_ref"],
        "date": values["date"],
        "last_sync_date": now,
        "case_id": None,
        "title": values["title"],
        "description": values["description"],
        "severity": values["severity"],
        "tlp": values["tlp"],
        "status": "New",
        "follow": True,
        "case_template": values.get("case_template"),
        "tags": values.get("tags") or [],
        "occurrences": 1,
        "last_seen": now,
        "artifact_count": len(draft.artifacts),
        "organisation": actor.organisation,
        "created_by": actor.login,
        "created_at": now,
        "updated_by": None,
        "updated_at": None,
        "version": 1,
    }
    artifacts = [
        _artifact_row(
            conn,
            next(artifact_ids),
            draft.id,
            actor.organisation,
            position,
            artifact,
            options,
        )
        for position, artifact in enumerate(draft.artifacts)
    ]
    return AlertRecord(row, artifacts)


def _artifact_row(
    conn: Connection,
    artifact_id: str,
    alert_id: str,
    organisation: str,
    position: int,
    draft: ArtifactDraft,
    options: IngestOptions,
) -> dict[str, Any]:
    if draft.file is None and draft.attachment_id is None:
        attachment = _NO_ATTACHMENT
        key = data_key(draft.data or "")
    else:
        attachment = _store_file(conn, draft, options)
        key = attachment["attachment_id"] or data_key(draft.data or "")
    return {
        "id": artifact_id,
        "alert_id": alert_id,
        "organisation": organisation,
        "position": position,
        "data_type": draft.data_type,
        "data": draft.data,
        "data_key": key,
        "message": draft.message,
        "tags": draft.tags,
        "tlp": draft.tlp,
        "ioc": draft.ioc,
        "start_date": draft.start_date,
        **attachment,
    }


_NO_ATTACHMENT: Mapping[str, None] = {
    "attachment_id": None,
    "attachment_name": None,
    "attachment_content_type": None,
}


def _store_file(
    conn: Connection, draft: ArtifactDraft, options: IngestOptions
) -> dict[str, Any]:
    """Stores a file artifact's bytes; returns the attachment columns."""
    if draft.file is not None:
        upload = Upload(
            io.BytesIO(draft.file.content), draft.file.name, draft.file.content_type
        )
        return store_upload(conn, options.store, upload, options.max_file_size)
    if draft.attachment_id is not None:
        if not attachment_rows(conn, {draft.attachment_id}):
            raise InvalidInput(
                f"attachment {draft.attachment_id} of a file artifact is not "
                "stored on this server; send the file as 'name;mime;base64'"
            )
        return {
            "attachment_id": draft.attachment_id,
            "attachment_name": draft.attachment_name,
            "attachment_content_type": draft.attachment_content_type,
        }
    return dict(_NO_ATTACHMENT)


# -- repeats and updates -------------------------------------------------------


def _repeat_or_refuse(
    conn: Connection,
    actor: Actor,
    current: RowMapping,
    draft: AlertDraft,
    options: IngestOptions,
) -> AlertRecord:
    if not options.upsert:
        raise _duplicate(draft.values, draft.id)
    return _repeat(conn, actor, current, draft, options)


def _repeat(
    conn: Connection,
    actor: Actor,
    current: RowMapping,
    draft: AlertDraft,
    options: IngestOptions,
) -> AlertRecord:
    """Counts one more occurrence of ``current``; merges the repeat's
    artifacts and tags. A followed alert already looked at becomes Updated."""
    now = now_ms()
    artifacts, _ = _merge_artifacts(conn, current, draft.artifacts, options)
    changes: dict[str, Any] = {
        "occurrences": current["occurrences"] + 1,
        "last_seen": now,
        "last_sync_date": now,
        "artifact_count": len(artifacts),
    }
    tags = list(dict.fromkeys([*current["tags"], *(draft.values.get("tags") or [])]))
    if tags != current["tags"]:
        changes["tags"] = tags
    status = rules.status_after_change(current["status"], current["follow"])
    if status != current["status"]:
        changes["status"] = status
    row = records.update_record(
        conn, models.ALERT, current, changes, actor=actor.login, at=now
    )
    _audit(conn, actor, "Update", current["id"], audited_details(attrs.ALERT, changes))
    return AlertRecord(row, artifacts)


def update_alert(
    conn: Connection,
    actor: Actor,
    alert_id: str,
    body: Mapping[str, Any],
    options: IngestOptions,
) -> AlertRecord:
    """Applies a PATCH body; returns the alert with its artifacts.

    ``artifacts`` are merged into the alert's (see `_merge_artifacts`),
    never replacing it. A followed alert whose content changes becomes
    Updated unless the body sets ``status``. Raises NotFound,
    AttributeCheckingError.
    """
    current = get_alert(conn, actor.organisation, alert_id)
    datatypes = lists.datatypes(conn, actor.organisation) if "artifacts" in body else ()
    changes, drafts = rules.check_alert_update(body, datatypes, **_limits(options))
    changes = {k: v for k, v in changes.items() if current[k] != v}
    artifacts = load_artifacts(conn, [alert_id])[alert_id]
    merged = False
    if drafts:
        artifacts, merged = _merge_artifacts(conn, current, drafts, options)
    if merged:
        changes["artifact_count"] = len(artifacts)
    content_changed = merged or bool(set(changes) - {"status", "follow"})
    if content_changed and "status" not in changes:
        follow = changes.get("follow", current["follow"])
        status = rules.status_after_change(current["status"], follow)
        if status != current["status"]:
            changes["status"] = status
    return AlertRecord(_apply(conn, actor, current, changes), artifacts)


def bulk_update_alerts(
    conn: Connection,
    actor: Actor,
    ids: Sequence[str],
    body: Mapping[str, Any],
    options: IngestOptions,
) -> tuple[list[AlertRecord], list[dict[str, Any]]]:
    """Updates many alerts, each in a savepoint; returns (alerts, errors)."""
    done: list[AlertRecord] = []
    failed: list[dict[str, Any]] = []
    for alert_id in ids:
        try:
            with conn.begin_nested():
                done.append(update_alert(conn, actor, alert_id, body, options))
        except CeranaError as exc:
            failed.append({**exc.to_json(), "object": {"id": alert_id}})
    return done, failed


def _merge_artifacts(
    conn: Connection,
    alert: Row,
    drafts: Sequence[ArtifactDraft],
    options: IngestOptions,
) -> tuple[list[dict[str, Any]], bool]:
    """Merges ``drafts`` into the alert's artifacts; returns all of them and
    whether any was added or changed.

    A known (datatype, value) keeps its row: tags are joined, IOC is kept
    if either says so, a new message replaces the old and the stricter TLP
    wins. An unknown one is added at the end.
    """
    alert_id = alert["id"]
    existing = load_artifacts(conn, [alert_id])[alert_id]
    by_key = {(a["data_type"], a["data_key"]): a for a in existing}
    added: list[dict[str, Any]] = []
    changed = False
    for draft in drafts:
        known = by_key.get((draft.data_type, _draft_key(draft)))
        if known is None:
            position = len(existing) + len(added)
            row = _artifact_row(
                conn,
                new_id(),
                alert_id,
                alert["organisation"],
                position,
                draft,
                options,
            )
            by_key[(row["data_type"], row["data_key"])] = row
            added.append(row)
        elif _fold_artifact(conn, known, draft):
            changed = True
    if added:
        conn.execute(insert(tables.alert_artifact), added)
    return existing + added, changed or bool(added)


def _draft_key(draft: ArtifactDraft) -> str:
    if draft.data is not None:
        return data_key(draft.data)
    return rules.artifact_value_key(draft)


def _fold_artifact(
    conn: Connection, known: dict[str, Any], draft: ArtifactDraft
) -> bool:
    folded = {
        "tags": list(dict.fromkeys([*known["tags"], *draft.tags])),
        "ioc": known["ioc"] or draft.ioc,
        "message": draft.message if draft.message is not None else known["message"],
        "tlp": max(known["tlp"], draft.tlp),
    }
    changes = {k: v for k, v in folded.items() if known[k] != v}
    if not changes:
        return False
    table = tables.alert_artifact
    conn.execute(update(table).where(table.c.id == known["id"]).values(**changes))
    known.update(changes)
    return True


# -- reading -------------------------------------------------------------------


def get_alert(conn: Connection, organisation: str, alert_id: str) -> RowMapping:
    """Returns the alert row; raises NotFound."""
    return records.fetch(conn, models.ALERT, alert_id, organisation)


def get_alert_record(conn: Connection, organisation: str, alert_id: str) -> AlertRecord:
    """Returns the alert with its artifacts; raises NotFound."""
    row = get_alert(conn, organisation, alert_id)
    return AlertRecord(dict(row), load_artifacts(conn, [alert_id])[alert_id])


def with_artifacts(conn: Connection, rows: Sequence[Row]) -> list[AlertRecord]:
    """Returns the alert rows with their artifacts, in the same order."""
    artifacts = load_artifacts(conn, [row["id"] for row in rows])
    return [AlertRecord(dict(row), artifacts[row["id"]]) for row in rows]


def load_artifacts(
    conn: Connection, alert_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Returns the artifact rows of each alert, in position order."""
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in alert_ids}
    table = tables.alert_artifact
    for start in range(0, len(alert_ids), 500):
        chunk = list(alert_ids[start : start + 500])
        rows = conn.execute(
            select(table)
            .where(table.c.alert_id.in_(chunk))
            .order_by(table.c.alert_id, table.c.position)
        ).mappings()
        for row in rows:
            found[row["alert_id"]].append(dict(row))
    return found


# -- triage --------------------------------------------------------------------


def mark_alert_read(conn: Connection, actor: Actor, alert_id: str) -> AlertRecord:
    """Marks an alert read: Imported when it has a case, else Ignored."""
    return _set_state(
        conn,
        actor,
        alert_id,
        lambda a: {"status": rules.status_after_read(a["case_id"])},
    )


def mark_alert_unread(conn: Connection, actor: Actor, alert_id: str) -> AlertRecord:
    """Marks an alert unread: Updated when it has a case, else New."""
    return _set_state(
        conn,
        actor,
        alert_id,
        lambda a: {"status": rules.status_after_unread(a["case_id"])},
    )


def follow_alert(
    conn: Connection, actor: Actor, alert_id: str, follow: bool
) -> AlertRecord:
    """Follows (or stops following) an alert's updates."""
    return _set_state(conn, actor, alert_id, lambda a: {"follow": follow})


def ignore_alert(conn: Connection, actor: Actor, alert_id: str) -> AlertRecord:
    """Sets an alert aside: its status becomes Ignored."""
    return _set_state(conn, actor, alert_id, lambda a: {"status": "Ignored"})


def triage_alerts(
    conn: Connection,
    actor: Actor,
    ids: Sequence[str],
    triage: Callable[[Connection, Actor, str], AlertRecord],
) -> list[dict[str, Any]]:
    """Applies one triage function (`mark_alert_read`, `ignore_alert`...)
    to many alerts, each in a savepoint; returns the errors of those that
    failed, the others being changed."""
    failed: list[dict[str, Any]] = []
    for alert_id in ids:
        try:
            with conn.begin_nested():
                triage(conn, actor, alert_id)
        except CeranaError as exc:
            failed.append({**exc.to_json(), "object": {"id": alert_id}})
    return failed


def _set_state(
    conn: Connection,
    actor: Actor,
    alert_id: str,
    compute: Callable[[RowMapping], dict[str, Any]],
) -> AlertRecord:
    current = get_alert(conn, actor.organisation, alert_id)
    changes = {k: v for k, v in compute(current).items() if current[k] != v}
    row = _apply(conn, actor, current, changes)
    return AlertRecord(row, load_artifacts(conn, [alert_id])[alert_id])


def _apply(
    conn: Connection, actor: Actor, current: RowMapping, changes: dict[str, Any]
) -> dict[str, Any]:
    """Writes ``changes`` (when there are any) and audits them."""
    if not changes:
        return dict(current)
    row = records.update_record(
        conn, models.ALERT, current, changes, actor=actor.login, at=now_ms()
    )
    _audit(conn, actor, "Update", current["id"], audited_details(attrs.ALERT, changes))
    return row


def link_alert_to_case(
    conn: Connection, actor: Actor, alert: RowMapping, case_id: str
) -> dict[str, Any]:
    """Records that ``alert`` was imported into case ``case_id``."""
    return _apply(conn, actor, alert, {"case_id": case_id, "status": "Imported"})


def delete_alert(
    conn: Connection, actor: Actor, alert_id: str, *, force: bool = False
) -> None:
    """Deletes an alert.

    Without ``force``, TheHive's soft delete: the status becomes Ignored.
    With ``force`` (admin only) the alert and its artifacts are removed;
    its audit records stay. Raises NotFound, Forbidden.
    """
    current = get_alert(conn, actor.organisation, alert_id)
    if not force:
        _apply(
            conn,
            actor,
            current,
            {"status": "Ignored"} if current["status"] != "Ignored" else {},
        )
        return
    if not actor.has_role("admin"):
        raise Forbidden("deleting an alert for good needs the admin role")
    conn.execute(delete(tables.alert).where(tables.alert.c.id == alert_id))
    _audit(conn, actor, "Delete", alert_id, audited_details(attrs.ALERT, current))
    logger.info("alert %s removed for good by %s", alert_id, actor.login)


def _audit(
    conn: Connection,
    actor: Actor,
    operation: str,
    alert_id: str,
    details: Mapping[str, Any],
) -> None:
    record_audit(
        conn,
        actor,
        operation=operation,
        spec=attrs.ALERT,
        object_id=alert_id,
        root_id=alert_id,
        details=details,
    )
