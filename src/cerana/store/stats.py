"""TheHive's ``_stats`` aggregations, computed by the database.

A stats body is a list of aggregation objects (``{"_agg": "count"}``,
``{"_agg": "field", "_field": "status", "_select": [...]}``...); each one
yields a JSON object and the objects are merged into one, as TheHive does.

How the SQL is laid out:

- metrics (count, avg, min, max, sum) of one level share one SELECT; inside
  a bucket they are computed by the same GROUP BY that makes the buckets,
  a metric's ``_query`` becoming a CASE inside the aggregate function;
- ``field`` buckets are a GROUP BY (through the side table for tags and
  custom fields) ordered and limited in SQL;
- ``time`` buckets are a GROUP BY over a bucket-start expression: integer
  arithmetic for fixed intervals and weeks, the database's calendar
  functions for months, quarters and years;
- nested bucket aggregations (a ``field`` inside a ``time``...) run once
  per parent bucket, with the bucket's condition added.

Empty date-histogram buckets between the first and the last one are filled
in, as Elasticsearch's histogram returns them. A request producing more
than `MAX_BUCKETS` buckets is refused, as later Elasticsearch versions do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Label,
    and_,
    case,
    cast,
    extract,
    func,
    select,
)

from cerana.domain.attributes import Kind
from cerana.domain.errors import InvalidQuery
from cerana.store.models import Model
from cerana.store.query import (
    MAX_PAGE,
    bind_value,
    compile_query,
    order_by_clauses,
    parse_sort,
    resolve_field,
    row_filter,
)

MAX_BUCKETS = 10_000
MAX_AGGREGATIONS = 100
DEFAULT_SIZE = 10

_DAY_MS = 86_400_000
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": _DAY_MS}
_CALENDAR_MONTHS = {"M": 1, "q": 3, "y": 12}
_NAMED_INTERVALS = {
    "second": "1s",
    "minute": "1m",
    "hour": "1h",
    "day": "1d",
    "week": "1w",
    "month": "1M",
    "quarter": "1q",
    "year": "1y",
}
_INTERVAL = re.compile(r"([1-9][0-9]{0,5})([smhdwMqy])")
# TheHive 3 computes these per case with integer (long) division.
_COMPUTED_DIVISORS = {
    "handlingDurationInSeconds": 1000,
    "handlingDurationInHours": 3_600_000,
    "handlingDurationInDays": _DAY_MS,
}
_METRIC_FUNCTIONS = ("count", "avg", "min", "max", "sum")


# -- parsed aggregations -------------------------------------------------------


@dataclass(frozen=True)
class _Metric:
    """count / avg / min / max / sum, optionally over a filtered subset."""

    name: str
    function: str
    value: ColumnElement[Any] | None
    condition: ColumnElement[bool] | None


@dataclass(frozen=True)
class _Terms:
    """``field``: one bucket per distinct value, the most frequent first."""

    key: ColumnElement[Any]
    source: FromClause
    bucket: Callable[[Any], ColumnElement[bool]]
    size: int
    order: list[tuple[str, bool]]
    select: list[_Aggregation]


@dataclass(frozen=True)
class _Interval:
    """A histogram interval: fixed milliseconds, or calendar months."""

    width: int = 0
    shift: int = 0  # weeks start on Monday, 3 days before the epoch's Thursday
    months: int = 0


@dataclass(frozen=True)
class _Histogram:
    """``time``: one bucket per interval, for each date field."""

    fields: list[tuple[str, ColumnElement[Any]]]
    interval: _Interval
    select: list[_Aggregation]


@dataclass(frozen=True)
class _Top:
    """``top``: the first rows in a given order."""

    size: int
    order: list[ColumnElement[Any]]


@dataclass(frozen=True)
class _Categories:
    """``category``: one bucket per named query (buckets may overlap)."""

    categories: list[tuple[str, ColumnElement[bool]]]
    select: list[_Aggregation]


_Aggregation = _Metric | _Terms | _Histogram | _Top | _Categories


# -- entry point ---------------------------------------------------------------


def compute_stats(
    conn: Connection,
    model: Model,
    *,
    organisation: str,
    query: object,
    aggregations: object,
    scope: ColumnElement[bool] | None = None,
) -> dict[str, Any]:
    """Returns the merged results of TheHive ``_stats`` ``aggregations``.

    Counts only rows of ``organisation`` matching ``query`` (None: all) and
    ``scope``. Raises InvalidQuery naming the problem for a malformed body
    (not a list, missing or unknown ``_agg``, missing ``_select`` or
    ``_field``, unknown field, bad interval or order) before any SQL runs,
    and for a request of more than `MAX_BUCKETS` buckets.
    """
    parsed = _parse_list(model, aggregations, "stats", _Counter(MAX_AGGREGATIONS))
    condition = row_filter(model, organisation=organisation, query=query, scope=scope)
    run = _Run(conn, model, _Counter(MAX_BUCKETS, "buckets"))
    return _evaluate(run, condition, parsed)


@dataclass
class _Counter:
    """Counts aggregations or buckets against a limit."""

    limit: int
    what: str = "aggregations"
    spent: int = 0

    def spend(self, count: int = 1) -> None:
        self.spent += count
        if self.spent > self.limit:
            raise InvalidQuery(f"Stats request has more than {self.limit} {self.what}")


# -- parsing -------------------------------------------------------------------


def _parse_list(
    model: Model, raw: object, where: str, counter: _Counter
) -> list[_Aggregation]:
    if not isinstance(raw, list):
        raise InvalidQuery(f"Invalid {where}: expected a list of aggregations")
    return [_parse_aggregation(model, item, counter) for item in raw]


def _parse_aggregation(model: Model, raw: object, counter: _Counter) -> _Aggregation:
    counter.spend()
    if not isinstance(raw, Mapping):
        raise InvalidQuery("Invalid aggregation: expected an object with _agg")
    kind = raw.get("_agg")
    if kind is None:
        raise InvalidQuery("Invalid aggregation: _agg is missing")
    if kind in _METRIC_FUNCTIONS:
        return _parse_metric(model, raw)
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise InvalidQuery(f"Unknown aggregation {kind!r}")
    return parser(model, raw, counter)


def _name(raw: Mapping[str, Any], default: str) -> str:
    name = raw.get("_name", default)
    if not isinstance(name, str):
        raise InvalidQuery(f"Invalid aggregation name {name!r}: expected a string")
    return name


def _required(raw: Mapping[str, Any], key: str) -> Any:
    if raw.get(key) is None:
        raise InvalidQuery(f"Aggregation {raw['_agg']} needs {key}")
    return raw[key]


def _parse_metric(model: Model, raw: Mapping[str, Any]) -> _Metric:
    function: str = raw["_agg"]
    query = raw.get("_query")
    condition = None if query is None else compile_query(model, query)
    if function == "count":
        return _Metric(_name(raw, "count"), function, None, condition)
    field_name = _required(raw, "_field")
    value = _metric_value(model, field_name)
    return _Metric(_name(raw, f"{function}_{field_name}"), function, value, condition)


def _metric_value(model: Model, name: object) -> ColumnElement[Any]:
    if isinstance(name, str) and name.startswith("computed."):
        divisor = _COMPUTED_DIVISORS.get(name.removeprefix("computed."))
        if divisor is None or model.name != "case":
            raise InvalidQuery(f"Field {name} is unknown in {model.name}")
        table = model.table
        # A case still open has no end date: NULL, skipped by the aggregate.
        return (table.c.end_date - table.c.start_date) // divisor
    ref = resolve_field(model, name)
    if ref.value is None or ref.kind not in (Kind.NUMBER, Kind.DATE):
        raise InvalidQuery(f"Field {name!r} in {model.name} is not a number or a date")
    return ref.value


def _parse_terms(model: Model, raw: Mapping[str, Any], counter: _Counter) -> _Terms:
    field_name = _required(raw, "_field")
    select_list = _parse_list(model, _required(raw, "_select"), "_select", counter)
    ref = resolve_field(model, field_name)
    test = ref.test
    if test is None or (ref.side is None and ref.value is None):
        raise InvalidQuery(f"Cannot group by field {field_name!r} in {model.name}")
    source: FromClause
    if ref.side is not None:
        key, source = ref.side.column, model.table.join(ref.side.source, ref.side.on)
    else:
        assert ref.value is not None
        key, source = ref.value, model.table
    # Limitation: free-text fields are grouped by whole value, because
    # SQL has no tokenizer like the Elasticsearch analyser TheHive used.
    return _Terms(
        key=key,
        source=source,
        bucket=lambda value: test(lambda column: column == bind_value(value)),
        size=_size(raw, minimum=1),
        order=_parse_order(raw.get("_order"), select_list, field_name),
        select=select_list,
    )


def _size(raw: Mapping[str, Any], minimum: int) -> int:
    size = raw.get("_size", DEFAULT_SIZE)
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidQuery(f"Invalid _size {size!r}: expected a number")
    if not minimum <= size <= MAX_PAGE:
        raise InvalidQuery(f"Invalid _size {size}: expected {minimum} to {MAX_PAGE}")
    return size


def _parse_order(
    raw: object, select_list: list[_Aggregation], field_name: str
) -> list[tuple[str, bool]]:
    """Returns ``[(key, descending)]``; key is _count, _term or a metric name.

    TheHive reads a bare ``_count`` as ascending; without ``_order`` the
    most frequent values come first.
    """
    if raw is None or raw == []:
        return [("_count", True), ("_term", False)]
    items = raw if isinstance(raw, list) else [raw]
    metrics = {agg.name for agg in select_list if isinstance(agg, _Metric)}
    order: list[tuple[str, bool]] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidQuery(f"Invalid _order {item!r} on {field_name!r}")
        descending = item.startswith("-")
        key = item.lstrip("+-")
        if key not in ("_count", "_term") and key not in metrics:
            raise InvalidQuery(
                f"Invalid _order {item!r} on {field_name!r}: "
                "expected _count, _term or the name of a metric in _select"
            )
        order.append((key, descending))
    return [*order, ("_term", False)]


def _parse_histogram(
    model: Model, raw: Mapping[str, Any], counter: _Counter
) -> _Histogram:
    field_names = _required(raw, "_fields")
    if not isinstance(field_names, list) or not field_names:
        raise InvalidQuery("Aggregation time needs _fields, a list of date fields")
    fields = [(str(name), _date_column(model, name)) for name in field_names]
    interval = _parse_interval(_required(raw, "_interval"))
    select_list = _parse_list(model, _required(raw, "_select"), "_select", counter)
    return _Histogram(fields, interval, select_list)


def _date_column(model: Model, name: object) -> ColumnElement[Any]:
    ref = resolve_field(model, name)
    if ref.kind is not Kind.DATE or ref.value is None or not ref.sortable:
        raise InvalidQuery(f"Field {name!r} in {model.name} is not a date")
    return ref.value


def _parse_interval(raw: object) -> _Interval:
    """Reads an Elasticsearch interval: ``1d``, ``6h``, ``1w``, ``1M``, ``1y``..."""
    text = _NAMED_INTERVALS.get(raw, raw) if isinstance(raw, str) else raw
    match = _INTERVAL.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidQuery(f"Invalid _interval {raw!r}: expected e.g. 1d, 12h, 1w, 1M")
    count, unit = int(match.group(1)), match.group(2)
    if unit in _UNIT_MS:
        return _Interval(width=count * _UNIT_MS[unit])
    if count != 1:
        raise InvalidQuery(
            f"Invalid _interval {raw!r}: weeks, months, quarters "
            "and years only come one at a time"
        )
    if unit == "w":
        return _Interval(width=7 * _DAY_MS, shift=3 * _DAY_MS)
    return _Interval(months=_CALENDAR_MONTHS[unit])


def _parse_top(model: Model, raw: Mapping[str, Any], counter: _Counter) -> _Top:
    order = order_by_clauses(model, parse_sort(raw.get("_order")))
    return _Top(size=_size(raw, minimum=0), order=order)


def _parse_categories(
    model: Model, raw: Mapping[str, Any], counter: _Counter
) -> _Categories:
    categories = _required(raw, "_categories")
    if not isinstance(categories, Mapping):
        raise InvalidQuery("Aggregation category needs _categories: {name: query}")
    compiled = [(str(name), compile_query(model, q)) for name, q in categories.items()]
    select_list = _parse_list(model, _required(raw, "_select"), "_select", counter)
    return _Categories(compiled, select_list)


_PARSERS: dict[str, Callable[[Model, Mapping[str, Any], _Counter], _Aggregation]] = {
    "field": _parse_terms,
    "time": _parse_histogram,
    "top": _parse_top,
    "category": _parse_categories,
}


# -- evaluation ----------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    conn: Connection
    model: Model
    buckets: _Counter


def _evaluate(
    run: _Run, condition: ColumnElement[bool], aggregations: list[_Aggregation]
) -> dict[str, Any]:
    metrics = [agg for agg in aggregations if isinstance(agg, _Metric)]
    values = iter(_metric_values(run, condition, metrics) if metrics else [])
    return _merge(run, condition, aggregations, values)


def _merge(
    run: _Run,
    condition: ColumnElement[bool],
    aggregations: list[_Aggregation],
    metric_values: Any,
) -> dict[str, Any]:
    """Merges results in body order; later names win, as in TheHive.

    ``metric_values`` yields the already computed value of each metric in
    turn; bucket aggregations are evaluated here, under ``condition``.
    """
    merged: dict[str, Any] = {}
    for agg in aggregations:
        if isinstance(agg, _Metric):
            merged[agg.name] = next(metric_values)
        elif isinstance(agg, _Terms):
            merged.update(_evaluate_terms(run, condition, agg))
        elif isinstance(agg, _Histogram):
            merged.update(_evaluate_histogram(run, condition, agg))
        elif isinstance(agg, _Top):
            merged["top"] = _evaluate_top(run, condition, agg)
        else:
            merged.update(_evaluate_categories(run, condition, agg))
    return merged


def _metric_values(
    run: _Run, condition: ColumnElement[bool], metrics: list[_Metric]
) -> list[Any]:
    columns = _metric_columns(metrics)
    statement = select(*columns).select_from(run.model.table).where(condition)
    row = run.conn.execute(statement).one()
    return [_metric_result(metric, row[index]) for index, metric in enumerate(metrics)]


def _metric_columns(metrics: list[_Metric]) -> list[Label[Any]]:
    return [
        _metric_expression(metric).label(f"metric_{index}")
        for index, metric in enumerate(metrics)
    ]


def _metric_expression(metric: _Metric) -> ColumnElement[Any]:
    if metric.function == "count":
        if metric.condition is None:
            return func.count()
        return func.count(case((metric.condition, 1)))
    assert metric.value is not None
    value = metric.value
    if metric.condition is not None:
        value = case((metric.condition, value))
    expression: ColumnElement[Any] = getattr(func, metric.function)(value)
    return expression


def _metric_result(metric: _Metric, raw: Any) -> int | float:
    """Counts are integers; other metrics are doubles, 0 over no value."""
    if metric.function == "count":
        return int(raw or 0)
    if raw is None:
        return 0
    return float(raw)


def _evaluate_terms(
    run: _Run, condition: ColumnElement[bool], terms: _Terms
) -> dict[str, Any]:
    metrics = [agg for agg in terms.select if isinstance(agg, _Metric)]
    key = terms.key.label("bucket_key")
    count = func.count().label("bucket_count")
    columns = _metric_columns(metrics)
    sort_by = {"_count": count, "_term": key}
    for metric, column in zip(metrics, columns, strict=True):
        sort_by[metric.name] = column
    statement = (
        select(key, count, *columns)
        .select_from(terms.source)
        .where(condition, terms.key.is_not(None))
        .group_by(terms.key)
        .order_by(*(_direction(sort_by[name], desc) for name, desc in terms.order))
        .limit(terms.size)
    )
    rows = run.conn.execute(statement).all()
    run.buckets.spend(len(rows))
    buckets: dict[str, Any] = {}
    # Limitation: a nested bucket aggregation costs one query per bucket,
    # because one GROUP BY per nesting path (window functions) is not written.
    for row in rows:
        values = (_metric_result(m, row[2 + i]) for i, m in enumerate(metrics))
        inside = and_(condition, terms.bucket(row[0]))
        buckets[_bucket_key(row[0])] = _merge(run, inside, terms.select, values)
    return buckets


def _direction(column: ColumnElement[Any], descending: bool) -> ColumnElement[Any]:
    return column.desc() if descending else column.asc()


def _bucket_key(value: Any) -> str:
    """Renders a bucket key as Elasticsearch's key_as_string does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value)


def _evaluate_histogram(
    run: _Run, condition: ColumnElement[bool], histogram: _Histogram
) -> dict[str, Any]:
    per_field = {
        name: _histogram_of(run, condition, histogram, column)
        for name, column in histogram.fields
    }
    starts = sorted({start for buckets in per_field.values() for start in buckets})
    return {
        str(start): {name: per_field[name].get(start, {}) for name in per_field}
        for start in starts
    }


def _histogram_of(
    run: _Run,
    condition: ColumnElement[bool],
    histogram: _Histogram,
    column: ColumnElement[Any],
) -> dict[int, Any]:
    interval = histogram.interval
    metrics = [agg for agg in histogram.select if isinstance(agg, _Metric)]
    start = _bucket_start(run.conn.dialect.name, column, interval)
    statement = (
        select(start.label("bucket_start"), *_metric_columns(metrics))
        .select_from(run.model.table)
        .where(condition, column.is_not(None))
        .group_by(start)
    )
    found = {int(row[0]): row[1:] for row in run.conn.execute(statement)}
    buckets: dict[int, Any] = {}
    for bucket in _every_start(sorted(found), interval, run.buckets):
        if bucket not in found:
            buckets[bucket] = _empty(histogram.select)
            continue
        values = (_metric_result(m, found[bucket][i]) for i, m in enumerate(metrics))
        end = _next_start(bucket, interval)
        inside = and_(condition, column >= bucket, column < end)
        buckets[bucket] = _merge(run, inside, histogram.select, values)
    return buckets


def _bucket_start(
    dialect: str, column: ColumnElement[Any], interval: _Interval
) -> ColumnElement[Any]:
    """The start, in epoch ms, of the bucket holding ``column``, in UTC.

    Dates are never before 1970 (the domain refuses them), so SQL's
    truncating integer division floors here.
    """
    if interval.width:
        width, shift = interval.width, interval.shift
        return ((column + shift) // width) * width - shift
    unit = {1: "month", 3: "quarter", 12: "year"}[interval.months]
    seconds = column // 1000
    if dialect == "postgresql":
        moment = func.timezone("UTC", func.to_timestamp(seconds))
        return cast(extract("epoch", func.date_trunc(unit, moment)), BigInteger) * 1000
    if dialect == "sqlite":
        return cast(_sqlite_calendar_start(seconds, unit), BigInteger) * 1000
    raise NotImplementedError(f"date histograms are not written for {dialect}")


def _sqlite_calendar_start(
    seconds: ColumnElement[Any], unit: str
) -> ColumnElement[Any]:
    if unit == "year":
        return func.strftime("%s", seconds, "unixepoch", "start of year")
    if unit == "month":
        return func.strftime("%s", seconds, "unixepoch", "start of month")
    month = cast(func.strftime("%m", seconds, "unixepoch"), Integer)
    back = func.printf("-%d months", (month - 1) % 3)
    return func.strftime("%s", seconds, "unixepoch", "start of month", back)


def _next_start(start: int, interval: _Interval) -> int:
    if interval.width:
        return start + interval.width
    moment = datetime.fromtimestamp(start / 1000, UTC)
    months = moment.year * 12 + moment.month - 1 + interval.months
    following = moment.replace(year=months // 12, month=months % 12 + 1)
    return int(following.timestamp() * 1000)


def _every_start(found: list[int], interval: _Interval, counter: _Counter) -> list[int]:
    """Every bucket start from the first found to the last, gaps included."""
    if not found:
        return []
    first, last = found[0], found[-1]
    if interval.width:
        counter.spend((last - first) // interval.width + 1)
        return list(range(first, last + 1, interval.width))
    span = _month_index(last) - _month_index(first)
    counter.spend(span // interval.months + 1)
    starts = [first]
    while starts[-1] < last:
        starts.append(_next_start(starts[-1], interval))
    return starts


def _month_index(millis: int) -> int:
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.year * 12 + moment.month - 1


def _empty(aggregations: list[_Aggregation]) -> dict[str, Any]:
    """Results of ``aggregations`` over no row, for a gap in a histogram."""
    merged: dict[str, Any] = {}
    for agg in aggregations:
        if isinstance(agg, _Metric):
            merged[agg.name] = 0
        elif isinstance(agg, _Top):
            merged["top"] = []
        elif isinstance(agg, _Categories):
            merged.update({name: _empty(agg.select) for name, _ in agg.categories})
    return merged


def _evaluate_top(
    run: _Run, condition: ColumnElement[bool], top: _Top
) -> list[dict[str, Any]]:
    table = run.model.table
    statement = select(table).where(condition).order_by(*top.order).limit(top.size)
    return [dict(row) for row in run.conn.execute(statement).mappings()]


def _evaluate_categories(
    run: _Run, condition: ColumnElement[bool], categories: _Categories
) -> dict[str, Any]:
    run.buckets.spend(len(categories.categories))
    return {
        name: _evaluate(run, and_(condition, category), categories.select)
        for name, category in categories.categories
    }
