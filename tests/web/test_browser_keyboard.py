"""Keyboard use: signing in and closing a case without the mouse."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.api.conftest import ADMIN_PASSWORD, LiveServer
from tests.web.conftest import create_case

# The HTTP tests cover both backends; in the browser SQLite is enough and
# keeps the suite short.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("server", ["sqlite"], indirect=True),
]


def _tab_to(page: Page, predicate: str, limit: int = 60) -> None:
    """Presses Tab until the focused element satisfies ``predicate`` (JS)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(
            f"(() => {{ const el = document.activeElement; return {predicate}; }})()"
        ):
            return
    raise AssertionError(f"no focusable element matched {predicate}")


def test_signing_in_and_closing_a_case_work_from_the_keyboard(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> None:
    case = create_case(server, title="Keyboard only")
    page = new_context().new_page()

    page.goto(f"{server.url}/cases/{case['id']}")
    # The browser applies autofocus at its next rendering step, which can
    # come after goto returns: wait for it instead of losing a keystroke.
    expect(page.locator("#login")).to_be_focused()
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#case-title")).to_have_text("Keyboard only")

    _tab_to(page, "el.tagName === 'SUMMARY' && el.textContent.includes('Close case')")
    page.keyboard.press("Enter")
    _tab_to(page, "el.id === 'close-resolution'")
    page.keyboard.press("ArrowDown")  # True positive -> False positive
    _tab_to(page, "el.id === 'close-summary'")
    page.keyboard.type("Closed from the keyboard.")
    _tab_to(page, "el.tagName === 'BUTTON' && el.textContent.trim() === 'Close case'")
    page.keyboard.press("Enter")

    expect(page.locator("#case-status")).to_have_text("Closed · False positive")
    assert (
        server.client().get(f"/api/case/{case['id']}").json()["summary"]
        == "Closed from the keyboard."
    )
