"""Who is looking at a page: the signed session cookie, roles and CSRF.

The web UI shares the API's session cookie, so signing in on either side
signs in on both. Forms carry the session's CSRF token in a hidden
``csrf_token`` field; scripts send it in the API's CSRF header instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.auth.sessions import (
    CSRF_HEADER,
    REFRESH_AFTER_SECONDS,
    SESSION_COOKIE,
    Session,
    csrf_matches,
)
from cerana.domain.errors import (
    AuthenticationFailed,
    CeranaError,
    Forbidden,
    NotFound,
)
from cerana.services import users
from cerana.services.context import Actor
from cerana.web.database import read

CSRF_FIELD = "csrf_token"
# Uploads may be large; form fields stay small (starlette's per-part limit).
MAX_FORM_FILES = 20
MAX_FORM_FIELDS = 2000
# A description may hold a million characters, up to four bytes each.
MAX_FIELD_SIZE = 4 * 1024 * 1024


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to sign in."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page, with the session's CSRF token."""

    actor: Actor
    csrf: str
    has_key: bool

    @property
    def login(self) -> str:
        return self.actor.login

    @property
    def can_write(self) -> bool:
        return self.actor.has_role("write")

    @property
    def is_admin(self) -> bool:
        return self.actor.has_role("admin")

    def require(self, role: str) -> None:
        """Raises Forbidden unless the viewer has ``role``."""
        if not self.actor.has_role(role):
            raise Forbidden(
                f"Refused: this action needs the {role} role, which your account does not have"
            )


async def signed_in(request: Request) -> Viewer:
    """Returns the viewer of a request; raises SignInRequired without a
    valid session, Forbidden for a locked account."""
    cached = getattr(request.state, "viewer", None)
    if isinstance(cached, Viewer):
        return cached
    cookie = request.cookies.get(SESSION_COOKIE)
    session = platform(request).sessions.read(cookie) if cookie else None
    if session is None:
        raise SignInRequired()
    organisation = platform(request).settings.organisation
    try:
        row = await read(request, _active_user, session.login, organisation)
    except AuthenticationFailed:
        raise SignInRequired() from None
    viewer = Viewer(
        users.actor_from_row(row, request.state.request_id),
        session.csrf,
        bool(row["key_hash"]),
    )
    request.state.viewer = viewer
    _refresh_if_old(request, session)
    return viewer


def _active_user(conn: Connection, login: str, organisation: str) -> RowMapping:
    try:
        row = users.get_user(conn, login, organisation)
    except NotFound:
        raise AuthenticationFailed("the session's user no longer exists") from None
    if row["status"] != "Ok":
        raise Forbidden("Your account is locked: ask an administrator to unlock it")
    return row


def _refresh_if_old(request: Request, session: Session) -> None:
    # The app's middleware re-issues the cookie (sliding expiry).
    if time.time() - session.issued_at > REFRESH_AFTER_SECONDS:
        request.state.refresh_session = (session.login, session.csrf)


async def checked_form(request: Request, viewer: Viewer) -> FormData:
    """Returns the posted form after checking its CSRF token.

    Raises Forbidden when the token is missing or is not the session's.
    """
    form = await request.form(
        max_files=MAX_FORM_FILES,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=MAX_FIELD_SIZE,
    )
    token = form.get(CSRF_FIELD)
    sent = token if isinstance(token, str) else request.headers.get(CSRF_HEADER)
    if not csrf_matches(Session(viewer.login, viewer.csrf, 0.0), sent):
        raise Forbidden(
            "This form has expired or did not come from Cerana: reload the page and try again"
        )
    return form


async def signed_in_as(request: Request, role: str) -> Viewer:
    """The signed-in viewer, who must hold ``role``; raises Forbidden."""
    viewer = await signed_in(request)
    viewer.require(role)
    return viewer


async def posted_form_as(request: Request, role: str) -> tuple[Viewer, FormData]:
    """The viewer and their posted form, CSRF checked, ``role`` required."""
    viewer = await signed_in(request)
    form = await checked_form(request, viewer)
    viewer.require(role)
    return viewer, form


FormAction = Callable[[Viewer, FormData], Awaitable[Response]]
# Shows the page again: (viewer, the error message, the values sent).
Redisplay = Callable[[Viewer, str, dict[str, str]], Awaitable[Response]]


async def run_write_form(
    request: Request, action: FormAction, redisplay: Redisplay
) -> Response:
    """Runs a form that writes: signed in, CSRF checked, write role.

    Bad input brings the page back through ``redisplay`` with the message
    and what was typed; authentication, role and not-found errors go to
    their own pages.
    """
    viewer, form = await posted_form_as(request, "write")
    try:
        return await action(viewer, form)
    except CeranaError as exc:
        if exc.status in (401, 403, 404):
            raise
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return await redisplay(viewer, exc.message, values)


def check_csrf_header(request: Request, viewer: Viewer) -> None:
    """Checks the CSRF header of a script's request; raises Forbidden."""
    if not csrf_matches(
        Session(viewer.login, viewer.csrf, 0.0), request.headers.get(CSRF_HEADER)
    ):
        raise Forbidden("CSRF token missing or wrong: reload the page and try again")
