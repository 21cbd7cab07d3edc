"""Administration: user accounts and observable datatypes (admin role)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cerana.domain import attributes as attrs
from cerana.domain.errors import CeranaError, InvalidInput
from cerana.services import lists, users
from cerana.services.context import Actor
from cerana.store import models, query
from cerana.web import forms
from cerana.web.database import read, write
from cerana.web.routing import page_router
from cerana.web.session import (
    Viewer,
    checked_form,
    posted_form_as,
    signed_in,
    signed_in_as,
)
from cerana.web.templating import redirect, render

router = page_router()

MAX_USERS = 1000


# -- users -------------------------------------------------------------------


@router.get("/admin/users")
async def user_list(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    return await _users_page(request, viewer)


async def _users_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
    new_key: tuple[str, str] | None = None,
) -> Response:
    rows = await read(request, _all_users, viewer.actor)
    context = {
        "users": rows,
        "roles": attrs.ROLES,
        "errors": errors or {},
        "values": values or {},
        "new_key": new_key,
    }
    return render(request, "admin/users.html", context, status=status)


def _all_users(conn: Connection, actor: Actor) -> list[Any]:
    rows, _ = query.search(
        conn,
        models.USER,
        organisation=actor.organisation,
        query=None,
        range_=(0, MAX_USERS),
        sort=[("login", False)],
    )
    return rows


@router.post("/admin/users")
async def create_user(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    body: dict[str, Any] = {
        "login": forms.text(form, "login"),
        "name": forms.text(form, "name"),
        "roles": [role for role in attrs.ROLES if forms.checked(form, f"role_{role}")],
    }
    password = form.get("password")
    if isinstance(password, str) and password:
        body["password"] = password
    try:
        if "password" in body:
            users.check_password_rules(password)  # hashing is slow: check first
        await write(request, users.create_user, viewer.actor, body)
    except CeranaError as exc:
        if exc.status in (401, 403):
            raise
        values = {
            k: v for k, v in form.items() if isinstance(v, str) and k != "password"
        }
        return await _users_page(
            request, viewer, errors={"create": exc.message}, values=values, status=400
        )
    return redirect("/admin/users", f"User {body['login']} created.")


@router.post("/admin/users/{login}")
async def change_user(request: Request, login: str) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    action = forms.text(form, "action")
    try:
        if action == "key":
            key = await write(request, users.renew_key, viewer.actor, login)
            return await _users_page(request, viewer, new_key=(login, key))
        message = await _change(request, viewer, login, action, form)
    except CeranaError as exc:
        if exc.status in (401, 403):
            raise
        return await _users_page(
            request, viewer, errors={login: exc.message}, status=400
        )
    return redirect("/admin/users", message)


async def _change(
    request: Request, viewer: Viewer, login: str, action: str, form: FormData
) -> str:
    if action == "roles":
        roles = [role for role in attrs.ROLES if forms.checked(form, f"role_{role}")]
        await write(request, users.update_user, viewer.actor, login, {"roles": roles})
        return f"Roles of {login} saved."
    if action in ("lock", "unlock"):
        await write(
            request,
            users.set_status,
            viewer.actor,
            login,
            "Locked" if action == "lock" else "Ok",
        )
        return f"User {login} {action}ed."
    if action == "password":
        password = form.get("password")
        users.check_password_rules(password)
        await write(request, users.set_password, viewer.actor, login, password)
        return f"Password of {login} set."
    raise InvalidInput("Choose an action")


# -- datatypes ---------------------------------------------------------------


@router.get("/admin/datatypes")
async def datatype_list(request: Request) -> Response:
    viewer = await signed_in_as(request, "admin")
    return await _datatypes_page(request, viewer)


async def _datatypes_page(
    request: Request,
    viewer: Viewer,
    *,
    error: str | None = None,
    value: str = "",
    status: int = 200,
) -> Response:
    items = await read(
        request, lists.list_items, viewer.actor.organisation, lists.DATATYPE_LIST
    )
    names = sorted(
        ((str(v), k) for k, v in items.items() if isinstance(v, str)),
        key=lambda i: i[0],
    )
    context = {
        "datatypes": names,
        "errors": {"datatype": error} if error else {},
        "values": {"name": value},
    }
    return render(request, "admin/datatypes.html", context, status=status)


@router.post("/admin/datatypes")
async def add_datatype(request: Request) -> Response:
    viewer, form = await posted_form_as(request, "admin")
    name = forms.text(form, "name")
    try:
        await write(request, lists.add_item, viewer.actor, lists.DATATYPE_LIST, name)
    except CeranaError as exc:
        if exc.status in (401, 403):
            raise
        return await _datatypes_page(
            request, viewer, error=exc.message, value=name, status=400
        )
    return redirect("/admin/datatypes", f"Datatype {name} added.")


@router.post("/admin/datatypes/{item_id}/remove")
async def remove_datatype(request: Request, item_id: str) -> Response:
    viewer = await signed_in(request)
    await checked_form(request, viewer)
    viewer.require("admin")
    await write(request, lists.remove_item, viewer.actor, item_id)
    return redirect(
        "/admin/datatypes", "Datatype removed; observables that use it keep it."
    )
