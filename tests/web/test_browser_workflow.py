"""A day of case work in chromium: sign in, open a case, work a task, add
and flag observables, close the case; and the same page updating live."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.api.conftest import LiveServer
from tests.web.conftest import create_case

# The HTTP tests cover both backends; in the browser SQLite is enough and
# keeps the suite short.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("server", ["sqlite"], indirect=True),
]

SignIn = Callable[..., Page]


def test_an_analyst_works_a_case_from_sign_in_to_closure(
    server: LiveServer, sign_in: SignIn
) -> None:
    page = sign_in()

    # open a case
    page.get_by_role("link", name="New case").click()
    expect(page).to_have_title("New case · Cerana")
    page.get_by_label("Title").fill("Credential phishing against finance")
    page.get_by_label("Severity").select_option("3")
    page.get_by_label("Tags").fill("phishing, finance")
    page.locator("#description").fill("Users received a **fake** invoice.")
    page.get_by_role("button", name="Open case").click()
    expect(page.locator("#case-title")).to_have_text(
        "Credential phishing against finance"
    )
    expect(page.locator("#case-description strong")).to_have_text("fake")

    # add a task and write its first log
    page.get_by_role("link", name=re.compile("^Tasks")).click()
    page.get_by_label("Title").fill("Collect mail headers")
    page.get_by_label("Group").fill("triage")
    page.get_by_role("button", name="Add task").click()
    page.get_by_role("link", name="Collect mail headers").click()
    expect(page.locator("#task-status")).to_have_text("Waiting")
    page.locator("#log-message").fill("Headers show a **spoofed** sender.")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator(".md-preview strong")).to_have_text("spoofed")
    page.get_by_role("button", name="Write").click()
    page.get_by_role("button", name="Add log").click()
    expect(page.locator(".log .markdown strong")).to_have_text("spoofed")
    expect(page.locator("#task-status")).to_have_text("In progress")

    # add observables, then mark one sighted
    page.get_by_role("link", name=re.compile(r"^#\d+ Credential phishing")).click()
    page.get_by_role("link", name=re.compile("^Observables")).click()
    page.get_by_label("Datatype", exact=True).last.select_option("ip")
    page.locator("#add-data").fill("203.0.113.7\n198.51.100.23")
    page.locator("#add-tags").fill("sender")
    page.get_by_role("button", name="Add observables").click()
    expect(page.locator("tr[data-observable]")).to_have_count(2)
    sighted = page.get_by_role("button", name="Sighted: 203.0.113.7")
    expect(sighted).to_have_attribute("aria-pressed", "false")
    sighted.click()
    expect(page.get_by_role("button", name="Sighted: 203.0.113.7")).to_have_attribute(
        "aria-pressed", "true"
    )

    # close the case
    page.get_by_text("Close case…").click()
    page.get_by_label("Resolution").select_option("TruePositive")
    page.get_by_label("Impact").select_option("WithImpact")
    page.get_by_label("Summary").fill("Sender blocked, passwords reset.")
    page.get_by_role("button", name="Close case", exact=True).click()
    expect(page.locator("#case-status")).to_have_text("Closed · True positive")

    cases = server.client().get("/api/case", params={"range": "all"}).json()
    assert [(c["status"], c["resolutionStatus"], c["impactStatus"]) for c in cases] == [
        ("Resolved", "TruePositive", "WithImpact")
    ]
    observables = (
        server.client()
        .post(f"/api/case/{cases[0]['id']}/artifact/_search", json={})
        .json()
    )
    assert {o["data"]: o["sighted"] for o in observables} == {
        "203.0.113.7": True,
        "198.51.100.23": False,
    }
    tasks = (
        server.client().post(f"/api/case/{cases[0]['id']}/task/_search", json={}).json()
    )
    assert [(t["title"], t["status"]) for t in tasks] == [
        ("Collect mail headers", "Completed")
    ]


def test_a_second_browser_sees_a_task_added_by_the_first_without_reloading(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Lateral movement")
    server.add_user("bob", ["read", "write"])
    watcher = sign_in()
    watcher.goto(f"{server.url}/cases/{case['id']}?tab=tasks")
    watcher.evaluate("window.__sameDocument = true")
    worker = sign_in("bob", "password-123")

    worker.goto(f"{server.url}/cases/{case['id']}?tab=tasks")
    worker.get_by_label("Title").fill("Isolate host WS-042")
    worker.get_by_role("button", name="Add task").click()

    expect(watcher.get_by_role("link", name="Isolate host WS-042")).to_be_visible(
        timeout=8000
    )
    expect(watcher.locator("#live-notice")).to_contain_text("bob")
    assert watcher.evaluate("window.__sameDocument") is True


def test_a_second_browser_sees_the_case_closed_in_its_header(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Malware alert")
    watcher = sign_in()
    watcher.goto(f"{server.url}/cases/{case['id']}")
    watcher.evaluate("window.__sameDocument = true")

    server.client().patch(
        f"/api/case/{case['id']}",
        json={
            "status": "Resolved",
            "resolutionStatus": "FalsePositive",
            "summary": "benign",
        },
    )

    expect(watcher.locator("#case-status")).to_have_text(
        "Closed · False positive", timeout=8000
    )
    assert watcher.evaluate("window.__sameDocument") is True
