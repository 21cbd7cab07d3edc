"""What must not happen in the browser: a read-only user writing, and
markdown running script."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.api.conftest import LiveServer
from tests.web.conftest import PASSWORD, create_case

# The HTTP tests cover both backends; in the browser SQLite is enough and
# keeps the suite short.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("server", ["sqlite"], indirect=True),
]

SignIn = Callable[..., Page]

INJECTIONS = """Investigate this.

<script>window.__pwned = true; document.title = "pwned";</script>

<img src=x onerror="window.__pwned = true; document.title = 'pwned'">

<svg onload="window.__pwned = true"></svg>

<iframe src="javascript:window.__pwned=true"></iframe>

[click for details](javascript:window.__pwned=true)

<a href="javascript:window.__pwned=true">raw link</a>

![logo](javascript:window.__pwned=true)

[safe link](https://example.org/report)
"""


def test_a_read_only_user_sees_no_write_controls_and_a_forged_post_is_refused(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Data exfiltration")
    admin = server.client()
    admin.post(f"/api/case/{case['id']}/task", json={"title": "Check proxy logs"})
    admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "domain", "data": "exfil.example", "message": "m"},
    )
    server.add_user("reader", ["read"])
    page = sign_in("reader", PASSWORD)

    page.goto(f"{server.url}/cases/{case['id']}")
    expect(page.locator("#case-title")).to_have_text("Data exfiltration")
    write_controls = (
        "form[method=post]:not([action='/logout']), a[href='/cases/new'], main [formaction], "
        "main input[name=case], main input[name=observable], main textarea"
    )
    assert page.locator(write_controls).count() == 0
    assert page.get_by_text("Close case…").count() == 0
    for tab in ("tasks", "observables", "history"):
        page.goto(f"{server.url}/cases/{case['id']}?tab={tab}")
        assert page.locator(write_controls).count() == 0, tab
    page.goto(f"{server.url}/cases")
    expect(page.get_by_role("link", name="Data exfiltration")).to_be_visible()
    assert page.locator(write_controls).count() == 0

    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    forged = page.request.post(
        f"{server.url}/cases/{case['id']}/close",
        form={
            "csrf_token": token or "",
            "resolution": "FalsePositive",
            "summary": "hidden",
        },
    )

    assert forged.status == 403
    assert "needs the write role" in forged.text()
    assert admin.get(f"/api/case/{case['id']}").json()["status"] == "Open"


def test_markdown_injections_in_a_description_render_inert(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Injected description", description=INJECTIONS)
    page = sign_in()
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)

    page.goto(f"{server.url}/cases/{case['id']}")
    description = page.locator("#case-description")
    expect(description).to_contain_text("Investigate this.")
    page.get_by_role("link", name="safe link").hover()
    page.wait_for_timeout(300)

    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.title() == "#1 Injected description – Details · Cerana"
    assert description.locator("script, img, svg, iframe").count() == 0
    assert description.locator("[onerror], [onload]").count() == 0
    hrefs = [a.get_attribute("href") for a in description.locator("a").all()]
    assert hrefs == ["https://example.org/report"]
    assert description.locator("a").get_attribute("rel") == "noopener noreferrer"
    expect(description).to_contain_text("<script>window.__pwned = true;")


def test_the_markdown_preview_of_a_log_renders_injections_inert(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server)
    task = (
        server.client()
        .post(f"/api/case/{case['id']}/task", json={"title": "Write up"})
        .json()
    )
    page = sign_in()
    page.goto(f"{server.url}/tasks/{task['id']}")

    page.locator("#log-message").fill(INJECTIONS)
    page.get_by_role("button", name="Preview").click()
    preview = page.locator(".md-preview")
    expect(preview).to_contain_text("Investigate this.")
    page.get_by_role("button", name="Write").click()
    page.get_by_role("button", name="Add log").click()
    log = page.locator(".log .markdown")
    expect(log).to_contain_text("Investigate this.")

    assert page.evaluate("window.__pwned") is None
    assert log.locator("script, img, svg, iframe, [onerror], [onload]").count() == 0
    assert [a.get_attribute("href") for a in log.locator("a").all()] == [
        "https://example.org/report"
    ]
    assert re.fullmatch(r"Write up – task of #\d+ · Cerana", page.title())
