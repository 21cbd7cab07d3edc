"""Files attached to task logs and file observables.

The bytes go to the content-addressed store first, then a row describing
them joins the caller's transaction. A rolled-back transaction can leave an
unreferenced file behind, never a row without its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from cerana.domain.dates import now_ms
from cerana.domain.errors import InvalidInput, NotFound
from cerana.store import tables
from cerana.store.attachments import AttachmentStore

MAX_NAME_LENGTH = 512
_FORBIDDEN_NAME_CHARS = set('/\\\n\r\t\x00\f`?*<>|":;')


@dataclass(frozen=True)
class Upload:
    """A file received from a client: its stream, name and content type."""

    stream: BinaryIO
    filename: str
    content_type: str


def check_filename(name: str) -> str:
    """Returns ``name`` if it is a usable file name; raises InvalidInput."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"file name must have 1 to {MAX_NAME_LENGTH} characters")
    if set(name) & _FORBIDDEN_NAME_CHARS:
        raise InvalidInput(f"file name '{name[:80]}' contains a forbidden character")
    return name


def store_upload(
    conn: Connection, store: AttachmentStore, upload: Upload, max_size: int
) -> dict[str, Any]:
    """Stores an uploaded file and records it; returns the column values
    (``attachment_id``, ``attachment_name``, ``attachment_content_type``)."""
    name = check_filename(upload.filename.replace("\\", "/").rsplit("/", 1)[-1])
    stored = store.save(upload.stream, max_size=max_size)
    row = {
        "id": stored.sha256,
        "sha1": stored.sha1,
        "md5": stored.md5,
        "size": stored.size,
        "created_at": now_ms(),
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(tables.attachment).values(row).on_conflict_do_nothing())
    return {
        "attachment_id": stored.sha256,
        "attachment_name": name,
        "attachment_content_type": (upload.content_type or "application/octet-stream")[
            :256
        ],
    }


def attachment_rows(conn: Connection, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Returns the stored metadata of attachments by id."""
    if not ids:
        return {}
    table = tables.attachment
    rows = conn.execute(select(table).where(table.c.id.in_(ids))).mappings()
    return {row["id"]: dict(row) for row in rows}


def get_attachment(conn: Connection, sha256: str) -> dict[str, Any]:
    """Returns one attachment's metadata; raises NotFound."""
    rows = attachment_rows(conn, {sha256})
    if sha256 not in rows:
        raise NotFound(f"attachment {sha256} not found")
    return rows[sha256]
