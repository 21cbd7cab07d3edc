"""Per-analyzer concurrency and rate limits, held across worker processes.

A job over a limit is not refused: its admission is postponed, and the
worker re-queues it for the moment a slot frees up (Cortex answers 429
instead, and users lost jobs to it: Cortex #164).

Admission happens in a write transaction that first locks the analyzer's
gate row (SQLite's ``BEGIN IMMEDIATE`` already serialises writers; on
PostgreSQL ``SELECT ... FOR UPDATE`` does), so two workers never both take
the last slot.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.dialects import postgresql

from cerana.analysis.configuration import Limits
from cerana.store import tables

# How soon a job held back by the concurrency limit looks again.
CONCURRENCY_RETRY_SECONDS = 0.5


def lock_gate(conn: Connection, analyzer_id: str, now: int) -> None:
    """Takes the analyzer's admission lock until the transaction ends."""
    if conn.dialect.name != "postgresql":
        return  # BEGIN IMMEDIATE holds SQLite's only write lock already
    gate = {"analyzer_id": analyzer_id}
    if conn.execute(_LOCK_GATE, gate).first() is None:
        # The analyzer's first admission: its row, then the lock. Two first
        # admissions at once both insert; one insert does nothing.
        conn.execute(_CREATE_GATE, {**gate, "admitted_at": now})
        conn.execute(_LOCK_GATE, gate)


# Built once, as they run at every admission: the gate row exists after
# the analyzer's first job, so one statement locks it from then on.
_LOCK_GATE = (
    select(tables.analyzer_gate.c.analyzer_id)
    .where(tables.analyzer_gate.c.analyzer_id == bindparam("analyzer_id"))
    .with_for_update()
)
_CREATE_GATE = (
    postgresql.insert(tables.analyzer_gate)
    .values(analyzer_id=bindparam("analyzer_id"), admitted_at=bindparam("admitted_at"))
    .on_conflict_do_nothing()
)
_RUNNING = (
    select(func.count())
    .select_from(tables.analysis_job)
    .where(
        tables.analysis_job.c.analyzer_id == bindparam("analyzer_id"),
        tables.analysis_job.c.status == "InProgress",
    )
)


def admission_delay(
    conn: Connection, analyzer_id: str, limits: Limits, now: int
) -> float | None:
    """Returns None when a job of ``analyzer_id`` may start now, else the
    seconds to wait before trying again. Call under `lock_gate`."""
    running = conn.execute(_RUNNING, {"analyzer_id": analyzer_id}).scalar_one()
    if running >= limits.concurrency:
        return CONCURRENCY_RETRY_SECONDS
    if limits.rate is None:
        return None
    window = limits.rate.window_seconds * 1000
    started = conn.execute(
        _STARTED, {"analyzer_id": analyzer_id, "since": now - window}
    ).one()
    if started[0] < limits.rate.count:
        return None
    oldest = int(started[1])
    return max((oldest + window - now) / 1000, 0.05)


_STARTED = select(func.count(), func.min(tables.analysis_job.c.start_date)).where(
    tables.analysis_job.c.analyzer_id == bindparam("analyzer_id"),
    tables.analysis_job.c.start_date >= bindparam("since"),
    tables.analysis_job.c.status != "Waiting",
)
