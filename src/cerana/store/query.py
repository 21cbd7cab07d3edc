"""TheHive's query DSL, compiled to SQLAlchemy Core conditions.

A search body names rows with a JSON query (``{"_and": [...]}``,
``{"status": "Open"}``, ``{"_string": "tags:phishing"}``...). This module
turns that JSON into one SQL condition over an entity's table; rows are
never filtered in Python. Field names are TheHive's wire names, resolved
through the entity's `EntitySpec`; a few dotted paths reach side tables:

- ``tags``: the tag side table (``case_tag``, ``observable_tag``);
- ``customFields.<ref>.<type>`` and ``customFields.<ref>``: the custom field
  side table, one row per reference;
- ``metrics.<name>``: a number inside the ``metrics`` JSON column;
- ``attachment.hashes``: the ``attachment`` row the entity points at.

Semantics follow Elasticsearch as TheHive 3 used it: a row without a value
never matches a comparison, so ``_not`` of a comparison includes it; equality
on a free-text attribute is a case-insensitive substring match, on any
other kind an exact match; ``_between`` excludes both ends.

Every malformed query raises `InvalidQuery` with a message naming the
operator, field or value at fault; queries nested deeper than `MAX_DEPTH`
or longer than `MAX_CLAUSES` are refused the same way, so a hostile body
cannot exhaust the server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    FromClause,
    RowMapping,
    Select,
    and_,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cerana.domain.attributes import CUSTOM_FIELD_TYPES, Attribute, Kind, convert_value
from cerana.domain.errors import InvalidQuery
from cerana.store import tables
from cerana.store.models import MODELS, Model

logger = logging.getLogger(__name__)

MAX_DEPTH = 32
MAX_CLAUSES = 1000
MAX_PAGE = 10_000
MAX_OFFSET = 2**53
MAX_SORT_FIELDS = 20
MAX_STRING_QUERY = 10_000
MAX_VALUE_LENGTH = 10_000
DEFAULT_PAGE = 10

Predicate = Callable[[ColumnElement[Any]], ColumnElement[bool]]

# Kinds whose values are strings; numbers and booleans given for them are
# searched as their text, as Elasticsearch coerces them.
_STRING_KINDS = frozenset({Kind.STRING, Kind.TEXT, Kind.ENUM, Kind.USER})
_CUSTOM_COLUMNS = {
    "string": ("string_value", Kind.STRING),
    "number": ("number_value", Kind.NUMBER),
    "integer": ("number_value", Kind.NUMBER),
    "float": ("number_value", Kind.NUMBER),
    "boolean": ("boolean_value", Kind.BOOLEAN),
    "date": ("date_value", Kind.DATE),
}
# Metric names go into a JSON path; TheHive's names are identifiers, and
# anything else could break the path syntax of SQLite's json_extract.
_METRIC_NAME = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_SCALAR_KINDS = frozenset(
    {Kind.STRING, Kind.TEXT, Kind.NUMBER, Kind.BOOLEAN, Kind.DATE, Kind.ENUM, Kind.USER}
)


# -- range and sort ----------------------------------------------------------


def parse_range(raw: object) -> tuple[int, int | None]:
    """Returns ``(offset, limit)`` for a TheHive ``range`` value.

    Accepts ``"a-b"`` (offset a, limit b - a), ``"all"`` (limit None) or None
    (the first 10 rows). An end that is missing, not a number or not above
    the start gives a limit of 10, as in TheHive; a page never exceeds
    `MAX_PAGE` rows unless ``"all"`` is asked. Raises InvalidQuery when the
    start is negative, not a number, or the value is not a string.
    """
    if raw is None:
        return 0, DEFAULT_PAGE
    if not isinstance(raw, str):
        raise InvalidQuery(f"Invalid range {_show(raw)}: expected 'start-end' or 'all'")
    text = raw.strip()
    if text == "all":
        return 0, None
    start_text, _, end_text = text.partition("-")
    if (
        not start_text.isdigit()
        or len(start_text) > len(str(MAX_OFFSET))
        or int(start_text) > MAX_OFFSET
    ):
        raise InvalidQuery(f"Invalid range {_show(raw)}: the start must be a number")
    start = int(start_text)
    if not end_text.isdigit():
        return start, DEFAULT_PAGE
    # A very long end is only a very large one: no need to convert it all.
    end = int(end_text) if len(end_text) <= len(str(MAX_OFFSET)) else 2 * MAX_OFFSET
    if end <= start:
        return start, DEFAULT_PAGE
    return start, min(end - start, MAX_PAGE)


def parse_sort(raw: object) -> list[tuple[str, bool]]:
    """Returns ``[(field, descending), ...]`` for a TheHive ``sort`` value.

    Accepts a list of strings or one string; ``+f`` and ``f`` sort up,
    ``-f`` sorts down. Empty items are skipped and a repeated field keeps
    its first direction. Raises InvalidQuery for an item that is not a
    string, a bare sign, or more than `MAX_SORT_FIELDS` fields.
    """
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    sort: dict[str, bool] = {}
    for item in items:
        if not isinstance(item, str):
            raise InvalidQuery(f"Invalid sort field {_show(item)}: expected a string")
        text = item.strip()
        if not text:
            continue
        descending = text.startswith("-")
        name = text[1:] if text[0] in "+-" else text
        if not name:
            raise InvalidQuery(f"Invalid sort field {_show(item)}: no field name")
        sort.setdefault(name, descending)
    if len(sort) > MAX_SORT_FIELDS:
        raise InvalidQuery(f"Too many sort fields: at most {MAX_SORT_FIELDS}")
    return list(sort.items())


# -- fields ------------------------------------------------------------------


@dataclass(frozen=True)
class SideValues:
    """Values kept in a side table, one row each: tags, custom fields.

    ``source`` is an alias of the side table, ``on`` joins it to the entity
    row, ``column`` holds the value.
    """

    source: FromClause
    on: ColumnElement[bool]
    column: ColumnElement[Any]


@dataclass(frozen=True)
class FieldRef:
    """One searchable field of an entity, bound to a table or an alias.

    ``attribute`` gives the kind values are converted to. ``test`` turns a
    predicate on a stored value into a row condition (None when the field
    cannot be compared); ``exists`` is the row condition of ``_contains``.
    ``value`` is a single-valued expression usable in sorts and metrics;
    ``side`` is set for values kept one per side-table row.
    """

    name: str
    model: str
    attribute: Attribute
    test: Callable[[Predicate], ColumnElement[bool]] | None
    exists: ColumnElement[bool] | None
    value: ColumnElement[Any] | None = None
    side: SideValues | None = None
    sortable: bool = False
    normalise: Callable[[Any], Any] | None = None

    @property
    def kind(self) -> Kind:
        return self.attribute.kind


def resolve_field(
    model: Model, name: object, table: FromClause | None = None
) -> FieldRef:
    """Returns the field ``name`` of ``model``, bound to ``table``.

    ``table`` defaults to the model's table; pass an alias to use the field
    inside a subquery. Raises InvalidQuery naming the field and the model
    when the name is unknown, sensitive (a password), or not a string.
    """
    if not isinstance(name, str):
        raise InvalidQuery(f"Invalid field name {_show(name)} in {model.name}")
    source = model.table if table is None else table
    if name == "tags":
        return _tags_field(model, source, name)
    if name == "customFields" or name.startswith("customFields."):
        return _custom_field(model, source, name)
    if name.startswith("metrics."):
        return _metric_field(model, source, name)
    if name == "attachment.hashes":
        return _hashes_field(model, source, name)
    return _plain_field(model, source, name)


def _unknown(model: Model, name: str) -> InvalidQuery:
    return InvalidQuery(f"Unknown field {_show(name)} in {model.name}")


def _plain_field(model: Model, table: FromClause, name: str) -> FieldRef:
    attribute = model.spec.attribute(name)
    if attribute is None or attribute.sensitive or attribute.column not in table.c:
        raise _unknown(model, name)
    query_attribute = replace(attribute, values=())
    if attribute.kind not in _SCALAR_KINDS:
        # JSON columns (metrics, custom fields, lists) are searched through
        # their dotted paths or side tables, never as a whole.
        # Limitation: `_contains` on a whole JSON attribute (metrics) is
        # refused, because an empty object and a missing one look alike in SQL.
        return FieldRef(name, model.name, query_attribute, test=None, exists=None)
    column: ColumnElement[Any] = table.c[attribute.column]
    return FieldRef(
        name,
        model.name,
        query_attribute,
        test=_single_value_test(column),
        exists=column.is_not(None),
        value=column,
        sortable=True,
    )


def _single_value_test(
    column: ColumnElement[Any], nullable: bool | None = None
) -> Callable[[Predicate], ColumnElement[bool]]:
    may_be_null = getattr(column, "nullable", True) if nullable is None else nullable

    def test(predicate: Predicate) -> ColumnElement[bool]:
        # SQL's NULL would make `NOT (x = 1)` unknown for a row without x;
        # Elasticsearch counts such a row as not matching x = 1, so its
        # negation matches. Pinning the comparison to false keeps that.
        if may_be_null:
            return and_(column.is_not(None), predicate(column))
        return predicate(column)

    return test


def _tags_field(model: Model, table: FromClause, name: str) -> FieldRef:
    attribute = model.spec.attribute(name)
    if attribute is None or model.tag_table is None or model.tag_column is None:
        raise _unknown(model, name)
    tags = model.tag_table.alias()
    owner = tags.c[model.tag_column]
    on = owner == table.c.id
    return FieldRef(
        name,
        model.name,
        Attribute(name, "tag", Kind.STRING),
        # An uncorrelated IN lets the planner start from the tag index for a
        # rare tag instead of probing the tag table once per candidate row.
        test=lambda predicate: _side_test(
            table, tags, on, owner, predicate(tags.c.tag)
        ),
        exists=_exists(tags, table, on),
        side=SideValues(tags, on, tags.c.tag),
    )


def _custom_field(model: Model, table: FromClause, name: str) -> FieldRef:
    cf_table = model.custom_field_table
    if model.spec.attribute("customFields") is None or cf_table is None:
        raise _unknown(model, name)
    parts = name.split(".")
    fields = cf_table.alias()
    on = fields.c[_foreign_key(model, cf_table)] == table.c.id
    if len(parts) == 1:
        return _opaque(model, name, _exists(fields, table, on))
    reference = _checked_text(model, name, parts[1])
    on = and_(on, fields.c.reference == reference)
    if len(parts) == 2:
        return _opaque(model, name, _exists(fields, table, on))
    if len(parts) != 3 or parts[2] not in CUSTOM_FIELD_TYPES:
        raise _unknown(model, name)
    column_name, kind = _CUSTOM_COLUMNS[parts[2]]
    column = fields.c[column_name]
    owner = fields.c[_foreign_key(model, cf_table)]
    scalar = select(column).where(on).correlate(table).scalar_subquery()
    return FieldRef(
        name,
        model.name,
        Attribute(name, column_name, kind),
        # Uncorrelated, so the (reference, value) index drives the look-up.
        test=lambda predicate: _side_test(
            table,
            fields,
            on,
            owner,
            and_(fields.c.reference == reference, predicate(column)),
        ),
        exists=_exists(fields, table, on, column.is_not(None)),
        value=scalar,
        side=SideValues(fields, on, column),
    )


def _foreign_key(model: Model, side_table: Any) -> str:
    # The registry names no column for the custom field table; its foreign
    # key to the entity's table is the link.
    for column in side_table.c:
        if column.foreign_keys and any(
            key.column.table is model.table for key in column.foreign_keys
        ):
            return str(column.name)
    raise _unknown(model, "customFields")


def _opaque(model: Model, name: str, exists: ColumnElement[bool]) -> FieldRef:
    """A field that can only be tested for presence (``customFields.ref``)."""
    attribute = Attribute(name, name, Kind.JSON)
    return FieldRef(name, model.name, attribute, test=None, exists=exists)


def _metric_field(model: Model, table: FromClause, name: str) -> FieldRef:
    attribute = model.spec.attribute("metrics")
    metric = name.removeprefix("metrics.")
    if attribute is None or attribute.column not in table.c:
        raise _unknown(model, name)
    if not _METRIC_NAME.fullmatch(metric):
        raise InvalidQuery(f"Invalid metric name {_show(metric)} in {model.name}")
    value = table.c[attribute.column][metric].as_float()
    return FieldRef(
        name,
        model.name,
        Attribute(name, attribute.column, Kind.NUMBER),
        test=_single_value_test(value, nullable=True),
        exists=value.is_not(None),
        value=value,
        sortable=True,
    )


def _hashes_field(model: Model, table: FromClause, name: str) -> FieldRef:
    if "attachment_id" not in table.c:
        raise _unknown(model, name)
    files = tables.attachment.alias()
    pointer = table.c.attachment_id

    def test(predicate: Predicate) -> ColumnElement[bool]:
        digests = or_(
            predicate(files.c.id), predicate(files.c.sha1), predicate(files.c.md5)
        )
        return and_(
            pointer.is_not(None), pointer.in_(select(files.c.id).where(digests))
        )

    return FieldRef(
        name,
        model.name,
        Attribute(name, "hash", Kind.STRING),
        test=test,
        exists=pointer.is_not(None),
        # Digests are stored as lowercase hex; a pasted uppercase one still matches.
        normalise=lambda value: value.lower() if isinstance(value, str) else value,
    )


# "lookup": the rows come from the side table's index (id IN subquery);
# "probe": each candidate row probes the side table (correlated EXISTS).
_side_style: ContextVar[str] = ContextVar("side_style", default="lookup")
# Above this many matches a search walks its sort order and probes.
_DENSE_MATCHES = 2000
# The side-table look-ups a condition built, while `search` builds one.
_side_lookups: ContextVar[list[FromClause] | None] = ContextVar(
    "side_lookups", default=None
)


def _side_test(
    table: FromClause,
    side: FromClause,
    on: ColumnElement[bool],
    owner: ColumnElement[Any],
    condition: ColumnElement[bool],
) -> ColumnElement[bool]:
    """A condition on a side table (tags, custom fields) in the current style."""
    if _side_style.get() == "probe":
        return _exists(side, table, on, condition)
    lookups = _side_lookups.get()
    if lookups is not None:
        lookups.append(side)
    return table.c.id.in_(select(owner).where(condition))


def _exists(
    side: FromClause, outer: FromClause, *conditions: ColumnElement[bool]
) -> ColumnElement[bool]:
    # Explicit correlation: the side table may also appear in an enclosing
    # statement (stats join tags), which must not be correlated away.
    subquery: Select[Any] = (
        select(literal_column("1")).select_from(side).where(*conditions)
    )
    return subquery.correlate(outer).exists()


def text_fields(model: Model, table: FromClause | None = None) -> list[FieldRef]:
    """Returns the free-text fields bare words of a ``_string`` query search."""
    return [
        resolve_field(model, attribute.name, table)
        for attribute in model.spec.attributes.values()
        if attribute.kind is Kind.TEXT and not attribute.sensitive
    ]


# -- values ------------------------------------------------------------------


def _show(raw: object) -> str:
    """Renders a value for an error message, clipped so bodies stay small."""
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_scalar(raw: object) -> bool:
    return isinstance(raw, str | int | float | bool)


def convert_query_value(field: FieldRef, raw: object) -> Any:
    """Returns ``raw`` converted to the kind of ``field``.

    Numbers and booleans given for a string field are searched as text.
    Raises InvalidQuery naming the field and the value when it does not fit.
    """
    if not _is_scalar(raw):
        raise InvalidQuery(
            f"Invalid value {_show(raw)} for field {_show(field.name)} in "
            f"{field.model}: expected a string, number or boolean"
        )
    if field.kind in _STRING_KINDS and isinstance(raw, bool):
        raw = "true" if raw else "false"
    elif field.kind in _STRING_KINDS and isinstance(raw, int | float):
        raw = str(raw)
    try:
        value = convert_value(field.attribute, raw)
        if isinstance(value, str):
            value.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidQuery(
            f"Invalid value {_show(raw)} for field {_show(field.name)} in "
            f"{field.model}: {exc}"
        ) from None
    return field.normalise(value) if field.normalise else value


def _checked_text(model: Model, what: str, raw: object) -> str:
    """Returns ``raw`` when it is a string the databases can store."""
    attribute = Attribute(what, what, Kind.STRING)
    ref = FieldRef(what, model.name, attribute, test=None, exists=None)
    value: str = convert_query_value(ref, raw)
    return value


def bind_value(value: Any) -> ColumnElement[Any]:
    """Returns ``value`` as a bound parameter of its own SQL type.

    Binding with the column's type would cast 2.5 to an INTEGER on
    PostgreSQL, turning ``severity > 2.5`` into ``severity > 3``.
    """
    if isinstance(value, bool):
        return literal(value, Boolean)
    if isinstance(value, int):
        return literal(value, BigInteger)
    return literal(value)


# -- compiler ----------------------------------------------------------------


@dataclass
class _Budget:
    """Clauses spent so far by one query, shared by its subqueries."""

    clauses: int = 0

    def spend(self, count: int = 1) -> None:
        self.clauses += count
        if self.clauses > MAX_CLAUSES:
            raise InvalidQuery(f"Query has more than {MAX_CLAUSES} clauses")


@dataclass(frozen=True)
class _Context:
    """Where a query node is compiled: which model, which table, how deep."""

    model: Model
    table: FromClause
    budget: _Budget
    depth: int = 0

    def deeper(self) -> _Context:
        if self.depth >= MAX_DEPTH:
            raise InvalidQuery(f"Query is nested deeper than {MAX_DEPTH} levels")
        return replace(self, depth=self.depth + 1)

    def over(self, model: Model, table: FromClause) -> _Context:
        return replace(self.deeper(), model=model, table=table)

    def field(self, name: object) -> FieldRef:
        return resolve_field(self.model, name, self.table)


def compile_query(model: Model, query: object) -> ColumnElement[bool]:
    """Returns the SQL condition over ``model.table`` selecting ``query``.

    Accepts every operator of TheHive 3's query DSL (see the module
    docstring). Raises InvalidQuery for anything it cannot understand:
    not an object, unknown operator or field, wrong number of keys, a value
    of the wrong kind, a query deeper than `MAX_DEPTH` or longer than
    `MAX_CLAUSES`.
    """
    _check_value_lengths(query)
    context = _Context(model, model.table, _Budget())
    return _compile(context, query)


def _check_value_lengths(query: object) -> None:
    """Refuses a query holding a string longer than `MAX_VALUE_LENGTH`.

    No field of Cerana holds a longer value worth matching, and databases
    cap their patterns (SQLite's LIKE refuses 50,000 bytes), so the answer
    is a clear 400 rather than a database error. Iterative, so that a deep
    query reaches the depth check in `_compile` instead of the recursion
    limit.
    """
    pending: list[object] = [query]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if len(node) > MAX_VALUE_LENGTH:
                raise InvalidQuery(
                    f"Invalid query: a value of {len(node):,} characters is longer "
                    f"than the {MAX_VALUE_LENGTH:,} allowed"
                )
        elif isinstance(node, Mapping):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)


def row_filter(
    model: Model,
    *,
    organisation: str,
    query: object,
    scope: ColumnElement[bool] | None = None,
) -> ColumnElement[bool]:
    """Returns the condition of a search: organisation, ``scope`` and query.

    A ``query`` of None matches every row, as an absent query does in
    TheHive. Raises InvalidQuery as `compile_query` does.
    """
    conditions: list[ColumnElement[bool]] = []
    if model.has_organisation:
        conditions.append(model.table.c.organisation == organisation)
    if scope is not None:
        conditions.append(scope)
    if query is not None:
        conditions.append(compile_query(model, query))
    return and_(true(), *conditions)


def _compile(context: _Context, node: object) -> ColumnElement[bool]:
    context.budget.spend()
    if not isinstance(node, Mapping):
        raise InvalidQuery(f"Invalid query {_show(node)}: expected an object")
    if not node:
        return true()
    if set(node) == {"_field", "_value"}:
        return _equals(context.field(node["_field"]), node["_value"])
    if len(node) != 1:
        keys = ", ".join(sorted(str(key) for key in node))
        raise InvalidQuery(
            f"Invalid query object with keys {keys}: expected one operator"
        )
    ((key, value),) = node.items()
    operator = _OPERATORS.get(key)
    if operator is not None:
        return operator(context.deeper(), value)
    if key.startswith("_"):
        raise InvalidQuery(f"Unknown query operator {_show(key)}")
    return _equals(context.field(key), value)


def _and(context: _Context, value: object) -> ColumnElement[bool]:
    parts = [_compile(context, item) for item in _query_list("_and", value)]
    return and_(true(), *parts)


def _or(context: _Context, value: object) -> ColumnElement[bool]:
    # An empty _or matches everything: Elasticsearch's bool query without
    # clauses is a match-all, and TheHive sends it that way.
    parts = [_compile(context, item) for item in _query_list("_or", value)]
    return or_(*parts) if parts else true()


def _query_list(operator: str, value: object) -> Sequence[object]:
    if not isinstance(value, list):
        raise InvalidQuery(f"Invalid {operator}: expected a list of queries")
    return value


def _not(context: _Context, value: object) -> ColumnElement[bool]:
    if not isinstance(value, Mapping):
        raise InvalidQuery("Invalid _not: expected a query object")
    return not_(_compile(context, value))


def _any(context: _Context, value: object) -> ColumnElement[bool]:
    return true()


def _contains(context: _Context, value: object) -> ColumnElement[bool]:
    ref = context.field(value)
    if ref.exists is None:
        raise InvalidQuery(
            f"Field {_show(ref.name)} in {ref.model} cannot be tested with _contains"
        )
    return ref.exists


def _comparison(
    name: str, compare: Callable[[ColumnElement[Any], Any], ColumnElement[bool]]
) -> Callable[[_Context, object], ColumnElement[bool]]:
    def compile_comparison(context: _Context, value: object) -> ColumnElement[bool]:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise InvalidQuery(f'Invalid {name}: expected {{"<field>": <value>}}')
        ((field_name, raw),) = value.items()
        ref = context.field(field_name)
        bound = bind_value(convert_query_value(ref, raw))
        return _tested(ref, lambda column: compare(column, bound))

    return compile_comparison


def _tested(ref: FieldRef, predicate: Predicate) -> ColumnElement[bool]:
    if ref.test is None:
        raise InvalidQuery(f"Field {_show(ref.name)} in {ref.model} cannot be searched")
    return ref.test(predicate)


def _between(context: _Context, value: object) -> ColumnElement[bool]:
    if not isinstance(value, Mapping) or set(value) != {"_field", "_from", "_to"}:
        raise InvalidQuery('Invalid _between: expected {"_field", "_from", "_to"}')
    ref = context.field(value["_field"])
    low = bind_value(convert_query_value(ref, value["_from"]))
    high = bind_value(convert_query_value(ref, value["_to"]))
    # Exclusive at both ends, as TheHive 3's range query is.
    return _tested(ref, lambda column: and_(column > low, column < high))


def _in(context: _Context, value: object) -> ColumnElement[bool]:
    if not isinstance(value, Mapping) or set(value) != {"_field", "_values"}:
        raise InvalidQuery('Invalid _in: expected {"_field", "_values": [...]}')
    ref = context.field(value["_field"])
    raws = value["_values"]
    if not isinstance(raws, list):
        raise InvalidQuery("Invalid _in: _values must be a list")
    context.budget.spend(len(raws))
    values = [convert_query_value(ref, raw) for raw in raws]
    if not values:
        return false()
    if ref.kind is Kind.TEXT:
        return or_(*(_equals(ref, item) for item in values))
    return _tested(
        ref, lambda column: column.in_([bind_value(item) for item in values])
    )


def _like(context: _Context, value: object) -> ColumnElement[bool]:
    if not isinstance(value, Mapping) or set(value) != {"_field", "_value"}:
        raise InvalidQuery('Invalid _like: expected {"_field", "_value"}')
    ref = context.field(value["_field"])
    if ref.kind not in _STRING_KINDS:
        return _equals(ref, value["_value"])
    text = convert_query_value(ref, value["_value"])
    return _tested(ref, lambda column: _contains_folded(column, text))


class _FoldedLike(FunctionElement[bool]):
    """``column LIKE pattern`` ignoring case, ``/`` escaping the pattern."""

    type = Boolean()
    inherit_cache = True
    name = "folded_like"


@compiles(_FoldedLike)
def _folded_like(element: _FoldedLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"lower({column}) LIKE lower({pattern}) ESCAPE '/'"


@compiles(_FoldedLike, "sqlite")
def _folded_like_sqlite(element: _FoldedLike, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores the case of ASCII letters already, and its
    # lower() knows no others: the same matches, without a lower() call
    # per row (a third of a full-text scan of the case table).
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"{column} LIKE {pattern} ESCAPE '/'"


def _contains_folded(column: Any, text: object) -> ColumnElement[bool]:
    """Whether ``column`` contains ``text``, ignoring case, as a condition
    each database answers its cheapest way."""
    escaped = re.sub(r"([/%_])", r"/\1", str(text))
    return _FoldedLike(column, literal(f"%{escaped}%"))


def _equals(ref: FieldRef, raw: object) -> ColumnElement[bool]:
    """Equality as TheHive means it: substring for free text, exact otherwise."""
    value = convert_query_value(ref, raw)
    if ref.kind is Kind.TEXT:
        # Limitation: case folding on SQLite covers ASCII letters only,
        # because its lower() and LIKE know no other alphabet.
        return _tested(ref, lambda column: _contains_folded(column, value))
    bound = bind_value(value)
    return _tested(ref, lambda column: column == bound)


def _prefix(ref: FieldRef, raw: str) -> ColumnElement[bool]:
    """``field:val*`` of a ``_string`` query."""
    if ref.kind not in _STRING_KINDS:
        raise InvalidQuery(
            f"Wildcard on field {_show(ref.name)} in {ref.model}, which is not text"
        )
    text = convert_query_value(ref, raw)
    if ref.kind is Kind.TEXT:
        return _tested(ref, lambda column: _contains_folded(column, text))
    # substr() instead of LIKE: SQLite's LIKE ignores case, exact fields must not.
    return _tested(ref, lambda column: func.substr(column, 1, len(text)) == text)


def _id(context: _Context, value: object) -> ColumnElement[bool]:
    identifier = _checked_text(context.model, "_id", value)
    return context.table.c.id == identifier


def _type(context: _Context, value: object) -> ColumnElement[bool]:
    if not isinstance(value, str):
        raise InvalidQuery(f"Invalid _type {_show(value)}: expected a model name")
    return true() if value == context.model.name else false()


def _relative(operator: str, value: object) -> tuple[str, Mapping[str, object]]:
    if not isinstance(value, Mapping) or not isinstance(value.get("_type"), str):
        raise InvalidQuery(
            f'Invalid {operator}: expected {{"_type": <model>, "_query": <query>}}'
        )
    type_name: str = value["_type"]
    return type_name, value


def _parent(context: _Context, value: object) -> ColumnElement[bool]:
    type_name, body = _relative("_parent", value)
    model = context.model
    if model.parent is None or model.parent_column is None or type_name != model.parent:
        raise InvalidQuery(
            f"Invalid _parent: {_show(type_name)} is not the parent of {model.name}"
        )
    parent = MODELS[type_name]
    parents = parent.table.alias()
    if set(body) == {"_type", "_query"}:
        condition = _compile(context.over(parent, parents), body["_query"])
    elif set(body) == {"_type", "_id"}:
        condition = parents.c.id == _checked_text(model, "_id", body["_id"])
    else:
        raise InvalidQuery('Invalid _parent: expected "_type" with "_query" or "_id"')
    pointer = context.table.c[model.parent_column]
    return pointer.in_(select(parents.c.id).where(condition))


def _child(context: _Context, value: object) -> ColumnElement[bool]:
    type_name, body = _relative("_child", value)
    child = MODELS.get(type_name)
    if (
        child is None
        or child.parent != context.model.name
        or child.parent_column is None
    ):
        raise InvalidQuery(
            f"Invalid _child: {_show(type_name)} is not a child of {context.model.name}"
        )
    if set(body) != {"_type", "_query"}:
        raise InvalidQuery('Invalid _child: expected {"_type", "_query"}')
    children = child.table.alias()
    condition = _compile(context.over(child, children), body["_query"])
    link = children.c[child.parent_column] == context.table.c.id
    return _exists(children, context.table, link, condition)


def _string(context: _Context, value: object) -> ColumnElement[bool]:
    if not isinstance(value, str):
        raise InvalidQuery("Invalid _string: expected a query string")
    if len(value) > MAX_STRING_QUERY:
        raise InvalidQuery(
            f"Invalid _string: longer than {MAX_STRING_QUERY} characters"
        )
    parser = _StringQueryParser(context, _tokenize(value))
    return parser.parse()


_OPERATORS: dict[str, Callable[[_Context, object], ColumnElement[bool]]] = {
    "_and": _and,
    "_or": _or,
    "_not": _not,
    "_any": _any,
    "_contains": _contains,
    "_gt": _comparison("_gt", lambda column, bound: column > bound),
    "_gte": _comparison("_gte", lambda column, bound: column >= bound),
    "_lt": _comparison("_lt", lambda column, bound: column < bound),
    "_lte": _comparison("_lte", lambda column, bound: column <= bound),
    "_between": _between,
    "_in": _in,
    "_like": _like,
    "_string": _string,
    "_id": _id,
    "_type": _type,
    "_parent": _parent,
    "_child": _child,
}


# -- _string: a Lucene subset ------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """One token of a ``_string`` query.

    kinds: ``(`` ``)`` AND OR NOT, FIELD (``name:``), TERM (a word; ``prefix``
    when it ended with ``*``), PHRASE (quoted), RANGE (``[a TO b]``).
    """

    kind: str
    text: str = ""
    prefix: bool = False
    low: str | None = None
    high: str | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True


_OPERATOR_WORDS = {"AND": "AND", "&&": "AND", "OR": "OR", "||": "OR", "NOT": "NOT"}
_WORD_END = frozenset('()"[]{}')
_UNSUPPORTED = frozenset("?~^")


def _string_error(reason: str) -> InvalidQuery:
    return InvalidQuery(f"Invalid _string query: {reason}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    expects_value = False
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
            continue
        if char in "()":
            token, position = _Token(char), position + 1
        elif char == '"':
            token, position = _read_phrase(text, position)
        elif char in "[{":
            token, position = _read_range(text, position)
        elif char in "]}":
            raise _string_error(f"unexpected {char!r} at position {position}")
        elif char in "-!+" and not expects_value:
            # Lucene's prefix operators: - and ! exclude, + only insists.
            position += 1
            if char != "+":
                tokens.append(_Token("NOT"))
            continue
        else:
            token, position = _read_word(text, position, expects_value)
        tokens.append(token)
        expects_value = token.kind == "FIELD"
    return tokens


def _read_phrase(text: str, position: int) -> tuple[_Token, int]:
    chars: list[str] = []
    position += 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
        elif char == '"':
            return _Token("PHRASE", "".join(chars)), position + 1
        else:
            chars.append(char)
            position += 1
    raise _string_error("a quoted phrase is not closed")


def _read_range(text: str, position: int) -> tuple[_Token, int]:
    closing = min(
        (
            index
            for index in (text.find("]", position), text.find("}", position))
            if index >= 0
        ),
        default=-1,
    )
    if closing < 0:
        raise _string_error("a range is not closed")
    parts = text[position + 1 : closing].split()
    if len(parts) != 3 or parts[1] != "TO":
        raise _string_error("a range must read [low TO high]")
    low, high = (
        None if part == "*" else part.strip('"') for part in (parts[0], parts[2])
    )
    token = _Token(
        "RANGE",
        low=low,
        high=high,
        low_inclusive=text[position] == "[",
        high_inclusive=text[closing] == "]",
    )
    return token, closing + 1


def _read_word(text: str, position: int, is_value: bool) -> tuple[_Token, int]:
    chars: list[str] = []
    escaped = False
    prefix = False
    while position < len(text):
        char = text[position]
        if char.isspace() or char in _WORD_END:
            break
        if prefix:
            raise _string_error("only a trailing * wildcard is supported")
        if char == "\\":
            if position + 1 >= len(text):
                raise _string_error("the query ends with a backslash")
            chars.append(text[position + 1])
            escaped = True
            position += 2
            continue
        if char == ":" and not is_value:
            if not chars:
                raise _string_error(
                    f"a field name is missing before ':' at position {position}"
                )
            return _Token("FIELD", "".join(chars)), position + 1
        if char in _UNSUPPORTED:
            raise _string_error(
                f"{char!r} (fuzzy, boost or single-character wildcard) is not supported"
            )
        if char == "*":
            prefix = True
        else:
            chars.append(char)
        position += 1
    word = "".join(chars)
    if not is_value and not escaped and not prefix and word in _OPERATOR_WORDS:
        return _Token(_OPERATOR_WORDS[word]), position
    return _Token("TERM", word, prefix=prefix), position


@dataclass
class _StringQueryParser:
    """Recursive descent over `_Token`s, producing SQL conditions.

    Grammar (NOT binds tighter than AND, AND tighter than OR; juxtaposition
    is AND)::

        query   := and (OR and)*
        and     := unary (AND? unary)*
        unary   := NOT unary | primary
        primary := "(" query ")" | FIELD value | TERM | PHRASE
        value   := TERM | PHRASE | RANGE | "(" query ")"
    """

    context: _Context
    tokens: list[_Token]
    position: int = 0

    def parse(self) -> ColumnElement[bool]:
        if not self.tokens:
            return true()
        condition = self._query(None, 0)
        if self.position < len(self.tokens):
            raise _string_error(
                f"unexpected {self._describe(self.tokens[self.position])}"
            )
        return condition

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> _Token:
        token = self._peek()
        if token is None:
            raise _string_error("the query ends too early")
        self.position += 1
        return token

    def _accept(self, kind: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == kind:
            self.position += 1
            return True
        return False

    def _query(self, field_name: str | None, depth: int) -> ColumnElement[bool]:
        parts = [self._and(field_name, depth)]
        while self._accept("OR"):
            parts.append(self._and(field_name, depth))
        return or_(*parts) if len(parts) > 1 else parts[0]

    def _and(self, field_name: str | None, depth: int) -> ColumnElement[bool]:
        parts = [self._unary(field_name, depth)]
        while (token := self._peek()) is not None and token.kind not in ("OR", ")"):
            self._accept("AND")
            parts.append(self._unary(field_name, depth))
        return and_(*parts) if len(parts) > 1 else parts[0]

    def _unary(self, field_name: str | None, depth: int) -> ColumnElement[bool]:
        if self._accept("NOT"):
            return not_(self._unary(field_name, self._deeper(depth)))
        return self._primary(field_name, depth)

    def _deeper(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise _string_error(f"nested deeper than {MAX_DEPTH} levels")
        return depth + 1

    def _primary(self, field_name: str | None, depth: int) -> ColumnElement[bool]:
        token = self._next()
        if token.kind == "(":
            inner = self._query(field_name, self._deeper(depth))
            if not self._accept(")"):
                raise _string_error("a parenthesis is not closed")
            return inner
        if token.kind == "FIELD" and field_name is None:
            return self._field_value(token.text, depth)
        if token.kind in ("TERM", "PHRASE", "RANGE"):
            return self._term(field_name, token)
        raise _string_error(f"unexpected {self._describe(token)}")

    def _field_value(self, field_name: str, depth: int) -> ColumnElement[bool]:
        token = self._peek()
        if token is not None and token.kind == "(":
            return self._primary(field_name, depth)
        if token is None or token.kind not in ("TERM", "PHRASE", "RANGE"):
            raise _string_error(f"field {field_name!r} has no value")
        self.position += 1
        return self._term(field_name, token)

    def _term(self, field_name: str | None, token: _Token) -> ColumnElement[bool]:
        self.context.budget.spend()
        if field_name is None:
            return self._bare_term(token)
        ref = self.context.field(field_name)
        if token.kind == "RANGE":
            return _range(ref, token)
        if token.prefix and not token.text:
            return _contains(self.context, field_name)
        if token.prefix:
            return _prefix(ref, token.text)
        return _equals(ref, token.text)

    def _bare_term(self, token: _Token) -> ColumnElement[bool]:
        if token.kind == "RANGE":
            raise _string_error("a range needs a field, as in startDate:[a TO b]")
        if token.prefix and not token.text:
            return true()
        fields = text_fields(self.context.model, self.context.table)
        return or_(false(), *(_equals(ref, token.text) for ref in fields))

    @staticmethod
    def _describe(token: _Token) -> str:
        if token.kind in ("TERM", "PHRASE", "FIELD"):
            return f"{token.kind.lower()} {token.text!r}"
        return repr(token.kind)


def _range(ref: FieldRef, token: _Token) -> ColumnElement[bool]:
    bounds: list[Predicate] = []
    if token.low is not None:
        low = bind_value(convert_query_value(ref, token.low))
        inclusive = token.low_inclusive
        bounds.append(lambda column: column >= low if inclusive else column > low)
    if token.high is not None:
        high = bind_value(convert_query_value(ref, token.high))
        closed = token.high_inclusive
        bounds.append(lambda column: column <= high if closed else column < high)
    return _tested(
        ref, lambda column: and_(true(), *(bound(column) for bound in bounds))
    )


# -- sort and search ---------------------------------------------------------


def order_by_clauses(
    model: Model, sort: list[tuple[str, bool]], *, indexable: bool = True
) -> list[ColumnElement[Any]]:
    """Returns ORDER BY clauses for ``sort``, ending with ``id DESC``.

    Rows without a value sort last in both directions, as in
    Elasticsearch; the id tie-breaker makes paging stable. Raises
    InvalidQuery for an unknown field or one that cannot be sorted on
    (tags, custom fields, JSON attributes). When not ``indexable``, the
    sort keys are wrapped so that no index can serve them, and the
    database has to find the matches first, then sort them.
    """
    clauses: list[ColumnElement[Any]] = []
    for name, descending in sort:
        ref = resolve_field(model, name)
        if not ref.sortable or ref.value is None:
            raise InvalidQuery(f"Cannot sort on field {_show(name)} in {model.name}")
        # Limitation: text sorts in the database's collation, not byte order
        # as Elasticsearch's keywords do, because SQLite and PostgreSQL
        # share no collation name to ask for it.
        key = ref.value if indexable else func.coalesce(ref.value, ref.value)
        direction = key.desc() if descending else key.asc()
        # NULLS LAST only where a NULL can be: PostgreSQL cannot read an
        # index backwards for ``DESC NULLS LAST``, and sorted every match
        # of a common tag instead of walking the start-date index (87 ms
        # instead of 3 for "Open + phishing" over 100,000 cases).
        nullable = getattr(ref.value, "nullable", True)
        clauses.append(direction.nulls_last() if nullable else direction)
    clauses.append(model.table.c.id.desc())
    return clauses


def counted_total(
    conn: Connection, model: Model, organisation: str, query: object
) -> int | None:
    """Returns how many rows of ``model`` match ``query`` from its counters
    (kept by database triggers), or None when the model has none or the
    query filters on more than they count.

    Understood: no query, ``{}``, a status equality in any of TheHive's
    forms, ``_in`` on the status, one tag equality (for a model that counts
    per tag), and an ``_and`` or ``_or`` of those.
    """
    if model.status_counter is None:
        return None
    counted = _counted_filter(query, frozenset(model.statuses))
    if counted is None:
        return None
    statuses, tag = counted
    if tag is None:
        table = model.status_counter
        conditions = [table.c.organisation == organisation]
    elif model.tag_counter is not None:
        table = model.tag_counter
        conditions = [table.c.organisation == organisation, table.c.tag == tag]
    else:
        return None
    statement = select(func.coalesce(func.sum(table.c.total), 0)).where(
        *conditions, table.c.status.in_(sorted(statuses))
    )
    return int(conn.execute(statement).scalar_one())


# What a countable query selects: a set of statuses and at most one tag.
_Counted = tuple[frozenset[str], str | None]


def _counted_filter(node: object, every: frozenset[str]) -> _Counted | None:
    """The statuses and the tag a query on those alone selects, or None."""
    if node is None or node == {}:
        return every, None
    if not isinstance(node, Mapping) or len(node) not in (1, 2):
        return None
    if set(node) == {"_field", "_value"}:
        node = {str(node["_field"]): node["_value"]}
    if len(node) != 1:
        return None
    ((key, value),) = node.items()
    if key == "status" and isinstance(value, str):
        return frozenset({value}) & every, None
    if key == "tags" and isinstance(value, str):
        return every, value
    if key == "_in" and isinstance(value, Mapping) and value.get("_field") == "status":
        values = value.get("_values")
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            return frozenset(values) & every, None
        return None
    if key in ("_and", "_or") and isinstance(value, list) and value:
        parts = [_counted_filter(part, every) for part in value]
        return _combined(parts, conjunction=key == "_and")
    return None


def _combined(parts: list[_Counted | None], *, conjunction: bool) -> _Counted | None:
    """Parts joined by ``_and`` (``conjunction``) or ``_or``, when countable."""
    known = [part for part in parts if part is not None]
    if len(known) < len(parts):
        return None
    tags = {tag for _, tag in known}
    statuses = [selected for selected, _ in known]
    if conjunction:
        named = tags - {None}
        if len(named) > 1:  # two different tags: the counters cannot pair them
            return None
        return frozenset.intersection(*statuses), next(iter(named), None)
    if len(tags) > 1:  # "tag a or status b" is no sum of counters
        return None
    return frozenset.union(*statuses), tags.pop()


def search(
    conn: Connection,
    model: Model,
    *,
    organisation: str,
    query: object,
    range_: tuple[int, int | None],
    sort: list[tuple[str, bool]],
    scope: ColumnElement[bool] | None = None,
) -> tuple[list[RowMapping], int]:
    """Returns one page of ``model`` rows matching ``query``, and the total.

    Reads only rows of ``organisation`` that also satisfy ``scope`` (a
    caller's extra condition, such as "in this case"). ``range_`` is
    ``(offset, limit)`` from `parse_range`; ``sort`` comes from `parse_sort`.
    The rows carry every column of ``model.table``; the total counts all
    matching rows, ignoring the range: from the model's status counters
    when the query is on the status alone (`counted_total`), else a count.
    Raises InvalidQuery for a bad query or sort field.
    """
    lookups: list[FromClause] = []
    collecting = _side_lookups.set(lookups)
    try:
        condition = row_filter(
            model, organisation=organisation, query=query, scope=scope
        )
    finally:
        _side_lookups.reset(collecting)
    total = (
        None if scope is not None else counted_total(conn, model, organisation, query)
    )
    if total is None:
        counting = select(func.count()).select_from(model.table).where(condition)
        total = int(conn.execute(counting).scalar_one())
    # When many rows match, walking the sort index and probing the side
    # tables per row finds a page at once; when few match, starting from
    # the side tables' index is faster. The count just told us which. With
    # few matches, PostgreSQL may still walk the sort index, guessing the
    # matches spread evenly: a tag absent from the newest 38,000 open
    # cases took it 43 ms to find 50 of 512, and 5 ms when made to read
    # the 512 first and sort them. So with few matches found through a side
    # table, the sort is kept from using an index.
    dense = total > _DENSE_MATCHES
    if dense:
        token = _side_style.set("probe")
        try:
            condition = row_filter(
                model, organisation=organisation, query=query, scope=scope
            )
        finally:
            _side_style.reset(token)
    offset, limit = range_
    page = (
        select(model.table)
        .where(condition)
        .order_by(*order_by_clauses(model, sort, indexable=dense or not lookups))
        .offset(offset)
    )
    if limit is not None:
        page = page.limit(limit)
    logger.debug("search %s: %s", model.name, page)
    rows = list(conn.execute(page).mappings())
    return rows, total
