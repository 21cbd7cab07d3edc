"""User accounts: creation, passwords, API keys, locking and roles.

Passwords are hashed with Argon2id. API keys are 256-bit random strings
shown once; only their SHA-256 is stored, which is enough for a secret of
that entropy and lets a key be found with one index probe.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, RowMapping, bindparam, select

from cerana.domain import attributes as attrs
from cerana.domain.dates import now_ms
from cerana.domain.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    InvalidInput,
)
from cerana.services.audit import audited_details, record_audit
from cerana.services.context import Actor
from cerana.store import models, records, tables

logger = logging.getLogger(__name__)

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_LOGIN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


def hash_password(password: str) -> str:
    """Returns the Argon2id hash of ``password``."""
    return _hasher.hash(password)


def key_digest(key: str) -> str:
    """Returns the stored form of an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_password_rules(password: Any) -> str:
    """Returns ``password`` if acceptable; raises InvalidInput saying why not."""
    if not isinstance(password, str):
        raise InvalidInput("password must be a string")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must have at most {MAX_PASSWORD_LENGTH} characters"
        )
    return password


def check_login(login: Any) -> str:
    """Returns ``login`` if it is a valid login; raises InvalidInput if not."""
    if not isinstance(login, str) or not 1 <= len(login) <= 128:
        raise InvalidInput("login must be a string of 1 to 128 characters")
    if not set(login) <= _LOGIN_CHARS:
        raise InvalidInput(
            f"login '{login}' may contain only letters, digits and . _ @ -"
        )
    return login


def create_user(
    conn: Connection, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Creates a user from a TheHive user body; returns the row.

    Raises Conflict when the login exists, AttributeCheckingError or
    InvalidInput for bad fields.
    """
    fields = dict(body)
    login = check_login(fields.pop("login", None))
    password = fields.pop("password", None)
    values = attrs.check_create(attrs.USER, {"login": login, **fields})
    values.pop("password", None)
    if conn.execute(select(tables.user.c.id).where(tables.user.c.id == login)).first():
        raise Conflict(f"user {login} already exists")
    now = now_ms()
    values.update(
        id=login,
        organisation=actor.organisation,
        password_hash=None
        if password is None
        else hash_password(check_password_rules(password)),
        key_hash=None,
        preferences=values.get("preferences") or "{}",
        created_by=actor.login,
        created_at=now,
        version=1,
    )
    records.insert_record(conn, models.USER, values)
    record_audit(
        conn,
        actor,
        operation="Creation",
        spec=attrs.USER,
        object_id=login,
        root_id=login,
        details=audited_details(attrs.USER, values),
    )
    logger.info("user %s created by %s", login, actor.login)
    return values


def get_user(conn: Connection, login: str, organisation: str) -> RowMapping:
    """Returns the user row; raises NotFound."""
    return records.fetch(conn, models.USER, login, organisation)


def update_user(
    conn: Connection, actor: Actor, login: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Applies a PATCH body to a user; returns the new row.

    A non-admin may change only their own name, avatar and preferences:
    unlike TheHive 3, whose check looked for ``role`` instead of ``roles``,
    roles and status are admin-only. Passwords and keys have their own calls.
    """
    if "password" in body or "key" in body:
        raise Forbidden("use the password and key endpoints to change them")
    is_admin = actor.has_role("admin")
    if not is_admin and login != actor.login:
        raise Forbidden("you can only update your own account")
    if not is_admin and ({"roles", "status"} & body.keys()):
        raise Forbidden("only an administrator can change roles or status")
    current = get_user(conn, login, actor.organisation)
    changes = attrs.check_update(attrs.USER, body)
    if "preferences" in changes and not isinstance(changes["preferences"], str):
        raise InvalidInput("preferences must be a JSON string")
    updated = records.update_record(
        conn, models.USER, current, changes, actor=actor.login, at=now_ms()
    )
    record_audit(
        conn,
        actor,
        operation="Update",
        spec=attrs.USER,
        object_id=login,
        root_id=login,
        details=audited_details(attrs.USER, changes),
    )
    if "status" in changes:
        logger.info(
            "user %s status set to %s by %s", login, changes["status"], actor.login
        )
    return updated


def set_status(
    conn: Connection, actor: Actor, login: str, status: str
) -> dict[str, Any]:
    """Locks or unlocks a user (admin only)."""
    _require_admin(actor)
    return update_user(conn, actor, login, {"status": status})


def set_password(conn: Connection, actor: Actor, login: str, password: Any) -> None:
    """Sets a user's password (admin only)."""
    _require_admin(actor)
    current = get_user(conn, login, actor.organisation)
    new_hash = hash_password(check_password_rules(password))
    records.update_record(
        conn,
        models.USER,
        current,
        {"password_hash": new_hash},
        actor=actor.login,
        at=now_ms(),
    )
    _forget_cached(login)
    logger.info("password of user %s set by %s", login, actor.login)


def change_password(
    conn: Connection, actor: Actor, login: str, current_password: Any, password: Any
) -> None:
    """Changes the caller's own password after checking the current one."""
    if login != actor.login:
        raise Forbidden("you can only change your own password")
    current = get_user(conn, login, actor.organisation)
    if not isinstance(current_password, str) or not _verify(
        current["password_hash"], current_password
    ):
        raise Forbidden("the current password is wrong")
    new_hash = hash_password(check_password_rules(password))
    records.update_record(
        conn,
        models.USER,
        current,
        {"password_hash": new_hash},
        actor=actor.login,
        at=now_ms(),
    )
    _forget_cached(login)
    logger.info("user %s changed their password", login)


def renew_key(conn: Connection, actor: Actor, login: str) -> str:
    """Creates a new API key for ``login`` and returns it; it is never shown again.

    Admins may renew anyone's key; other users only their own.
    """
    if login != actor.login:
        _require_admin(actor)
    current = get_user(conn, login, actor.organisation)
    key = secrets.token_urlsafe(32)
    records.update_record(
        conn,
        models.USER,
        current,
        {"key_hash": key_digest(key)},
        actor=actor.login,
        at=now_ms(),
    )
    logger.info("API key of user %s renewed by %s", login, actor.login)
    return key


def revoke_key(conn: Connection, actor: Actor, login: str) -> None:
    """Removes a user's API key."""
    if login != actor.login:
        _require_admin(actor)
    current = get_user(conn, login, actor.organisation)
    records.update_record(
        conn, models.USER, current, {"key_hash": None}, actor=actor.login, at=now_ms()
    )
    logger.info("API key of user %s revoked by %s", login, actor.login)


def authenticate_password(conn: Connection, login: str, password: str) -> RowMapping:
    """Returns the user row when ``password`` is right for an active ``login``.

    Raises AuthenticationFailed (wrong login or password, in one message so
    logins cannot be probed) or Forbidden (locked account).
    """
    row: RowMapping | None = None
    if "\x00" not in login:  # PostgreSQL refuses NUL in text; no login has one
        row = (
            conn.execute(select(tables.user).where(tables.user.c.id == login))
            .mappings()
            .first()
        )
    if row is None or not row["password_hash"]:
        # Spend the same time as a real check, so logins cannot be probed.
        _verify(_dummy_hash(), password)
        raise AuthenticationFailed("Authentication failure")
    if not _verify_cached(login, row["password_hash"], password):
        raise AuthenticationFailed("Authentication failure")
    if row["status"] != "Ok":
        raise Forbidden("Your account is locked")
    return row


# Built once: every request signed with an API key runs it.
_BY_KEY = select(tables.user).where(tables.user.c.key_hash == bindparam("digest"))


def authenticate_key(conn: Connection, key: str) -> RowMapping:
    """Returns the active user owning API ``key``; raises like the above."""
    digest = key_digest(key)
    row = conn.execute(_BY_KEY, {"digest": digest}).mappings().first()
    if row is None:
        raise AuthenticationFailed("Authentication failure")
    if row["status"] != "Ok":
        raise Forbidden("Your account is locked")
    return row


def actor_from_row(row: RowMapping, request_id: str | None = None) -> Actor:
    """Builds the Actor of an authenticated user row."""
    actor = Actor(
        login=row["id"],
        name=row["name"],
        roles=frozenset(row["roles"] or ()),
        organisation=row["organisation"],
    )
    if request_id:
        actor.request_id = request_id
    return actor


def ensure_admin(
    conn: Connection, actor: Actor, login: str, password: str | None
) -> str | None:
    """Creates the first administrator when no user exists yet.

    Returns the generated password when none was given, None when a user
    existed already (nothing is changed then).
    """
    if conn.execute(select(tables.user.c.id).limit(1)).first():
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    create_user(
        conn,
        actor,
        {
            "login": login,
            "name": "Administrator",
            "roles": list(attrs.ROLES),
            "password": password,
        },
    )
    return generated


def _require_admin(actor: Actor) -> None:
    if not actor.has_role("admin"):
        raise Forbidden("this action needs the admin role")


def _verify(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# Basic auth sends the password on every request; Argon2 is deliberately
# slow (~50 ms), so successful checks are remembered for a minute, keyed by
# a digest of the login, the password and the stored hash (a changed
# password invalidates the entry by construction).
_CACHE_SECONDS = 60.0
_verified: dict[str, float] = {}
_verified_lock = threading.Lock()


def _verify_cached(login: str, stored: str, password: str) -> bool:
    token = hashlib.sha256(f"{login}\x00{password}\x00{stored}".encode()).hexdigest()
    now = time.monotonic()
    with _verified_lock:
        expiry = _verified.get(token)
    if expiry is not None and expiry > now:
        return True
    if not _verify(stored, password):
        return False
    with _verified_lock:
        if len(_verified) > 10_000:
            _verified.clear()
        _verified[token] = now + _CACHE_SECONDS
    return True


def _forget_cached(login: str) -> None:
    # Entries are keyed by digests, so forgetting one login means all.
    with _verified_lock:
        _verified.clear()


_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash(secrets.token_hex(8)))
    return _dummy[0]
