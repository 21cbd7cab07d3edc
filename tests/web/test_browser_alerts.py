"""Alert triage in chromium: filter the list, mark alerts read in bulk,
preview one with where its observables were seen, import it as a case with
a template, merge another into that case; and a read-only user (#4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.api.conftest import LiveServer
from tests.web.conftest import PASSWORD, create_case
from tests.web.test_browser_keyboard import _tab_to

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("server", ["sqlite"], indirect=True),
]

SignIn = Callable[..., Page]


def create_alert(server: LiveServer, ref: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "siem",
        "source": "splunk",
        "sourceRef": ref,
        "description": "Raised by a correlation rule.",
        **fields,
    }
    response = server.client().post("/api/alert", json=body)
    assert response.status_code == 201, response.text
    alert: dict[str, Any] = response.json()
    return alert


def test_an_analyst_triages_alerts_into_a_case(
    server: LiveServer, sign_in: SignIn
) -> None:
    earlier = create_case(server, title="Earlier beaconing")
    server.client().post(
        f"/api/case/{earlier['id']}/artifact",
        json={"dataType": "ip", "data": "203.0.113.9", "message": "m", "ioc": True},
    )
    server.client().post(
        "/api/case/template",
        json={"name": "Phishing", "titlePrefix": "[PHISH]", "tasks": [{"title": "X"}]},
    )
    create_alert(
        server,
        "a",
        title="Beaconing from WS-1",
        artifacts=[{"dataType": "ip", "data": "203.0.113.9", "ioc": True}],
    )
    create_alert(server, "b", title="Port scan", type="ids", source="suricata")
    invoice = create_alert(server, "c", title="Fake invoice")
    page = sign_in()

    # filter the list, then mark what is left read
    page.get_by_role("link", name="Alerts", exact=True).click()
    expect(page).to_have_title("Alerts · Cerana")
    page.get_by_label("Type").fill("siem")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#alert-count")).to_have_text("1–2 of 2 alerts")
    page.get_by_label("Tick all alerts on this page").check()
    page.get_by_role("button", name="Mark read").click()
    expect(page.locator(".flash")).to_have_text("2 alert(s) marked read.")
    expect(page.locator("tr.unread")).to_have_count(0)

    # preview: seen counts and the similar case
    page.get_by_role("link", name="Beaconing from WS-1").click()
    expect(page).to_have_title("Alert Beaconing from WS-1 · Cerana")
    expect(page.locator("tr[data-artifact] .seen-count")).to_have_text("seen 1 time")
    expect(
        page.locator("tr[data-artifact]").get_by_role(
            "link", name=f"#{earlier['caseId']}"
        )
    ).to_be_visible()
    similar = page.locator("#similar-cases")
    expect(similar.get_by_role("link", name="Earlier beaconing")).to_be_visible()

    # import it with a template, the dialog opened from the keyboard
    page.get_by_text("Import as case…").focus()
    page.keyboard.press("Enter")
    page.get_by_label("Case template").select_option("Phishing")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#case-title")).to_have_text("[PHISH] Beaconing from WS-1")
    number = page.locator(".case-number").inner_text().lstrip("#")

    # merge another alert into the new case
    page.goto(f"{server.url}/alerts/{invoice['id']}")
    page.get_by_text("Merge into case…").click()
    page.get_by_label("Case number").fill("424242")
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator("#error-merge")).to_have_text(
        "Case number: there is no case #424242"
    )
    page.get_by_label("Case number").fill(number)
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator(".flash")).to_have_text(f"Alert merged into case #{number}.")

    cases = server.client().get("/api/case", params={"sort": "-caseId"}).json()
    merged = server.client().get(f"/api/alert/{invoice['id']}").json()
    assert cases[0]["caseId"] == int(number)
    assert "Merged with alert #c Fake invoice" in cases[0]["description"]
    assert (merged["status"], merged["case"]) == ("Imported", cases[0]["id"])


def test_an_alert_is_ticked_and_ignored_from_the_keyboard(
    server: LiveServer, sign_in: SignIn
) -> None:
    alert = create_alert(server, "a", title="Port scan")
    page = sign_in()
    page.goto(f"{server.url}/alerts")

    _tab_to(page, "el.getAttribute('aria-label') === 'Tick alert Port scan'")
    page.keyboard.press("Space")
    _tab_to(page, "el.tagName === 'BUTTON' && el.textContent.trim() === 'Ignore'", 60)
    page.keyboard.press("Enter")

    expect(page.locator(".flash")).to_have_text("1 alert(s) ignored.")
    status = server.client().get(f"/api/alert/{alert['id']}").json()["status"]
    assert status == "Ignored"


def test_a_read_only_user_sees_no_bulk_controls_and_a_forged_post_is_refused(
    server: LiveServer, sign_in: SignIn
) -> None:
    alert = create_alert(server, "a", title="Port scan")
    server.add_user("reader", ["read"])
    page = sign_in("reader", PASSWORD)

    page.goto(f"{server.url}/alerts")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    forged = page.request.post(
        f"{server.url}/alerts/bulk",
        form={"csrf_token": token or "", "action": "ignore", "alert": alert["id"]},
    )

    expect(page.get_by_role("link", name="Port scan")).to_be_visible()
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Mark read")).to_have_count(0)
    assert forged.status == 403
    assert re.search(r"needs the write role", forged.text())
    status = server.client().get(f"/api/alert/{alert['id']}").json()["status"]
    assert status == "New"
