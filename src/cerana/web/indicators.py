"""The health indicators in every page's footer.

One indicator per connector product, from the state the periodic probe
stored (`cerana.connectors.cortex.health`): the page never probes an
instance itself, so a dead instance cannot slow it down.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from cerana.api.deps import platform
from cerana.connectors.cortex import health

logger = logging.getLogger(__name__)


def cortex_indicator(request: Request) -> dict[str, Any] | None:
    """Returns ``connectors.cortex`` of ``/api/status`` for the footer, or
    None when no instance is configured (nothing to show, rather than a
    status no instance backs) or the state cannot be read."""
    p = platform(request)
    # Limitation: read on the event loop, because pages render
    # synchronously; it is one query on a table of one row per instance.
    try:
        with p.db.read() as conn:
            status = health.connector_status(conn, p.settings)
    except SQLAlchemyError:
        logger.warning(
            "Cortex health unreadable for the footer of %s", request.url.path
        )
        return None
    return status if status["servers"] else None
