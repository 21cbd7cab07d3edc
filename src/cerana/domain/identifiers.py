"""Identifiers of records: random, URL-safe, as long as TheHive's."""

from __future__ import annotations

import secrets


def new_id() -> str:
    """Returns a fresh 20-character URL-safe random id."""
    return secrets.token_urlsafe(15)


def new_request_id() -> str:
    """Returns an id that ties the audit records of one request together."""
    return secrets.token_hex(8)
