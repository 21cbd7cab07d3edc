"""Webhooks: every audited change, POSTed to the endpoints that want it.

Delivery follows the platform's rule that the database is the source of
truth. When an audit record is written, `queue_deliveries` adds one
``webhook_delivery`` row (status Pending) per matching endpoint in the same
transaction, so a delivery exists exactly when its change was committed,
then wakes a worker through the queue. The worker claims due deliveries by
moving their next attempt past a lease, POSTs TheHive 3's JSON (the audit
record plus the object as it is now), and records the outcome: Delivered,
Pending again with exponential back-off, or Failed after `MAX_ATTEMPTS`. A
periodic sweep delivers whatever is due, so a lost wake-up or a worker that
died mid-delivery only delays a delivery. Admins list failed deliveries
and send them again.

A delivery carries ``X-Cerana-Signature: sha256=<hex>``, the HMAC-SHA256 of
the raw body under the endpoint's secret, when it has one. Secrets and
full URLs (which may hold tokens) never reach the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    CursorResult,
    Integer,
    RowMapping,
    String,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from cerana.domain import attributes as attrs
from cerana.domain.dates import now_ms
from cerana.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from cerana.domain.identifiers import new_id
from cerana.queue import platform_of, register
from cerana.services.context import Actor
from cerana.store import models, records, tables
from cerana.store.rows import Row

if TYPE_CHECKING:
    from cerana.platform import Platform

logger = logging.getLogger(__name__)

DELIVER = "webhooks.deliver"
SWEEP = "webhooks.sweep"
OPERATIONS = ("Creation", "Update", "Delete")
STATUSES = ("Pending", "Delivered", "Failed")
MAX_ATTEMPTS = 10
RETRY_BASE_SECONDS = 10.0
RETRY_CAP_SECONDS = 3600.0
TIMEOUT_SECONDS = 10.0
# A claimed delivery is due again after this, should its worker die.
LEASE_SECONDS = TIMEOUT_SECONDS + 50.0
CACHE_SECONDS = 5.0
# How often a wake-up looks again for deliveries not committed yet.
WAKE_RETRIES = 5
CLAIM_BATCH = 20
MAX_NAME_LENGTH = 128
MAX_URL_LENGTH = 2048
MAX_ERROR_LENGTH = 500


# -- endpoints -------------------------------------------------------------------


@dataclass(frozen=True)
class _Hook:
    id: str
    object_types: frozenset[str]
    operations: frozenset[str]

    def wants(self, object_type: str, operation: str) -> bool:
        return (not self.object_types or object_type in self.object_types) and (
            not self.operations or operation in self.operations
        )


_cache: dict[str, tuple[float, tuple[_Hook, ...]]] = {}
_cache_lock = threading.Lock()


def forget_cached_webhooks() -> None:
    """Drops this process's cache of enabled endpoints (after a change)."""
    with _cache_lock:
        _cache.clear()


def create_webhook(
    conn: Connection, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Adds an endpoint (admin only); returns its row.

    ``body``: ``name``, ``url`` (http or https), optional ``secret``,
    ``objectTypes`` and ``operations`` (empty: all), ``enabled``. Raises
    InvalidInput naming the field, Conflict for a name in use.
    """
    _require_admin(actor)
    values = _checked(body, creating=True)
    _check_name_free(conn, actor.organisation, values["name"], None)
    now = now_ms()
    values.update(
        id=new_id(),
        organisation=actor.organisation,
        created_by=actor.login,
        created_at=now,
        updated_by=None,
        updated_at=None,
        version=1,
    )
    values.setdefault("enabled", True)
    conn.execute(insert(tables.webhook).values(**values))
    forget_cached_webhooks()
    logger.info(
        "webhook %s to %s created by %s",
        values["name"],
        _host(values["url"]),
        actor.login,
    )
    return values


def update_webhook(
    conn: Connection, actor: Actor, webhook_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Changes an endpoint (admin only); ``"secret": null`` removes the
    secret. Returns the new row."""
    _require_admin(actor)
    current = get_webhook(conn, actor.organisation, webhook_id)
    changes = _checked(body, creating=False)
    if "name" in changes:
        _check_name_free(conn, actor.organisation, changes["name"], webhook_id)
    table = tables.webhook
    values = {
        **changes,
        "updated_by": actor.login,
        "updated_at": now_ms(),
        "version": current["version"] + 1,
    }
    conn.execute(update(table).where(table.c.id == webhook_id).values(**values))
    forget_cached_webhooks()
    logger.info("webhook %s changed by %s", current["name"], actor.login)
    return {**current, **values}


def delete_webhook(conn: Connection, actor: Actor, webhook_id: str) -> None:
    """Removes an endpoint and its deliveries (admin only)."""
    _require_admin(actor)
    current = get_webhook(conn, actor.organisation, webhook_id)
    delivery = tables.webhook_delivery
    conn.execute(delete(delivery).where(delivery.c.webhook_id == webhook_id))
    conn.execute(delete(tables.webhook).where(tables.webhook.c.id == webhook_id))
    forget_cached_webhooks()
    logger.info("webhook %s removed by %s", current["name"], actor.login)


def get_webhook(conn: Connection, organisation: str, webhook_id: str) -> RowMapping:
    """Returns an endpoint's row; raises NotFound."""
    table = tables.webhook
    row = (
        conn.execute(
            select(table).where(
                table.c.id == webhook_id, table.c.organisation == organisation
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return row


def list_webhooks(conn: Connection, organisation: str) -> list[RowMapping]:
    """Returns the organisation's endpoints by name."""
    table = tables.webhook
    return list(
        conn.execute(
            select(table)
            .where(table.c.organisation == organisation)
            .order_by(table.c.name)
        ).mappings()
    )


def _checked(body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    known = {"name", "url", "secret", "objectTypes", "operations", "enabled"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidInput(f"unknown webhook attribute {unknown[0]}")
    if creating:
        for required in ("name", "url"):
            if not body.get(required):
                raise InvalidInput(f"a webhook needs a {required}")
    values: dict[str, Any] = {}
    if "name" in body:
        values["name"] = _checked_name(body["name"])
    if "url" in body:
        values["url"] = checked_url(body["url"])
    if "secret" in body:
        values["secret"] = _checked_secret(body["secret"])
    if "objectTypes" in body:
        values["object_types"] = _checked_list(
            "objectTypes", body["objectTypes"], tuple(attrs.ENTITIES)
        )
    if "operations" in body:
        values["operations"] = _checked_list(
            "operations", body["operations"], OPERATIONS
        )
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise InvalidInput("enabled must be true or false")
        values["enabled"] = body["enabled"]
    if creating:
        values.setdefault("object_types", [])
        values.setdefault("operations", [])
        values.setdefault("secret", None)
    return values


def _checked_name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a webhook name has 1 to {MAX_NAME_LENGTH} characters")
    if "\x00" in raw:  # PostgreSQL refuses NUL in text
        raise InvalidInput("a webhook name cannot contain a NUL character")
    return raw.strip()


def checked_url(raw: Any) -> str:
    """Returns ``raw`` if it is an http or https URL with a host; raises
    InvalidInput otherwise (file:, ftp:, javascript: and the like)."""
    if not isinstance(raw, str) or len(raw) > MAX_URL_LENGTH:
        raise InvalidInput(
            f"a webhook url is a string of at most {MAX_URL_LENGTH} characters"
        )
    try:
        parts = urlsplit(raw.strip())
        _ = parts.port
    except ValueError:
        raise InvalidInput("the webhook url does not parse") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("a webhook url must be http:// or https:// with a host")
    if any(c.isspace() or ord(c) < 32 for c in raw.strip()):
        raise InvalidInput("the webhook url contains whitespace or control characters")
    return raw.strip()


def _checked_secret(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 1024 or "\x00" in raw:
        raise InvalidInput(
            "a webhook secret is a string of at most 1024 characters, without NUL"
        )
    return raw


def _checked_list(name: str, raw: Any, allowed: Sequence[str]) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise InvalidInput(f"{name} must be a list of strings")
    unknown = [v for v in raw if v not in allowed]
    if unknown:
        raise InvalidInput(
            f"{name}: {unknown[0][:64]!r} is not one of {', '.join(allowed)}"
        )
    return list(dict.fromkeys(raw))


def _check_name_free(
    conn: Connection, organisation: str, name: str, webhook_id: str | None
) -> None:
    table = tables.webhook
    taken = conn.execute(
        select(table.c.id).where(
            table.c.organisation == organisation, table.c.name == name
        )
    ).scalar()
    if taken is not None and taken != webhook_id:
        raise Conflict(f"a webhook named {name!r} exists already")


def _require_admin(actor: Actor) -> None:
    if not actor.has_role("admin"):
        raise Forbidden("managing webhooks needs the admin role")


# -- queueing (called for every audit record) --------------------------------


def queue_deliveries(
    conn: Connection,
    organisation: str,
    object_type: str,
    operation: str,
    audit: CursorResult[Any],
) -> None:
    """Adds a Pending delivery of the audit record just inserted by
    ``audit`` for each enabled endpoint that wants it, in the caller's
    transaction, and wakes a worker.

    Cheap when no endpoint wants it: the endpoints are cached per process
    for `CACHE_SECONDS`, so an endpoint added in another process starts
    receiving within that time.
    """
    hooks = _enabled_hooks(conn, organisation)
    wanted = [h.id for h in hooks if h.wants(object_type, operation)]
    if not wanted:
        return
    key = audit.inserted_primary_key
    assert key is not None  # an INSERT of one row with a generated id
    audit_id = int(key[0])
    webhook, now = tables.webhook, now_ms()
    # Selecting from the table (not the cache) skips endpoints removed or
    # disabled since the cache was filled.
    rows = select(
        webhook.c.id,
        literal(audit_id, BigInteger),
        literal("Pending", String),
        literal(0, Integer),
        literal(now, BigInteger),
        literal(now, BigInteger),
    ).where(webhook.c.id.in_(wanted), webhook.c.enabled.is_(True))
    columns = [
        "webhook_id",
        "audit_id",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    conn.execute(insert(tables.webhook_delivery).from_select(columns, rows))
    _wake_once_per_transaction(conn, audit_id)


def wants_deliveries(
    conn: Connection, organisation: str, object_type: str, operation: str
) -> bool:
    """Tells whether an enabled endpoint of ``organisation`` wants the audit
    records of ``operation`` on ``object_type``, as `queue_deliveries` sees
    them: a writer of many records at once inserts them together when none
    does, and one by one (through `queue_deliveries`) when one does."""
    hooks = _enabled_hooks(conn, organisation)
    return any(h.wants(object_type, operation) for h in hooks)


def _enabled_hooks(conn: Connection, organisation: str) -> tuple[_Hook, ...]:
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(organisation)
    if cached is not None and cached[0] > now:
        return cached[1]
    table = tables.webhook
    rows = conn.execute(
        select(table.c.id, table.c.object_types, table.c.operations).where(
            table.c.organisation == organisation, table.c.enabled.is_(True)
        )
    ).all()
    hooks = tuple(
        _Hook(r.id, frozenset(r.object_types or ()), frozenset(r.operations or ()))
        for r in rows
    )
    with _cache_lock:
        _cache[organisation] = (now + CACHE_SECONDS, hooks)
    return hooks


_WOKEN = "cerana_webhooks_woken"


def _wake_once_per_transaction(conn: Connection, audit_id: int) -> None:
    # One wake-up per transaction: its deliveries all commit together.
    transaction = conn.get_transaction()
    if conn.info.get(_WOKEN) is transaction:
        return
    conn.info[_WOKEN] = transaction
    try:
        platform = platform_of(conn)
    except RuntimeError:
        # Limitation: an API process without queue workers of its own
        # (``--workers 0`` beside a ``cerana worker``) does not wake the
        # worker: the periodic sweep delivers within a minute instead.
        return
    try:
        platform.queue.enqueue(DELIVER, audit_id, 0)
    except Exception:  # the queue is another store; the sweep covers for it
        logger.warning("could not queue webhook delivery of audit %d", audit_id)


# -- delivery (queued work) ------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: int
    webhook_id: str
    audit_id: int
    attempts: int


@register(DELIVER)
def deliver_queued(platform: Platform, audit_id: int | None, tries: int = 0) -> None:
    """Delivers what is due, once the deliveries of ``audit_id`` (when
    given) are visible: the wake-up may arrive before their transaction
    commits."""
    if audit_id is not None and not _has_deliveries(platform, audit_id):
        if tries < WAKE_RETRIES:
            platform.queue.enqueue(DELIVER, audit_id, tries + 1, delay=1)
        return
    deliver_due(platform)


@register(SWEEP, every_minutes=1)
def sweep(platform: Platform) -> None:
    """Delivers every due Pending delivery: retries whose time has come,
    and deliveries whose wake-up or worker was lost."""
    delivered = deliver_due(platform)
    if delivered:
        logger.info("webhook sweep attempted %d deliveries", delivered)


def deliver_due(platform: Platform) -> int:
    """Attempts every due Pending delivery; returns how many were tried."""
    attempted = 0
    postponed: dict[str, int] = {}  # webhook id -> when it is tried again
    while True:
        claimed = _claim_due(platform)
        if not claimed:
            return attempted
        for delivery in claimed:
            if delivery.webhook_id in postponed:
                _release(platform, delivery, postponed[delivery.webhook_id])
                continue
            attempted += 1
            retry_at = _attempt(platform, delivery)
            if retry_at is not None:
                postponed[delivery.webhook_id] = retry_at


def _has_deliveries(platform: Platform, audit_id: int) -> bool:
    delivery = tables.webhook_delivery
    with platform.db.read() as conn:
        return (
            conn.execute(
                select(delivery.c.id).where(delivery.c.audit_id == audit_id).limit(1)
            ).first()
            is not None
        )


def _claim_due(platform: Platform) -> list[_Claimed]:
    delivery = tables.webhook_delivery
    now = now_ms()
    with platform.db.write() as conn:
        rows = conn.execute(
            select(
                delivery.c.id,
                delivery.c.webhook_id,
                delivery.c.audit_id,
                delivery.c.attempts,
            )
            .where(delivery.c.status == "Pending", delivery.c.next_attempt_at <= now)
            .order_by(delivery.c.id)
            .limit(CLAIM_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            lease = now + int(LEASE_SECONDS * 1000)
            conn.execute(
                update(delivery)
                .where(delivery.c.id.in_([r.id for r in rows]))
                .values(next_attempt_at=lease)
            )
    return [_Claimed(r.id, r.webhook_id, r.audit_id, r.attempts) for r in rows]


def _release(platform: Platform, delivery: _Claimed, at: int) -> None:
    table = tables.webhook_delivery
    with platform.db.write() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == delivery.id, table.c.status == "Pending")
            .values(next_attempt_at=at)
        )


def _attempt(platform: Platform, delivery: _Claimed) -> int | None:
    """POSTs one delivery and records the outcome; returns when the endpoint
    is tried again after a failure (None when delivered or given up)."""
    with platform.db.read() as conn:
        prepared = _prepare(conn, delivery)
    if prepared is None:
        _finish(platform, delivery, "Failed", None, "the audit record no longer exists")
        return None
    url, secret, body = prepared
    status_code, error = post_payload(url, secret, body, str(delivery.id))
    attempts = delivery.attempts + 1
    if error is None:
        _finish(platform, delivery, "Delivered", status_code, None)
        return None
    if attempts >= MAX_ATTEMPTS:
        _finish(platform, delivery, "Failed", status_code, error)
        logger.error(
            "webhook delivery %d to %s failed after %d attempts: %s",
            delivery.id,
            _host(url),
            attempts,
            error,
        )
        return None
    retry_at = now_ms() + int(retry_delay(attempts) * 1000)
    _retry_later(platform, delivery, status_code, error, retry_at)
    logger.warning(
        "webhook delivery %d to %s failed (attempt %d): %s; retry queued",
        delivery.id,
        _host(url),
        attempts,
        error,
    )
    return retry_at


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts: doubling from
    `RETRY_BASE_SECONDS`, at most `RETRY_CAP_SECONDS`."""
    return float(min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_CAP_SECONDS))


def _prepare(
    conn: Connection, delivery: _Claimed
) -> tuple[str, str | None, bytes] | None:
    webhook = (
        conn.execute(
            select(tables.webhook).where(tables.webhook.c.id == delivery.webhook_id)
        )
        .mappings()
        .first()
    )
    audit = (
        conn.execute(select(tables.audit).where(tables.audit.c.id == delivery.audit_id))
        .mappings()
        .first()
    )
    if webhook is None or audit is None:
        return None
    payload = _payload(conn, audit)
    return (
        webhook["url"],
        webhook["secret"],
        orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS),
    )


def _payload(conn: Connection, audit: RowMapping) -> dict[str, Any]:
    """TheHive 3's webhook message: the audit record plus the object."""
    payload: dict[str, Any] = {
        "operation": audit["operation"],
        "details": audit["details"],
        "objectType": audit["object_type"],
        "objectId": audit["object_id"],
        "base": audit["base"],
        "startDate": audit["created_at"],
        "rootId": audit["root_id"],
        "requestId": audit["request_id"],
    }
    # Limitation: ``object`` is the entity as it is when the delivery is
    # sent, not as it was at the change, because deliveries keep no copy
    # of it (#4); a removed entity is sent without ``object``.
    entity = _object_json(
        conn, audit["object_type"], audit["object_id"], audit["organisation"]
    )
    if entity is not None:
        payload["object"] = entity
    return payload


def _object_json(
    conn: Connection, object_type: str, object_id: str, organisation: str
) -> dict[str, Any] | None:
    model = models.MODELS.get(object_type)
    if model is None:
        return None
    found = records.fetch_many(conn, model, [object_id], organisation)
    row = found.get(object_id)
    if row is None:
        return None
    body = _entity_json(model.spec, row)
    if object_type == "alert":
        artifacts = tables.alert_artifact
        rows = conn.execute(
            select(artifacts)
            .where(artifacts.c.alert_id == object_id)
            .order_by(artifacts.c.position)
        ).mappings()
        body["artifacts"] = [_artifact_json(a) for a in rows]
    return body


def _entity_json(spec: attrs.EntitySpec, row: Row) -> dict[str, Any]:
    # The API's entity shape (cerana.api.render), rebuilt here because
    # queued work runs below the API layer: wire names, no sensitive
    # attribute, the attachment as an object.
    body: dict[str, Any] = {}
    for attribute in spec.attributes.values():
        value = row.get(attribute.column)
        if (
            attribute.sensitive
            or value is None
            or attribute.name.startswith("attachment.")
        ):
            continue
        body[attribute.name] = value
    parent = row.get(spec.parent_column) if spec.parent_column else None
    body.update(
        id=row["id"],
        _id=row["id"],
        _type=spec.model,
        _routing=row.get("case_id") or row["id"],
        _parent=parent,
        _version=row.get("version", 1),
    )
    if row.get("attachment_id"):
        body["attachment"] = _attachment_json(row)
    return body


def _artifact_json(row: Row) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataType": row["data_type"],
        "message": row["message"],
        "tags": row["tags"],
        "tlp": row["tlp"],
        "ioc": row["ioc"],
        "startDate": row["start_date"],
    }
    if row["attachment_id"]:
        body["attachment"] = _attachment_json(row)
    else:
        body["data"] = row["data"]
    return body


def _attachment_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["attachment_id"],
        "name": row["attachment_name"],
        "contentType": row["attachment_content_type"],
    }


def signature(secret: str, body: bytes) -> str:
    """Returns the ``X-Cerana-Signature`` value of ``body``: ``sha256=`` and
    the hex HMAC-SHA256 under ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect answer counts as a failure: following it would send the
    # payload (and its signature) somewhere the administrator did not name.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_payload(
    url: str, secret: str | None, body: bytes, delivery_id: str
) -> tuple[int | None, str | None]:
    """POSTs ``body`` to ``url``; returns (HTTP status, error or None)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Cerana-Webhook",
        "X-Cerana-Delivery": delivery_id,
    }
    if secret:
        headers["X-Cerana-Signature"] = signature(secret, body)
    checked_url(url)  # only http and https leave, whatever the row holds
    request = urllib.request.Request(  # noqa: S310 - scheme checked just above
        url, data=body, headers=headers, method="POST"
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:MAX_ERROR_LENGTH]


def _finish(
    platform: Platform,
    delivery: _Claimed,
    status: str,
    status_code: int | None,
    error: str | None,
) -> None:
    table = tables.webhook_delivery
    now = now_ms()
    with platform.db.write() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == delivery.id)
            .values(
                status=status,
                attempts=delivery.attempts + 1,
                last_status_code=status_code,
                last_error=error,
                delivered_at=now if status == "Delivered" else None,
                next_attempt_at=now,
            )
        )


def _retry_later(
    platform: Platform,
    delivery: _Claimed,
    status_code: int | None,
    error: str,
    retry_at: int,
) -> None:
    table = tables.webhook_delivery
    with platform.db.write() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == delivery.id)
            .values(
                attempts=delivery.attempts + 1,
                last_status_code=status_code,
                last_error=error,
                next_attempt_at=retry_at,
            )
        )
        # The endpoint is failing: its other deliveries wait with this one
        # rather than each spending a timeout on it now.
        conn.execute(
            update(table)
            .where(
                table.c.webhook_id == delivery.webhook_id,
                table.c.status == "Pending",
                table.c.next_attempt_at < retry_at,
                table.c.id != delivery.id,
            )
            .values(next_attempt_at=retry_at)
        )
    delay = max(1.0, (retry_at - now_ms()) / 1000)
    try:
        platform.queue.enqueue(DELIVER, delivery.audit_id, 0, delay=delay)
    except Exception:  # the sweep delivers it anyway
        logger.warning("could not queue the retry of webhook delivery %d", delivery.id)


# -- failed deliveries (admins) ----------------------------------------------------


def list_deliveries(
    conn: Connection,
    organisation: str,
    *,
    status: str | None,
    offset: int,
    limit: int | None,
) -> tuple[list[RowMapping], int]:
    """Returns deliveries of the organisation's endpoints, newest first,
    with the endpoint's name, and how many match in all."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    delivery, webhook = tables.webhook_delivery, tables.webhook
    where = [webhook.c.organisation == organisation]
    if status is not None:
        where.append(delivery.c.status == status)
    joined = delivery.join(webhook, webhook.c.id == delivery.c.webhook_id)
    query = (
        select(delivery, webhook.c.name.label("webhook_name"))
        .select_from(joined)
        .where(*where)
        .order_by(delivery.c.id.desc())
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = list(conn.execute(query).mappings())
    total = conn.execute(
        select(func.count()).select_from(joined).where(*where)
    ).scalar_one()
    return rows, int(total)


def retry_deliveries(
    conn: Connection, actor: Actor, delivery_ids: Sequence[int]
) -> int:
    """Makes failed deliveries Pending again, due now (admin only); returns
    how many. The caller wakes a worker once the transaction commits."""
    _require_admin(actor)
    delivery, webhook = tables.webhook_delivery, tables.webhook
    mine = select(webhook.c.id).where(webhook.c.organisation == actor.organisation)
    result = conn.execute(
        update(delivery)
        .where(
            delivery.c.id.in_(list(delivery_ids)),
            delivery.c.status == "Failed",
            delivery.c.webhook_id.in_(mine),
        )
        .values(status="Pending", attempts=0, next_attempt_at=now_ms(), last_error=None)
    )
    logger.info(
        "%d webhook deliveries queued again by %s", result.rowcount, actor.login
    )
    return int(result.rowcount)


def wake_workers(platform: Platform) -> None:
    """Asks a worker to deliver what is due now."""
    try:
        platform.queue.enqueue(DELIVER, None, 0)
    except Exception:  # the sweep delivers it within a minute
        logger.warning("could not queue webhook deliveries")


def _host(url: str) -> str:
    # Only the host is logged: paths and query strings often carry tokens.
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
