"""What every route needs: the platform, the authenticated actor, and a
way to run a service call in a transaction off the event loop."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from cerana.auth.sessions import (
    CSRF_HEADER,
    REFRESH_AFTER_SECONDS,
    SESSION_COOKIE,
    csrf_matches,
)
from cerana.domain.errors import AuthenticationFailed, Forbidden
from cerana.platform import Platform
from cerana.services import users
from cerana.services.context import Actor

T = TypeVar("T")

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


async def authenticate(request: Request) -> Actor:
    """Returns the actor of the request: session cookie, then Bearer API
    key, then Basic auth. Raises AuthenticationFailed or Forbidden."""
    cached = getattr(request.state, "actor", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    actor = await run_in_threadpool(_authenticate_sync, request)
    request.state.actor = actor
    return actor


def authenticate_here(request: Request) -> Actor:
    """`authenticate` for code already off the event loop, so that a route
    can authenticate and do its work in one trip through the thread pool."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        actor = request.state.actor = _authenticate_sync(request)
    return actor


def _authenticate_sync(request: Request) -> Actor:
    p = platform(request)
    request_id: str = request.state.request_id
    cookie = request.cookies.get(SESSION_COOKIE)
    session = p.sessions.read(cookie) if cookie else None
    if session is not None:
        _check_csrf(request, session)
        row = _load_session_user(p, session.login)
        if time.time() - session.issued_at > REFRESH_AFTER_SECONDS:
            request.state.refresh_session = (session.login, session.csrf)
        return users.actor_from_row(row, request_id)
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    with p.db.read() as conn:
        row = _from_credentials(p, conn, scheme.lower(), credentials.strip())
    return users.actor_from_row(row, request_id)


def _from_credentials(
    p: Platform, conn: Connection, scheme: str, credentials: str
) -> RowMapping:
    if scheme == "bearer" and credentials and p.settings.auth_key:
        return users.authenticate_key(conn, credentials)
    if scheme == "basic" and credentials and p.settings.auth_basic:
        login, password = _basic_credentials(credentials)
        return users.authenticate_password(conn, login, password)
    raise AuthenticationFailed(
        "Authentication failure: sign in, or send an API key or Basic credentials"
    )


def _basic_credentials(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed(
            "Authentication failure: malformed Basic credentials"
        ) from None
    login, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationFailed(
            "Authentication failure: malformed Basic credentials"
        )
    return login, password


def _check_csrf(request: Request, session: Any) -> None:
    if request.method in _SAFE_METHODS or request.url.path == "/api/login":
        return
    if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        raise Forbidden(
            "CSRF token missing or wrong: send the X-THE-HIVE-XSRF-TOKEN header"
        )


def _load_session_user(p: Platform, login: str) -> RowMapping:
    with p.db.read() as conn:
        from sqlalchemy import select

        from cerana.store import tables

        row = (
            conn.execute(select(tables.user).where(tables.user.c.id == login))
            .mappings()
            .first()
        )
    if row is None:
        raise AuthenticationFailed(
            "Authentication failure: the session's user no longer exists"
        )
    if row["status"] != "Ok":
        raise Forbidden("Your account is locked")
    return row


def require(actor: Actor, role: str) -> None:
    """Raises Forbidden unless ``actor`` has ``role``."""
    if not actor.has_role(role):
        raise Forbidden(f"this action needs the {role} role")


async def guard(request: Request, role: str | None = "read") -> Actor:
    """Authenticates the request and checks ``role`` (None: any user)."""
    actor = await authenticate(request)
    if role is not None:
        require(actor, role)
    return actor


async def write(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs ``fn(conn, *args)`` in a write transaction, off the event loop."""
    p = platform(request)

    def run() -> T:
        with p.db.write() as conn:
            return fn(conn, *args, **kwargs)

    return await run_in_threadpool(run)


async def read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs ``fn(conn, *args)`` in a read transaction, off the event loop."""
    p = platform(request)

    def run() -> T:
        with p.db.read() as conn:
            return fn(conn, *args, **kwargs)

    return await run_in_threadpool(run)
