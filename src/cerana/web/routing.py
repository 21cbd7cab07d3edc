"""The route class of every page: errors as pages, timing, security headers.

Page handlers raise the same `CeranaError`s as the API; here they become an
HTML page with the message and the error's status (a read-only user's
forged write gets 403 and says which role it needs). An unexpected failure
is logged with the request id and shown as a generic page quoting that id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from cerana.domain.errors import CeranaError
from cerana.web.database import database_seconds
from cerana.web.session import SignInRequired
from cerana.web.templating import render

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Scripts and styles come from /static only; markdown can embed images
# from this site or data: URLs, never from elsewhere (a tracking pixel in a
# phishing case's description would tell the attacker who looked).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_TITLES = {
    400: "Bad request",
    401: "Sign in required",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
}


class PageRoute(APIRoute):
    """An APIRoute that turns errors into HTML pages and times the page."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await _answer(handler, request)
            finally:
                await request.close()  # uploaded files' temporary copies
            _add_headers(request, response, time.perf_counter() - started)
            return response

        return page


def page_router() -> APIRouter:
    """Returns a router whose routes are pages."""
    return APIRouter(route_class=PageRoute, include_in_schema=False)


async def _answer(handler: Handler, request: Request) -> Response:
    try:
        return await handler(request)
    except SignInRequired:
        return _to_sign_in(request)
    except CeranaError as exc:
        return error_page(request, exc.status, exc.message)
    except HTTPException as exc:
        return error_page(request, exc.status_code, str(exc.detail))
    except Exception:
        request_id = getattr(request.state, "request_id", "-")
        logger.exception(
            "page %s %s failed (request %s)",
            request.method,
            request.url.path,
            request_id,
        )
        message = f"Something went wrong on the server. Quote request id {request_id} to your administrator."
        return error_page(request, 500, message)


def error_page(request: Request, status: int, message: str) -> Response:
    """Returns the HTML page of an error."""
    title = _TITLES.get(status, "Server error" if status >= 500 else "Error")
    context = {"title": title, "message": message, "status": status}
    try:
        return render(request, "error.html", context, status=status)
    except Exception:  # the error page itself failed: answer plainly
        logger.exception("error page for %s failed", request.url.path)
        body = f"<!doctype html><title>{title}</title><h1>{title}</h1>"
        return HTMLResponse(body, status_code=status)


def _to_sign_in(request: Request) -> Response:
    # After a POST there is no page to go back to: start from the list.
    target = "/cases"
    if request.method == "GET":
        target = request.url.path + (
            f"?{request.url.query}" if request.url.query else ""
        )
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _add_headers(request: Request, response: Response, seconds: float) -> None:
    database = database_seconds(request)
    response.headers["Server-Timing"] = (
        f"db;dur={database * 1000:.1f}, app;dur={seconds * 1000:.1f}"
    )
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
