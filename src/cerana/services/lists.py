"""DB lists, as TheHive keeps them: observable datatypes, custom field and
metric definitions. Item ids are the MD5 of the value's JSON text."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import Connection, bindparam, select

from cerana.domain import custom_fields as definitions
from cerana.domain.datatypes import DEFAULT_DATATYPES, is_valid_datatype_name
from cerana.domain.dates import now_ms
from cerana.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from cerana.services.context import Actor
from cerana.store import tables

logger = logging.getLogger(__name__)

DATATYPE_LIST = "list_artifactDataType"
_LIST_NAME_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
)
MAX_VALUE_SIZE = 64 * 1024
# Items are sent back as JSON, and orjson writes at most 254 levels: a deeper
# item, once stored, would break every later read of its list.
MAX_VALUE_DEPTH = 32


def item_id(value: Any) -> str:
    """Returns the id of a list item: MD5 of its canonical JSON text."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def list_names(conn: Connection, organisation: str) -> list[str]:
    """Returns the names of the lists that have items."""
    table = tables.dblist
    rows = conn.execute(
        select(table.c.list_name).where(table.c.organisation == organisation).distinct()
    )
    return sorted(r[0] for r in rows)


# Kept, not rebuilt per call: every alert creation reads the datatype list,
# and building the statement cost more than running it (#4).
_LIST_ITEMS = (
    select(tables.dblist.c.id, tables.dblist.c.value)
    .where(
        tables.dblist.c.organisation == bindparam("organisation"),
        tables.dblist.c.list_name == bindparam("list_name"),
    )
    .order_by(tables.dblist.c.created_at, tables.dblist.c.id)
)


def list_items(conn: Connection, organisation: str, list_name: str) -> dict[str, Any]:
    """Returns ``{item id: value}`` of one list (empty for an unknown list)."""
    values = {"organisation": organisation, "list_name": list_name}
    return {row.id: row.value for row in conn.execute(_LIST_ITEMS, values)}


def add_item(conn: Connection, actor: Actor, list_name: str, value: Any) -> str:
    """Adds ``value`` to a list (admin only); returns its id.

    Raises Conflict when the same value is listed already.
    """
    _require_admin(actor)
    _check_list_name(list_name)
    _check_value(list_name, value)
    # Limitation: a definition's reference is kept unique by this read, not
    # by a constraint (items are JSON), so two concurrent adds on PostgreSQL
    # could both pass; admins define fields rarely and one at a time (#5).
    if list_name in definitions.DEFINITION_LISTS:  # custom fields, metrics (#5)
        listed = list_items(conn, actor.organisation, list_name).values()
        definitions.check_definition(list_name, value, listed)
    identifier = item_id(value)
    table = tables.dblist
    exists = conn.execute(
        select(table.c.id).where(
            table.c.organisation == actor.organisation, table.c.id == identifier
        )
    ).first()
    if exists:
        raise Conflict(f"{json.dumps(value)[:100]} is already in {list_name}")
    conn.execute(
        table.insert().values(
            id=identifier,
            organisation=actor.organisation,
            list_name=list_name,
            value=value,
            created_at=now_ms(),
        )
    )
    logger.info(
        "%s added to list %s by %s", json.dumps(value)[:100], list_name, actor.login
    )
    return identifier


def remove_item(conn: Connection, actor: Actor, identifier: str) -> None:
    """Removes an item by id (admin only); raises NotFound."""
    _require_admin(actor)
    table = tables.dblist
    result = conn.execute(
        table.delete().where(
            table.c.organisation == actor.organisation, table.c.id == identifier
        )
    )
    if result.rowcount == 0:
        raise NotFound(f"list item {identifier} not found")
    logger.info("list item %s removed by %s", identifier, actor.login)


def replace_item(conn: Connection, actor: Actor, identifier: str, value: Any) -> str:
    """Replaces an item's value; returns the new id (TheHive's behaviour)."""
    table = tables.dblist
    row = conn.execute(
        select(table.c.list_name).where(
            table.c.organisation == actor.organisation, table.c.id == identifier
        )
    ).first()
    if row is None:
        raise NotFound(f"list item {identifier} not found")
    remove_item(conn, actor, identifier)
    return add_item(conn, actor, row.list_name, value)


def item_exists(
    conn: Connection, organisation: str, list_name: str, key: str, value: Any
) -> bool:
    """True when an object item of the list has ``value`` under ``key``."""
    items = list_items(conn, organisation, list_name)
    return any(isinstance(v, dict) and v.get(key) == value for v in items.values())


def datatypes(conn: Connection, organisation: str) -> set[str]:
    """Returns the observable datatypes of an organisation."""
    return {
        v
        for v in list_items(conn, organisation, DATATYPE_LIST).values()
        if isinstance(v, str)
    }


def seed_datatypes(conn: Connection, organisation: str) -> int:
    """Adds any missing default datatype; returns how many were added."""
    present = datatypes(conn, organisation)
    missing = [name for name in DEFAULT_DATATYPES if name not in present]
    now = now_ms()
    for offset, name in enumerate(missing):
        conn.execute(
            tables.dblist.insert().values(
                id=item_id(name),
                organisation=organisation,
                list_name=DATATYPE_LIST,
                value=name,
                created_at=now + offset,
            )
        )
    return len(missing)


def _check_list_name(name: str) -> None:
    if not name or len(name) > 128 or not set(name) <= _LIST_NAME_CHARS:
        raise InvalidInput(f"list name '{name[:80]}' is invalid")


def _check_value(list_name: str, value: Any) -> None:
    if value is None:
        raise InvalidInput("a list item needs a value")
    if _nested_deeper(value, MAX_VALUE_DEPTH):
        raise InvalidInput(
            f"a list item is limited to {MAX_VALUE_DEPTH} levels of nesting"
        )
    if len(json.dumps(value)) > MAX_VALUE_SIZE:
        raise InvalidInput(f"a list item is limited to {MAX_VALUE_SIZE} bytes of JSON")
    if list_name == DATATYPE_LIST and (
        not isinstance(value, str) or not is_valid_datatype_name(value)
    ):
        raise InvalidInput(
            f"datatype name {json.dumps(value)[:80]} is invalid: use lower-case "
            "letters, digits, '-' and '_'"
        )


def _nested_deeper(value: Any, levels: int) -> bool:
    # Stops at ``levels``, so a hostile value cannot exhaust the stack here.
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return False
    return levels <= 0 or any(_nested_deeper(v, levels - 1) for v in value)


def _require_admin(actor: Actor) -> None:
    if not actor.has_role("admin"):
        raise Forbidden("changing lists needs the admin role")
