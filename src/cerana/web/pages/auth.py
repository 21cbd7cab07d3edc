"""Signing in and out: the same session cookie as `/api/login`."""

from __future__ import annotations

import hmac
import secrets

from sqlalchemy import Connection, RowMapping
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.api.users import issue_session
from cerana.auth.sessions import CSRF_COOKIE, SESSION_COOKIE
from cerana.domain.errors import AuthenticationFailed, Forbidden
from cerana.services import users
from cerana.web import forms
from cerana.web.database import read
from cerana.web.routing import page_router
from cerana.web.session import checked_form, signed_in
from cerana.web.templating import redirect, render, safe_next

router = page_router()


@router.get("/")
async def home(request: Request) -> Response:
    return redirect("/cases")


# Signing in has no session yet, so its form carries a token of its own
# (double submit: a cookie and a field that must match), which keeps another
# site from signing a visitor in to an account of the attacker's choosing.
LOGIN_FORM_COOKIE = "cerana_login"
LOGIN_FORM_FIELD = "login_token"


@router.get("/login")
async def login_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"), "/cases")
    return _login_page(request, target)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    login_name, password = forms.text(form, "login"), form.get("password")
    target = safe_next(forms.text(form, "next"), "/cases")
    cookie = request.cookies.get(LOGIN_FORM_COOKIE, "")
    sent = forms.text(form, LOGIN_FORM_FIELD)
    if not cookie or not hmac.compare_digest(cookie, sent):
        message = "This sign-in form has expired: sign in again."
        return _login_page(request, target, login_name, message, 403)
    if not login_name or not isinstance(password, str) or not password:
        message = "Enter your login and your password."
        return _login_page(request, target, login_name, message, 400)
    try:
        row = await read(request, _check_password, login_name, password)
    except AuthenticationFailed:
        message = "Wrong login or password."
        return _login_page(request, target, login_name, message, 401)
    except Forbidden as exc:
        return _login_page(request, target, login_name, exc.message, 403)
    response = redirect(target)
    response.delete_cookie(LOGIN_FORM_COOKIE, path="/login")
    issue_session(request, response, row["id"])
    return response


def _check_password(conn: Connection, login: str, password: str) -> RowMapping:
    return users.authenticate_password(conn, login, password)


def _login_page(
    request: Request,
    target: str,
    login: str = "",
    message: str | None = None,
    status: int = 200,
) -> Response:
    token = secrets.token_urlsafe(24)
    context = {
        "next": target,
        "login": login,
        "login_token": token,
        "errors": {"login": message} if message else {},
    }
    response = render(request, "login.html", context, status=status)
    secure = platform(request).settings.secure_cookies
    response.set_cookie(
        LOGIN_FORM_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer = await signed_in(request)
    await checked_form(request, viewer)
    response = redirect("/login", "You are signed out.")
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response
