"""The job cache: an identical request within the cache period gets the
earlier job instead of a new run.

The key follows Cortex 3: analyzer, dataType, TLP, the value (or the file's
SHA-256) and the parameters; PAP and message are left out. Unlike Cortex,
a job still Waiting also matches (Cortex matches on ``startDate`` only), so
a burst of identical requests queues one job, not one each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select

from cerana.store import tables


def cache_tag(
    analyzer_id: str,
    data_type: str,
    tlp: int,
    value: str,
    parameters: Mapping[str, Any],
) -> str:
    """Returns the cache key of a job request."""
    text = "|".join(
        [
            analyzer_id,
            data_type,
            str(tlp),
            value,
            json.dumps(parameters, sort_keys=True),
        ]
    )
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def find_cached_job(
    conn: Connection, analyzer_id: str, tag: str, minutes: int, now: int
) -> RowMapping | None:
    """Returns the newest usable job with ``tag`` started (or queued) in the
    last ``minutes``; None when the cache is off or has nothing."""
    if minutes <= 0:
        return None
    job = tables.analysis_job
    since = now - minutes * 60_000
    return (
        conn.execute(
            select(job)
            .where(
                job.c.analyzer_id == analyzer_id,
                job.c.cache_tag == tag,
                job.c.status.in_(("Waiting", "InProgress", "Success")),
                func.coalesce(job.c.start_date, job.c.created_at) >= since,
            )
            .order_by(job.c.created_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
