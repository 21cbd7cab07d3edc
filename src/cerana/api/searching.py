"""The search and stats endpoints every entity shares (`_search`, `_stats`).

Query, range and sort come from the body or the query string; nparent
embeds the parent entity and nstats adds per-entity statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.api import render
from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read
from cerana.api.responses import json_response, search_response
from cerana.domain.errors import InvalidQuery
from cerana.services import cases as case_service
from cerana.services import observables as observable_service
from cerana.services.attachments import attachment_rows
from cerana.store import models, query, records, stats
from cerana.store.models import Model
from cerana.store.rows import Row

Scope = Callable[[], ColumnElement[bool]] | None
_PARENT_KEYS = {"case": "case", "case_task": "case_task"}


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _depth(value: Any) -> int:
    try:
        return max(0, min(int(value or 0), 10))
    except (TypeError, ValueError):
        raise InvalidQuery(f"nparent must be a number, not {value!r}") from None


async def search_endpoint(
    request: Request,
    model: Model,
    *,
    scope: ColumnElement[bool] | None = None,
    stats_flag: str = "nstats",
    default_range: str | None = None,
) -> Response:
    """Answers a `_search` (or list) request for ``model``."""
    actor = await guard(request, "read")
    fields = await read_fields(request, platform(request).settings.max_body_size)
    values = fields.values
    range_ = query.parse_range(values.get("range", default_range))
    sort = query.parse_sort(values.get("sort"))
    nparent = _depth(values.get("nparent"))
    with_stats = _flag(values.get(stats_flag)) or _flag(values.get("nstats"))

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        rows, total = query.search(
            conn,
            model,
            organisation=actor.organisation,
            query=values.get("query"),
            range_=range_,
            sort=sort,
            scope=scope,
        )
        return render_rows(
            conn,
            model,
            rows,
            nparent=nparent,
            with_stats=with_stats,
            organisation=actor.organisation,
        ), total

    items, total = await read(request, run)
    return search_response(items, total)


async def stats_endpoint(
    request: Request, model: Model, *, scope: ColumnElement[bool] | None = None
) -> Response:
    """Answers a `_stats` request for ``model``."""
    actor = await guard(request, "read")
    fields = await read_fields(request, platform(request).settings.max_body_size)
    if "stats" not in fields.values:
        raise InvalidQuery("a stats request needs a 'stats' list of aggregations")
    result = await read(
        request,
        stats.compute_stats,
        model,
        organisation=actor.organisation,
        query=fields.values.get("query"),
        aggregations=fields.values["stats"],
        scope=scope,
    )
    return json_response(result)


def render_rows(
    conn: Connection,
    model: Model,
    rows: Sequence[Row],
    *,
    nparent: int = 0,
    with_stats: bool = False,
    organisation: str,
) -> list[dict[str, Any]]:
    """Renders rows of ``model`` with attachments, parents and stats."""
    renderer = render.RENDERERS[model.name]
    attachment_ids = {r["attachment_id"] for r in rows if r.get("attachment_id")}
    attachments = attachment_rows(conn, attachment_ids)
    items = [renderer(row, attachments) for row in rows]
    if with_stats:
        _add_stats(conn, model, rows, items, organisation)
    if nparent and model.parent:
        _add_parents(conn, model, rows, items, nparent, organisation)
    return items


def _add_stats(
    conn: Connection,
    model: Model,
    rows: Sequence[Row],
    items: list[dict[str, Any]],
    organisation: str,
) -> None:
    if model.name == "case":
        for row, item in zip(rows, items, strict=True):
            item["stats"] = case_service.case_stats(conn, row["id"])
    elif model.name == "case_artifact":
        seen = observable_service.seen_counts(conn, organisation, rows)
        for row, item in zip(rows, items, strict=True):
            item["stats"] = {"seen": seen[row["id"]]}


def _add_parents(
    conn: Connection,
    model: Model,
    rows: Sequence[Row],
    items: list[dict[str, Any]],
    depth: int,
    organisation: str,
) -> None:
    assert model.parent is not None and model.parent_column is not None
    parent_model = models.MODELS[model.parent]
    parent_ids = list({row[model.parent_column] for row in rows})
    parents = records.fetch_many(conn, parent_model, parent_ids, organisation)
    parent_rows = [parents[i] for i in parent_ids if i in parents]
    rendered = dict(
        zip(
            [r["id"] for r in parent_rows],
            render_rows(
                conn,
                parent_model,
                parent_rows,
                nparent=depth - 1,
                organisation=organisation,
            ),
            strict=True,
        )
    )
    for row, item in zip(rows, items, strict=True):
        parent = rendered.get(row[model.parent_column])
        if parent is not None:
            item[_PARENT_KEYS.get(parent_model.name, parent_model.name)] = parent
