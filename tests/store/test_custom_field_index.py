"""Searches and stats on `customFields.<ref>.<type>` use the ix_ccf_* indexes (#5).

The statements are the ones `query.search` and `stats.compute_stats` really
run, captured on the connection, then explained: `EXPLAIN QUERY PLAN` on
SQLite, `EXPLAIN` on PostgreSQL after ANALYZE of a few thousand rows, with
sequential scans discouraged so the plan shows what an index can do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert

from cerana.store import models, query, stats, tables
from cerana.store.db import Database

ORGANISATION = "cerana"
CASES = 3000


def _seed(db: Database) -> None:
    cases, values = [], []
    for number in range(1, CASES + 1):
        case_id = f"case{number:05d}"
        cases.append(_case_row(case_id, number))
        values += [
            _value(
                case_id, "businessUnit", "string", string_value=f"unit{number % 50}"
            ),
            _value(case_id, "score", "number", number_value=float(number % 1000)),
            _value(case_id, "detected", "date", date_value=1_500_000_000_000 + number),
        ]
    with db.write() as conn:
        conn.execute(insert(tables.organisation), [_organisation()])
        conn.execute(insert(tables.case), cases)
        conn.execute(insert(tables.case_custom_field), values)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE case_record")
            conn.exec_driver_sql("ANALYZE case_custom_field")
        else:
            conn.exec_driver_sql("ANALYZE")


def _organisation() -> dict[str, Any]:
    return {"id": ORGANISATION, "name": ORGANISATION, "created_at": 0}


def _case_row(case_id: str, number: int) -> dict[str, Any]:
    return {
        "id": case_id,
        "number": number,
        "title": f"case {number}",
        "description": "d",
        "severity": 2,
        "owner": "admin",
        "start_date": number,
        "flag": False,
        "tlp": 2,
        "status": "Open",
        "metrics": {},
        "custom_fields": {},
        "tags": [],
        "organisation": ORGANISATION,
        "created_by": "admin",
        "created_at": number,
        "version": 1,
    }


def _value(case_id: str, reference: str, kind: str, **value: Any) -> dict[str, Any]:
    row = {
        "case_id": case_id,
        "reference": reference,
        "type": kind,
        "string_value": None,
        "number_value": None,
        "boolean_value": None,
        "date_value": None,
    }
    return {**row, **value}


@contextmanager
def _captured(conn: Connection) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(conn, "before_cursor_execute", capture)


def _plans(conn: Connection, statements: list[tuple[str, Any]]) -> list[str]:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        explain = "EXPLAIN "
    else:
        explain = "EXPLAIN QUERY PLAN "
    plans = []
    for statement, parameters in statements:
        rows = conn.exec_driver_sql(explain + statement, parameters).all()
        plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


@pytest.mark.parametrize(
    ("condition", "index", "total"),
    [
        ({"customFields.businessUnit.string": "unit7"}, "ix_ccf_string", 60),
        ({"_gt": {"customFields.score.number": 990}}, "ix_ccf_number", 27),
        (
            {
                "_between": {
                    "_field": "customFields.detected.date",
                    "_from": 1_500_000_000_000,
                    "_to": 1_500_000_000_011,
                }
            },
            "ix_ccf_date",
            10,
        ),
    ],
    ids=["string-equals", "number-greater", "date-between"],
)
def test_custom_field_filter_uses_its_index(
    db: Database, condition: dict[str, Any], index: str, total: int
) -> None:
    _seed(db)

    with db.read() as conn:
        with _captured(conn) as statements:
            _, found = query.search(
                conn,
                models.CASE,
                organisation=ORGANISATION,
                query=condition,
                range_=(0, 10),
                sort=[],
            )
        plans = _plans(conn, statements)

    assert found == total
    assert all(index in plan for plan in plans), plans


def test_custom_field_stats_use_the_indexes(db: Database) -> None:
    _seed(db)
    aggregations = [
        {
            "_agg": "field",
            "_field": "customFields.businessUnit.string",
            "_select": [{"_agg": "count"}],
            "_size": 3,
        }
    ]

    with db.read() as conn:
        with _captured(conn) as statements:
            result = stats.compute_stats(
                conn,
                models.CASE,
                organisation=ORGANISATION,
                query={"_lt": {"customFields.score.number": 10}},
                aggregations=aggregations,
            )
        plans = _plans(conn, statements)

    assert result == {
        "unit0": {"count": 3},
        "unit1": {"count": 3},
        "unit2": {"count": 3},
    }
    assert all("ix_ccf_number" in plan for plan in plans), plans
    # The grouped values are reached through an index too, never a scan.
    assert not any(_scans_values(plan) for plan in plans), plans


def _scans_values(plan: str) -> bool:
    lines = plan.splitlines()
    sqlite_scan = any(
        line.startswith("SCAN case_custom_field") and "INDEX" not in line
        for line in lines
    )
    return sqlite_scan or "Seq Scan on case_custom_field" in plan


def test_grouping_by_a_custom_field_reads_its_index(db: Database) -> None:
    _seed(db)
    grouping = {
        "_agg": "field",
        "_field": "customFields.businessUnit.string",
        "_select": [{"_agg": "count"}],
        "_size": 2,
        "_order": ["_term"],
    }

    with db.read() as conn:
        with _captured(conn) as statements:
            result = stats.compute_stats(
                conn,
                models.CASE,
                organisation=ORGANISATION,
                query=None,
                aggregations=[grouping],
            )
        plans = _plans(conn, statements)

    assert result == {"unit0": {"count": 60}, "unit1": {"count": 60}}
    assert all("ix_ccf_string" in plan for plan in plans), plans
