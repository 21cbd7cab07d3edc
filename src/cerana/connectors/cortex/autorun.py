"""Auto-run rules: run chosen analyzers on every new observable of chosen
datatypes (asked for since TheHive 2017).

The hook after observable creation costs one indexed query when rules
exist for the new datatypes, and nothing else; the runs themselves happen
in queued work, so creating observables never waits for a Cortex.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from cerana.domain.dates import now_ms
from cerana.domain.errors import CeranaError, InvalidInput, NotFound
from cerana.domain.identifiers import new_id
from cerana.platform import Platform
from cerana.queue import register
from cerana.services.context import Actor
from cerana.store import tables

logger = logging.getLogger(__name__)

AUTORUN_TASK = "cortex.autorun"


def list_rules(conn: Connection, organisation: str) -> list[RowMapping]:
    table = tables.analyzer_autorun
    return list(
        conn.execute(
            select(table)
            .where(table.c.organisation == organisation)
            .order_by(table.c.created_at)
        ).mappings()
    )


def create_rule(
    conn: Connection, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Adds a rule ``{"dataType": ..., "analyzers": [...]}``; raises InvalidInput."""
    data_type = body.get("dataType")
    analyzers = body.get("analyzers")
    if not isinstance(data_type, str) or not data_type:
        raise InvalidInput("dataType is missing")
    if (
        not isinstance(analyzers, list)
        or not analyzers
        or not all(isinstance(a, str) for a in analyzers)
    ):
        raise InvalidInput(
            "analyzers must be a non-empty list of analyzer ids or names"
        )
    row = {
        "id": new_id(),
        "data_type": data_type,
        "analyzers": analyzers,
        "enabled": body.get("enabled", True) is not False,
        "organisation": actor.organisation,
        "created_by": actor.login,
        "created_at": now_ms(),
        "version": 1,
    }
    conn.execute(tables.analyzer_autorun.insert().values(row))
    return row


def delete_rule(conn: Connection, actor: Actor, rule_id: str) -> None:
    table = tables.analyzer_autorun
    deleted = conn.execute(
        table.delete().where(
            table.c.id == rule_id, table.c.organisation == actor.organisation
        )
    )
    if deleted.rowcount == 0:
        raise NotFound(f"auto-run rule {rule_id[:64]} not found")


def schedule_autorun(
    platform: Platform, actor: Actor, created: Iterable[Mapping[str, Any]]
) -> int:
    """Queues the auto-run analyzers of newly created observables; returns
    how many observables matched a rule."""
    by_type: dict[str, list[str]] = {}
    for observable in created:
        data_type = observable.get("dataType") or observable.get("data_type")
        if observable.get("id") and data_type:
            by_type.setdefault(str(data_type), []).append(str(observable["id"]))
    if not by_type:
        return 0
    table = tables.analyzer_autorun
    with platform.db.read() as conn:
        rules = conn.execute(
            select(table.c.data_type, table.c.analyzers).where(
                table.c.organisation == actor.organisation,
                table.c.enabled.is_(True),
                table.c.data_type.in_(list(by_type)),
            )
        ).all()
    matched = 0
    for data_type, analyzers in rules:
        ids = by_type.get(data_type, [])
        matched += len(ids)
        platform.queue.enqueue(
            AUTORUN_TASK, actor.login, actor.organisation, list(analyzers), ids
        )
    return matched


@register(AUTORUN_TASK)
def run_autorun(
    platform: Platform,
    login: str,
    organisation: str,
    analyzers: Sequence[str],
    ids: Sequence[str],
) -> None:
    from cerana.connectors.cortex.jobs import run_analyzers

    actor = Actor(login, login, frozenset({"read", "write"}), organisation)
    # One pair at a time: an observable the analyzer refuses (TLP, PAP,
    # gone since) must not keep it from the others of the batch.
    for analyzer in analyzers:
        for observable_id in ids:
            try:
                run_analyzers(platform, actor, [analyzer], [observable_id])
            except CeranaError as exc:
                logger.warning(
                    "auto-run of analyzer %s on observable %s failed: %s",
                    analyzer,
                    observable_id,
                    exc.message,
                )
