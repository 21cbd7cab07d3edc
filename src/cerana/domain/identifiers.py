"""Identifiers of records: random, URL-safe, as long as TheHive's."""

from __future__ import annotations

import base64
import os
import secrets


def new_id() -> str:
    """Returns a fresh 20-character URL-safe random id."""
    return secrets.token_urlsafe(15)


def new_ids(count: int) -> list[str]:
    """Returns ``count`` fresh ids like `new_id`, from one read of the
    system's random source (bulk ingestion makes thousands at once)."""
    # 15 random bytes encode to exactly 20 base64 characters, so the
    # encoding of the whole block cuts into independent ids.
    text = base64.urlsafe_b64encode(os.urandom(15 * count)).decode("ascii")
    return [text[i : i + 20] for i in range(0, 20 * count, 20)]


def new_request_id() -> str:
    """Returns an id that ties the audit records of one request together."""
    return secrets.token_hex(8)
