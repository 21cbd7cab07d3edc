"""Case templates in chromium (#5): an administrator builds a template with
owned tasks and a custom field default, an analyst opens a case from it,
and the case refuses to close while a mandatory field is empty."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.api.conftest import LiveServer
from tests.template_fixtures import define

# The HTTP tests cover both backends; in the browser SQLite is enough and
# keeps the suite short.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("server", ["sqlite"], indirect=True),
]

SignIn = Callable[..., Page]


def _define_fields(server: LiveServer) -> None:
    admin = server.client()
    define(
        admin,
        "custom_fields",
        {
            "reference": "impact",
            "name": "Business impact",
            "description": "",
            "type": "string",
            "options": [],
            "mandatory": False,
        },
    )
    define(
        admin,
        "custom_fields",
        {
            "reference": "hosts",
            "name": "Affected hosts",
            "description": "",
            "type": "integer",
            "options": [],
            "mandatory": True,
        },
    )


def test_a_case_opened_from_a_template_has_its_owners_and_value_and_cannot_close_empty(
    server: LiveServer, sign_in: SignIn
) -> None:
    _define_fields(server)
    server.add_user("ann", ["read", "write"])
    server.add_user("bob", ["read", "write"])
    page = sign_in()

    # build the template: the second task is added by a form post, then
    # moved up from the keyboard by the editor's script
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="New template").click()
    expect(page).to_have_title("New case template · Cerana")
    page.get_by_label("Template name").fill("Phishing")
    page.get_by_label("Title prefix").fill("[PHISH]")
    page.locator("#task-0-title").fill("Block sender")
    page.locator("#task-0-owner").select_option("bob")
    page.get_by_role("button", name="Add task").click()
    expect(page.locator("#task-0-title")).to_have_value("Block sender")
    page.locator("#task-1-title").fill("Collect headers")
    page.locator("#task-1-owner").select_option("ann")
    page.get_by_role("button", name="Move task 2 up").focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-task-row] input[name$='-title']").first).to_have_value(
        "Collect headers"
    )
    expect(page.locator("#task-move-status")).to_have_text("Task moved to position 1.")
    page.get_by_label("Business impact").fill("High")
    page.get_by_role("button", name="Save template").first.click()
    expect(page.locator(".flash")).to_have_text("Template Phishing saved.")

    # open a case from it
    page.get_by_role("link", name="New case").click()
    page.get_by_label("Title", exact=True).fill("Invoice lure")
    page.get_by_label("Template").select_option("Phishing")
    page.get_by_role("button", name="Open case").click()
    expect(page.locator("#case-title")).to_have_text("[PHISH] Invoice lure")
    impact = page.locator('#case-custom-fields tr[data-custom-field="impact"] td')
    expect(impact).to_have_text("High")
    hosts = page.locator('#case-custom-fields tr[data-custom-field="hosts"] td')
    expect(hosts).to_have_text("Empty: needed to close the case")

    # the tasks keep their order and owners
    page.get_by_role("link", name=re.compile("^Tasks")).click()
    rows = page.locator("table.grid tbody tr:has(a[href^='/tasks/'])")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Collect headers")
    expect(rows.nth(0)).to_contain_text("ann")
    expect(rows.nth(1)).to_contain_text("Block sender")
    expect(rows.nth(1)).to_contain_text("bob")

    # closing is refused while the mandatory field is empty
    page.get_by_text("Close case…").click()
    page.get_by_label("Resolution").select_option("TruePositive")
    page.get_by_label("Summary").fill("Sender blocked.")
    page.get_by_role("button", name="Close case", exact=True).click()
    expect(page.locator("#close-dialog .form-error")).to_contain_text(
        "Mandatory custom field hosts (Affected hosts) must be set"
    )
    expect(page.locator("#case-status")).to_have_text("Open")

    (case,) = server.client().get("/api/case").json()
    assert case["status"] == "Open"
    assert case["customFields"]["impact"]["string"] == "High"


def test_an_analyst_sees_no_admin_links_and_is_refused_the_template_pages(
    server: LiveServer, sign_in: SignIn
) -> None:
    server.add_user("ann", ["read", "write"])
    page = sign_in("ann", "password-123")

    response = page.goto(f"{server.url}/admin/templates/new")

    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("needs the admin role")
    expect(page.get_by_role("link", name="Templates")).to_have_count(0)
