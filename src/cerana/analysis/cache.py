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

from sqlalchemy import Connection, RowMapping, bindparam, func, or_, select

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
    since = now - minutes * 60_000
    found = conn.execute(
        _CACHED_JOB, {"analyzer_id": analyzer_id, "tag": tag, "since": since}
    )
    return found.mappings().first()


# Built once, as it runs for every submission: building it cost more than
# running it on SQLite. Equalities rather than IN, whose list SQLAlchemy
# expands again at each execution.
_JOB = tables.analysis_job
_CACHED_JOB = (
    select(_JOB)
    .where(
        _JOB.c.analyzer_id == bindparam("analyzer_id"),
        _JOB.c.cache_tag == bindparam("tag"),
        or_(*(_JOB.c.status == s for s in ("Waiting", "InProgress", "Success"))),
        func.coalesce(_JOB.c.start_date, _JOB.c.created_at) >= bindparam("since"),
    )
    .order_by(_JOB.c.created_at.desc())
    .limit(1)
)
