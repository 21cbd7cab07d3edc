"""Many-row inserts handed straight to the database driver (#4).

SQLAlchemy's executemany prepares each row in Python: it builds the
parameter dictionary, runs the bind processors and serialises JSON with
the standard library. For bulk alert ingestion that cost twice what SQLite
spent storing the rows. `insert_rows` builds the ``INSERT`` text once per
table and column list and gives the driver plain tuples, with JSON columns
serialised by orjson; the rows go through the caller's connection, in its
transaction, like any other statement.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Table

RowValues = Callable[[Mapping[str, Any]], tuple[Any, ...]]


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Inserts ``rows`` into ``table`` with one executemany.

    Every row has the keys of the first one, which must be columns of
    ``table``; values are what the column's type accepts in Python
    (JSON columns: lists, dicts, strings, numbers). Raises KeyError for a
    row missing a key, and the driver's errors (through SQLAlchemy) for a
    constraint broken.
    """
    if not rows:
        return
    sql, values = _plan(conn.dialect.paramstyle, table, tuple(rows[0]))
    conn.exec_driver_sql(sql, [values(row) for row in rows])


@functools.cache
def _plan(
    paramstyle: str, table: Table, columns: tuple[str, ...]
) -> tuple[str, RowValues]:
    # Names come from the table itself (KeyError for any other), never
    # from input, so building the text is safe.
    names = ", ".join(f'"{table.c[name].name}"' for name in columns)
    marker = "?" if paramstyle == "qmark" else "%s"
    markers = ", ".join(marker for _ in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({markers})'  # noqa: S608
    return sql, _row_values(table, columns)


def _row_values(table: Table, columns: tuple[str, ...]) -> RowValues:
    pick = itemgetter(*columns)
    single = len(columns) == 1
    json_positions = [
        position
        for position, name in enumerate(columns)
        if isinstance(table.c[name].type, JSON)
    ]

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        picked = (pick(row),) if single else pick(row)
        if not json_positions:
            return picked
        listed = list(picked)
        for position in json_positions:
            listed[position] = orjson.dumps(listed[position]).decode()
        return tuple(listed)

    return values
