"""Signed session cookies and their CSRF tokens.

A session is a signed, time-limited cookie holding the login and a random
CSRF token; no server state, so any API process can check it. The same
token is handed to the browser in a readable cookie and must come back in
the ``X-THE-HIVE-XSRF-TOKEN`` header on every state-changing call.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "THE_HIVE_SESSION"
CSRF_COOKIE = "THE-HIVE-XSRF-TOKEN"
CSRF_HEADER = "X-THE-HIVE-XSRF-TOKEN"
# Re-issue the cookie (sliding expiry) at most this often.
REFRESH_AFTER_SECONDS = 60


@dataclass(frozen=True)
class Session:
    login: str
    csrf: str
    issued_at: float


class SessionCodec:
    """Encodes and checks session cookies with the instance's secret key."""

    def __init__(self, secret_key: str, inactivity: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="cerana-session")
        self.inactivity = inactivity

    def issue(self, login: str, csrf: str | None = None) -> tuple[str, Session]:
        """Returns a new cookie value and the session it carries."""
        session = Session(login, csrf or secrets.token_urlsafe(24), time.time())
        value = self._serializer.dumps(
            {"u": login, "c": session.csrf, "t": session.issued_at}
        )
        return value, session

    def read(self, cookie: str) -> Session | None:
        """Returns the session of a valid, unexpired cookie, else None."""
        try:
            payload = self._serializer.loads(cookie, max_age=self.inactivity)
        except BadSignature:
            return None
        if not isinstance(payload, dict):
            return None
        login, csrf, issued = payload.get("u"), payload.get("c"), payload.get("t")
        if (
            not isinstance(login, str)
            or not isinstance(csrf, str)
            or not isinstance(issued, int | float)
        ):
            return None
        return Session(login, csrf, float(issued))


def csrf_matches(session: Session, header_value: str | None) -> bool:
    """True when the request echoes the session's CSRF token."""
    return bool(header_value) and hmac.compare_digest(session.csrf, header_value or "")
