"""Job search: the subset of Cortex's query DSL its clients send.

Supported: ``_field``/``_value``, ``_and``, ``_or``, ``_not``, ``_in``,
``_gt``/``_gte``/``_lt``/``_lte``, ``_between``, ``_id``, ``_contains``,
``_any`` and an empty query. Deleted jobs never match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from cerana.domain.errors import InvalidQuery
from cerana.store import tables

_JOB = tables.analysis_job
FIELDS: dict[str, Any] = {
    "id": _JOB.c.id,
    "_id": _JOB.c.id,
    "status": _JOB.c.status,
    "dataType": _JOB.c.data_type,
    "data": _JOB.c.data,
    "analyzerId": _JOB.c.analyzer_id,
    "workerId": _JOB.c.analyzer_id,
    "analyzerDefinitionId": _JOB.c.analyzer_id,
    "workerDefinitionId": _JOB.c.analyzer_id,
    "analyzerName": _JOB.c.analyzer_name,
    "workerName": _JOB.c.analyzer_name,
    "tlp": _JOB.c.tlp,
    "pap": _JOB.c.pap,
    "label": _JOB.c.label,
    "createdBy": _JOB.c.created_by,
    "createdAt": _JOB.c.created_at,
    "startDate": _JOB.c.start_date,
    "endDate": _JOB.c.end_date,
}
_COMPARE = {"_gt": "__gt__", "_gte": "__ge__", "_lt": "__lt__", "_lte": "__le__"}


def search_jobs(
    conn: Connection,
    organisation: str,
    query: Any,
    *,
    offset: int,
    limit: int | None,
    sort: list[tuple[str, bool]],
) -> tuple[list[RowMapping], int]:
    """Returns (page of jobs, total). Raises InvalidQuery naming the part
    of the query it cannot read."""
    condition = and_(
        _JOB.c.organisation == organisation,
        _JOB.c.status != "Deleted",
        compile_query(query or {}),
    )
    total = conn.execute(
        select(func.count()).select_from(_JOB).where(condition)
    ).scalar_one()
    statement = select(_JOB).where(condition)
    for name, descending in sort or [("createdAt", True)]:
        column = _column(name)
        statement = statement.order_by(column.desc() if descending else column.asc())
    statement = statement.offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    return list(conn.execute(statement).mappings()), total


def compile_query(query: Any) -> ColumnElement[bool]:
    """Returns the SQL condition of one query object."""
    if not isinstance(query, Mapping):
        raise InvalidQuery(f"a query must be an object, not {type(query).__name__}")
    if not query or "_any" in query:
        return true()
    if "_and" in query:
        return and_(true(), *[compile_query(q) for q in _list(query["_and"])])
    if "_or" in query:
        parts = [compile_query(q) for q in _list(query["_or"])]
        return or_(*parts) if parts else true()
    if "_not" in query:
        return not_(compile_query(query["_not"]))
    if "_field" in query:
        return _column(query["_field"]) == query.get("_value")
    if "_id" in query:
        return _JOB.c.id == str(query["_id"])
    if "_in" in query:
        spec = query["_in"]
        return _column(spec.get("_field")).in_(_list(spec.get("_values")))
    if "_between" in query:
        spec = query["_between"]
        column = _column(spec.get("_field"))
        return and_(column >= spec.get("_from"), column < spec.get("_to"))
    if "_contains" in query:
        return _column(query["_contains"]).is_not(None)
    for operator, method in _COMPARE.items():
        if operator in query and isinstance(query[operator], Mapping):
            ((name, value),) = query[operator].items()
            condition: ColumnElement[bool] = getattr(_column(name), method)(value)
            return condition
    if len(query) == 1:  # {"status": "Success"} shorthand
        ((name, value),) = query.items()
        shorthand: ColumnElement[bool] = _column(name) == value
        return shorthand
    raise InvalidQuery(
        f"query operator not supported in job search: {sorted(query)[0]}"
    )


def _column(name: Any) -> ColumnElement[Any]:
    column: ColumnElement[Any] | None = FIELDS.get(str(name))
    if column is None:
        raise InvalidQuery(f"unknown job field {str(name)[:64]}")
    return column


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidQuery("expected a list in the query")
    return raw
