"""Session and user routes: login, logout, current user, user admin."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cerana.api import render
from cerana.api.body import read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response
from cerana.api.searching import search_endpoint
from cerana.auth.sessions import CSRF_COOKIE, SESSION_COOKIE
from cerana.domain.errors import AuthenticationFailed, InvalidInput
from cerana.services import users as user_service
from cerana.store import models

router = APIRouter()


@router.post("/api/login")
async def login(request: Request) -> Response:
    fields = await read_fields(request, 64 * 1024)
    user, password = fields.values.get("user"), fields.values.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise AuthenticationFailed("Authentication failure: send user and password")

    def run(conn: Connection) -> dict[str, object]:
        return dict(user_service.authenticate_password(conn, user, password))

    row = await read(request, run)
    response = json_response(render.render_user(row, with_preferences=True))
    issue_session(request, response, str(row["id"]))
    return response


def issue_session(
    request: Request, response: Response, login: str, csrf: str | None = None
) -> None:
    """Sets the session cookie and the readable CSRF cookie on ``response``."""
    p = platform(request)
    value, session = p.sessions.issue(login, csrf)
    secure = p.settings.secure_cookies
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=p.settings.session_inactivity,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.set_cookie(
        CSRF_COOKIE, session.csrf, httponly=False, samesite="lax", secure=secure
    )


@router.get("/api/logout")
async def logout(request: Request) -> Response:
    response = empty(200)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/api/user/current")
async def current_user(request: Request) -> Response:
    actor = await guard(request, None)
    row = await read(request, user_service.get_user, actor.login, actor.organisation)
    return json_response(render.render_user(row, with_preferences=True))


@router.post("/api/user/_search")
async def search_users(request: Request) -> Response:
    return await search_endpoint(request, models.USER)


@router.get("/api/user")
async def list_users(request: Request) -> Response:
    return await search_endpoint(request, models.USER, default_range="all")


@router.post("/api/user")
async def create_user(request: Request) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    password = fields.values.get("password")
    if password is not None:  # hashing is slow: check rules before the transaction
        user_service.check_password_rules(password)
    row = await write(request, user_service.create_user, actor, fields.values)
    return json_response(render.render_user(row), 201)


@router.get("/api/user/{login}")
async def get_user(request: Request, login: str) -> Response:
    actor = await guard(request, "read")
    row = await read(request, user_service.get_user, login, actor.organisation)
    return json_response(render.render_user(row))


@router.patch("/api/user/{login}")
async def update_user(request: Request, login: str) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    row = await write(request, user_service.update_user, actor, login, fields.values)
    return json_response(render.render_user(row))


@router.delete("/api/user/{login}")
async def delete_user(request: Request, login: str) -> Response:
    actor = await guard(request, "admin")
    await write(request, user_service.set_status, actor, login, "Locked")
    return empty()


@router.post("/api/user/{login}/password/set")
async def set_password(request: Request, login: str) -> Response:
    actor = await guard(request, "admin")
    fields = await read_fields(request, 64 * 1024, with_query=False)
    await write(
        request, user_service.set_password, actor, login, fields.values.get("password")
    )
    return empty()


@router.post("/api/user/{login}/password/change")
async def change_password(request: Request, login: str) -> Response:
    actor = await guard(request, "read")
    fields = await read_fields(request, 64 * 1024, with_query=False)
    current, new = fields.values.get("currentPassword"), fields.values.get("password")
    await write(request, user_service.change_password, actor, login, current, new)
    return empty()


@router.get("/api/user/{login}/key")
async def get_key(request: Request, login: str) -> Response:
    await guard(request, "admin")
    raise InvalidInput(
        "API keys are stored hashed and cannot be shown again; renew the key to get a new one"
    )


@router.post("/api/user/{login}/key/renew")
async def renew_key(request: Request, login: str) -> Response:
    actor = await guard(request, None)
    key = await write(request, user_service.renew_key, actor, login)
    return PlainTextResponse(key, headers={"Cache-Control": "no-store"})


@router.delete("/api/user/{login}/key")
async def revoke_key(request: Request, login: str) -> Response:
    actor = await guard(request, None)
    await write(request, user_service.revoke_key, actor, login)
    return empty(200)


__all__ = ["router", "issue_session"]
