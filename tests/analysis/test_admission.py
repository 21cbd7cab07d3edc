"""Admission turns a Waiting job InProgress only within the analyzer's
limits, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cerana.analysis import jobs, ratelimit
from cerana.analysis.configuration import Limits
from cerana.analyzers.base import RateLimit
from cerana.store import tables
from cerana.store.db import Database

NOW = 1_800_000_000_000


def _limits(concurrency: int, rate: RateLimit | None = None) -> Limits:
    return Limits(rate, concurrency, 0, 60.0, 3, 3)


def _add_job(db: Database, job_id: str, status: str, **values: Any) -> dict[str, Any]:
    row = {
        "id": job_id,
        "organisation": "org",
        "analyzer_id": "NoOp_1_0",
        "analyzer_name": "NoOp",
        "status": status,
        "data_type": "other",
        "data": job_id,
        "tlp": 2,
        "pap": 2,
        "message": "",
        "parameters": {},
        "cache_tag": job_id,
        "attempts": 0,
        "created_by": "admin",
        "created_at": NOW - 1000,
        **values,
    }
    with db.write() as conn:
        conn.execute(tables.analysis_job.insert(), row)
    return row


def _start(db: Database, job: dict[str, Any], limits: Limits) -> tuple[Any, Any]:
    with db.write() as conn:
        ratelimit.lock_gate(conn, "NoOp_1_0", NOW)
        return jobs._start(conn, job, "NoOp_1_0", limits, NOW)


def _status(db: Database, job_id: str) -> tuple[str, int | None]:
    job = tables.analysis_job
    with db.read() as conn:
        found = conn.execute(
            select(job.c.status, job.c.not_before).where(job.c.id == job_id)
        ).one()
    return found.status, found.not_before


@pytest.mark.parametrize(
    "rate", [None, RateLimit(100, "Minute")], ids=["no-rate", "rate"]
)
def test_a_job_waits_while_the_analyzer_runs_its_concurrency(
    db: Database, rate: RateLimit | None
) -> None:
    _add_job(db, "running", "InProgress", start_date=NOW - 500)
    waiting = _add_job(db, "waiting", "Waiting")

    held = _start(db, waiting, _limits(1, rate))
    started = _start(db, waiting, _limits(2, rate))

    assert held == (None, ratelimit.CONCURRENCY_RETRY_SECONDS)
    assert started[0] is not None and started[0]["attempts"] == 1
    assert _status(db, "waiting") == ("InProgress", None)


@pytest.mark.parametrize(
    "rate", [None, RateLimit(100, "Minute")], ids=["no-rate", "rate"]
)
def test_a_job_cancelled_before_its_start_stays_cancelled(
    db: Database, rate: RateLimit | None
) -> None:
    job = _add_job(db, "cancelled", "Waiting")
    with db.write() as conn:
        conn.execute(
            tables.analysis_job.update().values(status="Failure"),
        )

    outcome = _start(db, job, _limits(4, rate))

    assert outcome == (None, None)
    assert _status(db, "cancelled") == ("Failure", None)
