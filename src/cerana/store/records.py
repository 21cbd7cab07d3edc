"""Generic reads and writes of entity rows, shared by every repository.

Writes keep the side tables (tags, custom field values) in step with the
row's JSON copy inside the caller's transaction, and updates check the
row's ``version`` so that a concurrent change is reported, never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from cerana.domain.errors import NotFound, VersionConflict
from cerana.store import tables
from cerana.store.models import Model


def fetch(
    conn: Connection, model: Model, record_id: str, organisation: str
) -> RowMapping:
    """Returns the row of ``model`` with ``record_id``.

    Raises NotFound when it does not exist in ``organisation``.
    """
    row = (
        conn.execute(
            _by_id(model.table), {"record_id": record_id, "organisation": organisation}
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"{model.spec.label.lower()} {record_id} not found")
    return row


def fetch_many(
    conn: Connection, model: Model, ids: Sequence[str], organisation: str
) -> dict[str, RowMapping]:
    """Returns the rows of ``ids`` that exist, keyed by id."""
    if not ids:
        return {}
    parameters = {"record_ids": list(ids), "organisation": organisation}
    rows = conn.execute(_by_ids(model.table), parameters).mappings()
    return {row["id"]: row for row in rows}


# The reads every request makes, built once: building a statement (and its
# cache key) cost three times as much as running it on SQLite.
@cache
def _by_id(table: Table) -> Select[Any]:
    return select(table).where(
        table.c.id == bindparam("record_id"),
        table.c.organisation == bindparam("organisation"),
    )


@cache
def _by_ids(table: Table) -> Select[Any]:
    return select(table).where(
        table.c.id.in_(bindparam("record_ids", expanding=True)),
        table.c.organisation == bindparam("organisation"),
    )


def insert_record(conn: Connection, model: Model, values: Mapping[str, Any]) -> None:
    """Inserts one row and its side-table rows."""
    conn.execute(insert(model.table), [dict(values)])
    _write_side_tables(conn, model, values["id"], values, replace=False)


def insert_records(
    conn: Connection, model: Model, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Inserts many rows of one model in one statement (plus side tables)."""
    if not rows:
        return
    conn.execute(insert(model.table), [dict(r) for r in rows])
    for row in rows:
        _write_side_tables(conn, model, row["id"], row, replace=False)


def update_record(
    conn: Connection,
    model: Model,
    current: RowMapping,
    changes: Mapping[str, Any],
    *,
    actor: str,
    at: int,
) -> dict[str, Any]:
    """Applies ``changes`` to the row read as ``current``; returns the new row.

    The UPDATE matches the version that was read: if another transaction
    changed the row meanwhile, nothing is written and VersionConflict is
    raised, so no update is ever lost silently.
    """
    table = model.table
    values = dict(changes)
    values.update(updated_by=actor, updated_at=at, version=current["version"] + 1)
    result = conn.execute(
        update(table)
        .where(table.c.id == current["id"], table.c.version == current["version"])
        .values(**values)
    )
    if result.rowcount != 1:
        raise VersionConflict(
            f"{model.spec.label.lower()} {current['id']} was changed by someone "
            "else; reload it and try again"
        )
    _write_side_tables(conn, model, current["id"], changes, replace=True)
    merged = dict(current)
    merged.update(values)
    return merged


def delete_records(
    conn: Connection, table: Table, column: str, ids: Iterable[str]
) -> None:
    """Deletes the rows of ``table`` whose ``column`` is in ``ids``."""
    id_list = list(ids)
    for start in range(0, len(id_list), 500):
        chunk = id_list[start : start + 500]
        conn.execute(delete(table).where(table.c[column].in_(chunk)))


def next_number(conn: Connection, organisation: str, name: str) -> int:
    """Returns the next value of a per-organisation sequence (1, 2, ...).

    One upsert: it takes the row lock on PostgreSQL and runs under the
    write lock on SQLite, so concurrent callers always get distinct numbers,
    even for the very first value.
    """
    parameters = {"organisation": organisation, "name": name}
    return int(conn.execute(_next_value(conn.dialect.name), parameters).scalar_one())


@cache
def _next_value(dialect_name: str) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    sequence = tables.sequence
    statement = dialect.insert(sequence).values(
        organisation=bindparam("organisation"), name=bindparam("name"), value=1
    )
    return statement.on_conflict_do_update(
        index_elements=["organisation", "name"], set_={"value": sequence.c.value + 1}
    ).returning(sequence.c.value)


def count(conn: Connection, table: Table, *conditions: Any) -> int:
    """Returns how many rows of ``table`` match ``conditions``."""
    return int(
        conn.execute(
            select(func.count()).select_from(table).where(*conditions)
        ).scalar_one()
    )


def _write_side_tables(
    conn: Connection,
    model: Model,
    record_id: str,
    values: Mapping[str, Any],
    *,
    replace: bool,
) -> None:
    if model.tag_table is not None and "tags" in values:
        _write_tags(conn, model, record_id, values["tags"] or [], replace)
    if model.custom_field_table is not None and "custom_fields" in values:
        _write_custom_fields(
            conn,
            model.custom_field_table,
            record_id,
            values["custom_fields"] or {},
            replace,
        )


def _write_tags(
    conn: Connection, model: Model, record_id: str, tags: list[str], replace: bool
) -> None:
    """Writes the tag rows of a record: all of ``tags`` for a new record;
    for a replacement, only the tags removed and added, one by one in tag
    order.

    Order matters on PostgreSQL, where each tag row moves a counter row
    (migration 0007) that stays locked until commit: transactions that
    lock counter rows in one order (by tag) cannot deadlock on them, and
    unchanged tags lock nothing.
    """
    assert model.tag_table is not None and model.tag_column is not None
    table, column = model.tag_table, model.tag_column
    owner = table.c[column]
    if not replace:
        if tags:
            rows = [{column: record_id, "tag": tag} for tag in sorted(set(tags))]
            conn.execute(insert(table), rows)
        return
    held = set(conn.execute(select(table.c.tag).where(owner == record_id)).scalars())
    wanted = set(tags)
    for tag in sorted(held ^ wanted):
        if tag in held:
            conn.execute(delete(table).where(owner == record_id, table.c.tag == tag))
        else:
            conn.execute(insert(table), [{column: record_id, "tag": tag}])


_CUSTOM_COLUMNS = {
    "string": "string_value",
    "number": "number_value",
    "integer": "number_value",
    "float": "number_value",
    "boolean": "boolean_value",
    "date": "date_value",
}


def _write_custom_fields(
    conn: Connection,
    table: Table,
    record_id: str,
    fields: Mapping[str, Mapping[str, Any]],
    replace: bool,
) -> None:
    if replace:
        conn.execute(delete(table).where(table.c.case_id == record_id))
    rows = []
    for reference, content in fields.items():
        kind = next((k for k in content if k != "order"), None)
        if kind is None:
            continue
        row: dict[str, Any] = {
            "case_id": record_id,
            "reference": reference,
            "type": kind,
            "string_value": None,
            "number_value": None,
            "boolean_value": None,
            "date_value": None,
        }
        row[_CUSTOM_COLUMNS[kind]] = content[kind]
        rows.append(row)
    if rows:
        conn.execute(insert(table), rows)
