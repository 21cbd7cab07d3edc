"""Jinja2 templates of the web UI, their filters, and the page responses.

Autoescaping is always on; the only markup that reaches a template
unescaped is sanitised markdown (`cerana.web.markdown`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

import cerana
from cerana.web.indicators import cortex_indicator
from cerana.web.markdown import render_markdown
from cerana.web.session import CSRF_FIELD, Viewer

FLASH_COOKIE = "cerana_flash"
MAX_FLASH_LENGTH = 300

TLP_NAMES = {0: "WHITE", 1: "GREEN", 2: "AMBER", 3: "RED"}
SEVERITY_NAMES = {1: "Low", 2: "Medium", 3: "High"}
TASK_STATUS_NAMES = {
    "Waiting": "Waiting",
    "InProgress": "In progress",
    "Completed": "Completed",
    "Cancel": "Cancelled",
}
RESOLUTION_NAMES = {
    "TruePositive": "True positive",
    "FalsePositive": "False positive",
    "Indeterminate": "Indeterminate",
    "Other": "Other",
    "Duplicated": "Duplicated",
}
IMPACT_NAMES = {
    "WithImpact": "With impact",
    "NoImpact": "No impact",
    "NotApplicable": "Not applicable",
}


def format_time(millis: int | None, *, seconds: bool = False) -> str:
    """Returns epoch milliseconds as ``YYYY-MM-DD HH:MM`` in UTC."""
    if millis is None:
        return ""
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def iso_time(millis: int | None) -> str:
    """Returns epoch milliseconds as an ISO 8601 UTC timestamp."""
    if millis is None:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="seconds")


def url_with(base: str, params: Mapping[str, Any], **changes: Any) -> str:
    """Returns ``base`` with the query ``params`` updated by ``changes``;
    a change to None or "" drops the parameter."""
    merged = {k: v for k, v in params.items() if v not in (None, "")}
    for key, value in changes.items():
        if value in (None, ""):
            merged.pop(key, None)
        else:
            merged[key] = value
    return f"{base}?{urlencode(merged)}" if merged else base


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cerana.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=format_time,
        iso=iso_time,
        markdown=render_markdown,
        tlp=lambda v: TLP_NAMES.get(v, str(v)),
        severity=lambda v: SEVERITY_NAMES.get(v, str(v)),
        task_status=lambda v: TASK_STATUS_NAMES.get(v, v),
        resolution=lambda v: RESOLUTION_NAMES.get(v, v or ""),
        impact=lambda v: IMPACT_NAMES.get(v, v or ""),
    )
    env.globals.update(
        version=cerana.__version__,
        csrf_field=CSRF_FIELD,
        url_with=url_with,
        TLP_NAMES=TLP_NAMES,
        SEVERITY_NAMES=SEVERITY_NAMES,
        TASK_STATUS_NAMES=TASK_STATUS_NAMES,
        RESOLUTION_NAMES=RESOLUTION_NAMES,
        IMPACT_NAMES=IMPACT_NAMES,
    )
    return env


environment = _environment()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    viewer: Viewer | None = None,
) -> HTMLResponse:
    """Renders a page; the viewer, the flash message and the current path
    are added to ``context``."""
    shown = viewer or getattr(request.state, "viewer", None)
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:MAX_FLASH_LENGTH]
    page = environment.get_template(template).render(
        {
            "viewer": shown,
            "cortex_health": cortex_indicator(request) if shown else None,
            "flash": flash,
            "path": request.url.path,
            "errors": {},
            "values": {},
            **context,
        }
    )
    response = HTMLResponse(page, status_code=status)
    if flash:
        response.delete_cookie(FLASH_COOKIE)
    return response


def redirect(url: str, flash: str | None = None) -> Response:
    """A 303 redirect (after a POST), with an optional one-time message."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(
            FLASH_COOKIE,
            quote(flash[:MAX_FLASH_LENGTH]),
            max_age=60,
            httponly=True,
            samesite="lax",
        )
    return response


def safe_next(target: str | None, default: str) -> str:
    """Returns ``target`` when it is a path on this site, else ``default``,
    so a crafted link cannot send a user elsewhere after a form."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return default
    return target
