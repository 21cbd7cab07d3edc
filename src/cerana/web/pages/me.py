"""The user's own account: change the password, renew the API key."""

from __future__ import annotations

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.domain.errors import CeranaError, InvalidInput
from cerana.services import users
from cerana.services.context import Actor
from cerana.web import forms
from cerana.web.database import write
from cerana.web.routing import page_router
from cerana.web.session import Viewer, checked_form, signed_in
from cerana.web.templating import redirect, render

router = page_router()


@router.get("/me")
async def account(request: Request) -> Response:
    viewer = await signed_in(request)
    return _page(request, viewer)


def _page(
    request: Request, viewer: Viewer, status: int = 200, **context: object
) -> Response:
    context = {"new_key": None, **context}
    return render(request, "me.html", context, status=status, viewer=viewer)


@router.post("/me/password")
async def change_password(request: Request) -> Response:
    viewer = await signed_in(request)
    form = await checked_form(request, viewer)
    current, new, again = (
        form.get(n) for n in ("current_password", "password", "password_again")
    )
    try:
        if new != again:
            raise InvalidInput("The two new passwords differ")
        await write(request, _change_password, viewer.actor, current, new)
    except CeranaError as exc:
        return _page(request, viewer, 400, errors={"password": exc.message})
    return redirect("/me", "Your password is changed.")


def _change_password(
    conn: Connection, actor: Actor, current: object, new: object
) -> None:
    users.check_password_rules(new)
    users.change_password(conn, actor, actor.login, current, new)


@router.post("/me/key")
async def renew_key(request: Request) -> Response:
    viewer = await signed_in(request)
    form = await checked_form(request, viewer)
    if forms.text(form, "action") == "revoke":
        await write(request, users.revoke_key, viewer.actor, viewer.login)
        return redirect("/me", "Your API key is revoked.")
    key = await write(request, users.renew_key, viewer.actor, viewer.login)
    viewer = Viewer(viewer.actor, viewer.csrf, has_key=True)
    return _page(request, viewer, new_key=key)
