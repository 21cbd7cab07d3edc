"""Builds the ASGI application: API routers, error handling, request ids."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cerana.analysis import cortex_api
from cerana.api import (
    alerts,
    cases,
    observables,
    platform_routes,
    stream,
    tasks,
    templates,
    users,
    webhooks,
)
from cerana.api.responses import json_response
from cerana.config import Settings
from cerana.connectors.cortex import health as cortex_health
from cerana.connectors.cortex import routes as cortex_routes
from cerana.domain.errors import CeranaError
from cerana.domain.identifiers import new_request_id
from cerana.platform import Platform
from cerana.web import pages as web_pages

logger = logging.getLogger(__name__)

# PostgreSQL's deadlock_detected and serialization_failure: the transaction
# was rolled back and the same request can simply be sent again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def create_app(settings: Settings, *, prepared: Platform | None = None) -> FastAPI:
    """Returns the Cerana ASGI app for ``settings``.

    The schema is migrated and the first admin created at start-up unless
    a ``prepared`` platform is handed over (the CLI prepares it itself to
    print the admin password).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = prepared or Platform.open(settings)
        if prepared is None:
            platform.prepare()
        app.state.platform = platform
        if settings.workers > 0:
            platform.queue.start_workers(platform, settings.workers)
            cortex_health.start_analysis(platform)
        logger.info("Cerana ready on %s", platform.db.dialect)
        yield
        platform.close()

    app = FastAPI(
        title="Cerana",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    if settings.cortex_embedded:
        # First: analyzers are run in bursts, and a request is matched
        # against each route in order (its /cortex/api prefix is its own).
        # Without the embedded engine there is no Cortex API to offer.
        app.include_router(cortex_api.router)
    # The busiest first: FastAPI tries a request's path against the routes
    # one by one (twice, for an included router), about 2 us each, and the
    # case routes came after 92 others (0.2 ms a request). Routers with
    # prefixes of their own can move freely; templates, tasks and
    # observables must stay before the cases' /api/case/{case_id} routes.
    for module in (
        platform_routes,  # /api/health, /api/status, /api/list
        templates,  # /api/case/template
        tasks,  # /api/case/task
        observables,  # /api/case/artifact
        cases,
        alerts,
        stream,
        users,
        webhooks,
        cortex_routes,
        web_pages,
    ):
        app.include_router(module.router)
    _install_error_handlers(app)
    app.add_middleware(RequestContext)
    return app


class RequestContext:
    """Gives every request an id, closes uploaded files after the response,
    and re-issues a session cookie nearing its expiry.

    Plain ASGI rather than ``@app.middleware("http")``: the latter wraps
    every response in extra tasks and streams, which costs time on each
    request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = request.headers.get("x-request-id", "")[:64] or new_request_id()
        request.state.request_id = request_id
        if _url_has_nul(request):
            # PostgreSQL refuses NUL in text, and no id, login or parameter has one.
            body = {"type": "BadRequest", "message": "the URL contains a NUL character"}
            await json_response(body, 400, {"X-Request-Id": request_id})(
                scope, receive, send
            )
            return

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = request_id
                _refresh_session(request, headers)
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            form = getattr(request.state, "open_form", None)
            if form is not None:
                await form.close()


def _refresh_session(request: Request, headers: MutableHeaders) -> None:
    refresh = getattr(request.state, "refresh_session", None)
    if refresh is None or "set-cookie" in headers:
        return
    from cerana.api.users import issue_session

    carrier = Response()
    issue_session(request, carrier, *refresh)
    for key, value in carrier.raw_headers:
        if key == b"set-cookie":
            headers.append("set-cookie", value.decode("latin-1"))


def _url_has_nul(request: Request) -> bool:
    params = request.query_params.multi_items()
    return "\x00" in request.scope["path"] or any(
        "\x00" in key + value for key, value in params
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CeranaError)
    async def on_cerana_error(request: Request, exc: CeranaError) -> Response:
        if exc.status >= 500:
            logger.error("request %s failed: %s", request.state.request_id, exc.message)
        return json_response(exc.to_json(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(
        request: Request, exc: RequestValidationError
    ) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return json_response(
            {
                "type": "BadRequest",
                "message": f"{where}: {first.get('msg', 'invalid')}",
            },
            400,
        )

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        kinds = {
            404: "NotFoundError",
            405: "BadRequest",
            401: "AuthenticationError",
            403: "AuthorizationError",
        }
        message = f"{request.method} {request.url.path}: {exc.detail}"
        status = 400 if exc.status_code == 405 else exc.status_code
        return json_response(
            {"type": kinds.get(exc.status_code, "BadRequest"), "message": message},
            status,
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", "-")
        logger.exception(
            "request %s %s %s failed unexpectedly",
            request_id,
            request.method,
            request.url.path,
        )
        body = {
            "type": "InternalError",
            "message": f"internal error; quote request id {request_id} to your administrator",
        }
        return json_response(body, 500)

    @app.exception_handler(DBAPIError)
    async def on_database_error(request: Request, exc: DBAPIError) -> Response:
        # In both cases below the whole transaction was rolled back: nothing
        # was written, and the same request can simply be sent again.
        if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
            return _send_again(
                request,
                exc,
                "met a concurrent transaction",
                409,
                "ConflictError",
                "a concurrent change got in the way",
            )
        if exc.connection_invalidated:
            # The server went away under a pooled connection (a restart):
            # the pool has dropped it and the next request gets a new one.
            return _send_again(
                request,
                exc,
                "lost its database connection",
                503,
                "ServiceUnavailable",
                "the database connection was lost",
            )
        return await on_unexpected(request, exc)


def _send_again(
    request: Request,
    exc: DBAPIError,
    what: str,
    status: int,
    kind: str,
    cause: str,
) -> Response:
    """The answer to a request whose transaction the database rolled back
    for a passing reason: say so, and that nothing was saved."""
    logger.warning(
        "request %s %s %s %s: %s",
        getattr(request.state, "request_id", "-"),
        request.method,
        request.url.path,
        what,
        type(exc.orig).__name__,
    )
    message = f"{cause} and nothing was saved; send the request again"
    return json_response({"type": kind, "message": message}, status)
