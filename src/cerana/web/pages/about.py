"""The About page: version, database backend and each Cortex instance."""

from __future__ import annotations

import sys

from starlette.requests import Request
from starlette.responses import Response

import cerana
from cerana.api.deps import platform
from cerana.connectors.cortex import health
from cerana.web.database import read
from cerana.web.routing import page_router
from cerana.web.session import signed_in
from cerana.web.templating import render

router = page_router()

_BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@router.get("/about")
async def about(request: Request) -> Response:
    await signed_in(request)
    p = platform(request)
    dialect = p.db.dialect
    cortex = await read(request, health.connector_status, p.settings)
    context = {
        "cerana_version": cerana.__version__,
        "backend": _BACKENDS.get(dialect, dialect),
        "python_version": sys.version.split()[0],
        "cortex_servers": cortex["servers"],
    }
    return render(request, "about.html", context)
