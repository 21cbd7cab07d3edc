"""Health of the Cortex instances: probed by a periodic task, stored, and
summed up for ``/api/status`` as TheHive 3 does.

An instance is OK when ``GET <url>/api/status`` answers a version within
a second, ERROR otherwise. The connector is OK when all are, WARNING when
some are, ERROR when none are (or none is configured).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

import cerana
from cerana.analysis.errors import CortexUnavailable
from cerana.config import Settings
from cerana.connectors.cortex.client import CortexClient, remote_instances
from cerana.domain.dates import now_ms
from cerana.platform import Platform
from cerana.queue import register
from cerana.store import tables

logger = logging.getLogger(__name__)

LOCAL = "local"
HEALTH_TASK = "cortex.health"
PROBE_TIMEOUT_SECONDS = 1.0


@register(HEALTH_TASK, every_minutes=1)
def probe_task(platform: Platform) -> None:
    probe_instances(platform)


def probe_instances(platform: Platform) -> list[dict[str, Any]]:
    """Probes every remote instance and stores its state; returns them."""
    states = []
    for remote in remote_instances(platform.settings.cortex):
        state = {"name": remote.name, "status": "OK", "version": "", "message": None}
        try:
            with CortexClient(remote, timeout=PROBE_TIMEOUT_SECONDS) as client:
                state["version"] = client.status()
        except CortexUnavailable as exc:
            state.update(status="ERROR", message=exc.message)
        states.append(state)
    with platform.db.write() as conn:
        for state in states:
            _record(conn, state)
    for state in states:
        if state["status"] != "OK":
            logger.warning(
                "Cortex instance %s is down: %s", state["name"], state["message"]
            )
    return states


def _record(conn: Connection, state: dict[str, Any]) -> None:
    # An upsert: probes of several processes (or of the start-up and the
    # periodic task) may record the same instance at once.
    table = tables.cortex_instance
    values = {**state, "checked_at": now_ms()}
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(table).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={k: v for k, v in values.items() if k != "name"},
        )
    )


def connector_status(conn: Connection, settings: Settings) -> dict[str, Any]:
    """Returns ``connectors.cortex`` of ``/api/status``."""
    table = tables.cortex_instance
    stored = {row.name: row for row in conn.execute(select(table))}
    servers = []
    if settings.cortex_embedded:
        servers.append({"name": LOCAL, "version": cerana.__version__, "status": "OK"})
    for remote in remote_instances(settings.cortex):
        row = stored.get(remote.name)
        servers.append(
            {
                "name": remote.name,
                "version": row.version if row and row.status == "OK" else "",
                "status": row.status if row else "ERROR",
            }
        )
    up = sum(1 for s in servers if s["status"] == "OK")
    overall = "OK" if servers and up == len(servers) else "WARNING" if up else "ERROR"
    return {"enabled": True, "servers": servers, "status": overall}


def instance_is_up(conn: Connection, name: str) -> bool:
    """Tells whether the last probe found instance ``name`` up."""
    table = tables.cortex_instance
    row = conn.execute(select(table.c.status).where(table.c.name == name)).first()
    return row is None or row.status == "OK"


def start_analysis(platform: Platform) -> None:
    """At start-up: recovers jobs a crash left behind and probes the
    instances at once rather than at the next minute."""
    from cerana.analysis.jobs import recover_jobs

    recover_jobs(platform)
    platform.queue.enqueue(HEALTH_TASK)
