"""What forms offer to choose from: users to assign, datatypes."""

from __future__ import annotations

from sqlalchemy import Connection

from cerana.services import lists
from cerana.store import models, query

# Assignee menus list active users; an organisation with more than this
# many is served the first ones by login.
MAX_ASSIGNEES = 1000


def assignees(conn: Connection, organisation: str) -> list[tuple[str, str]]:
    """Returns (login, name) of the active users, by login."""
    rows, _ = query.search(
        conn,
        models.USER,
        organisation=organisation,
        query={"status": "Ok"},
        range_=(0, MAX_ASSIGNEES),
        sort=[("login", False)],
    )
    return [(row["id"], row["name"]) for row in rows]


def datatypes(conn: Connection, organisation: str) -> list[str]:
    """Returns the observable datatypes, sorted."""
    return sorted(lists.datatypes(conn, organisation))
