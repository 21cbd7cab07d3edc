"""Markdown preview for the editors: the server's own renderer and
sanitiser, so the preview shows exactly what will be stored and shown."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cerana.domain.attributes import MAX_TEXT_LENGTH
from cerana.domain.errors import InvalidInput
from cerana.web.markdown import render_markdown
from cerana.web.routing import page_router
from cerana.web.session import check_csrf_header, signed_in

router = page_router()


@router.post("/markdown/preview")
async def preview(request: Request) -> Response:
    viewer = await signed_in(request)
    check_csrf_header(request, viewer)
    body = await request.body()
    if len(body) > 4 * MAX_TEXT_LENGTH:
        raise InvalidInput("This text is too long to preview")
    source = body.decode("utf-8", errors="replace")
    return HTMLResponse(
        render_markdown(source) or "<p><em>Nothing to preview.</em></p>"
    )
