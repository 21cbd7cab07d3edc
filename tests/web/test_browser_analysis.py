"""Analysis in chromium: an analyzer run from the observables tab turns
Success in the job list without a reload and leaves its taxonomy label;
the footer's Cortex indicator follows the instances going down."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from cerana.connectors.cortex import health
from tests.api.conftest import LiveServer, settings_for, start_server
from tests.api.cortex_support import (  # noqa: F401 (fixtures)
    FakeCortex,
    analyzers_dir,
    cortex_server_for,
    stop_cortex,
)
from tests.web.conftest import create_case

pytestmark = pytest.mark.browser

SignIn = Callable[..., Page]
# The indicator's dot, as the style sheet colours it.
DOT_COLOURS = {
    "OK": "rgb(30, 158, 62)",
    "WARNING": "rgb(240, 140, 0)",
    "ERROR": "rgb(217, 45, 32)",
}


@dataclasses.dataclass
class TwoRemotes:
    """A server whose only analysis engines are two fake remote Cortexes."""

    live: LiveServer
    alpha: FakeCortex
    beta: FakeCortex


_TWO_REMOTES: list[TwoRemotes] = []


@pytest.fixture
def server(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    analyzers_dir: Path,  # noqa: F811
) -> Iterator[LiveServer]:
    """``cortex``: the Cortex tests' server (SQLite); ``two-remotes``: a
    server without embedded engine and two remote instances of its own."""
    if request.param == "cortex":
        live, _ = cortex_server_for(
            "sqlite", database_urls, tmp_path_factory, analyzers_dir
        )
        yield live
        live.close_clients()
        return
    alpha, beta = FakeCortex("alpha"), FakeCortex("beta")
    settings = dataclasses.replace(
        settings_for(database_urls["sqlite"], tmp_path_factory.mktemp("two-remotes")),
        cortex_embedded=False,
        cortex={
            "alpha": {"url": alpha.url, "key": "key-alpha"},
            "beta": {"url": beta.url, "key": "key-beta"},
        },
    )
    live = start_server(settings)
    live.reset()
    _TWO_REMOTES.append(TwoRemotes(live, alpha, beta))
    try:
        yield live
    finally:
        _TWO_REMOTES.clear()
        live.close_clients()
        live.server.should_exit = True
        live.thread.join(timeout=5)
        live.platform.close()
        alpha.stop()
        beta.stop()


@pytest.mark.parametrize("server", ["cortex"], indirect=True)
def test_a_run_from_the_observables_tab_turns_success_live_and_labels_the_observable(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Beaconing host")
    server.client().post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "ip", "data": "8.8.4.4", "message": "beacon"},
    )
    page = sign_in()

    page.goto(f"{server.url}/cases/{case['id']}?tab=observables")
    page.get_by_role("button", name="Run Remote_Lookup on 8.8.4.4").click()
    expect(page.locator(".flash")).to_have_text("1 job started; see Jobs.")
    page.get_by_role("link", name="Jobs", exact=True).click()
    badge = page.locator("#job-list [data-job-status]")
    expect(badge).to_have_text("Waiting")
    page.evaluate("window.__sameDocument = true")
    expect(badge).to_have_text("Success", timeout=20_000)

    assert page.evaluate("window.__sameDocument") is True
    expect(badge).to_have_class("jstatus jstatus-success")
    expect(page.locator("#job-list [data-job-end]")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")
    )
    page.get_by_role("link", name="#1 Beaconing host").click()
    label = page.locator("tr[data-observable='8.8.4.4'] .taxonomy")
    expect(label).to_have_text('Remote:Lookup="remote-a"')
    expect(label).to_have_class("taxonomy taxonomy-safe")


@pytest.mark.parametrize("server", ["cortex"], indirect=True)
def test_a_job_page_shows_the_report_by_itself_once_the_job_ends(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Beaconing host")
    client = server.client()
    observable = client.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "domain", "data": "rare.example", "message": "beacon"},
    ).json()
    job = client.post(
        "/api/connector/cortex/job",
        json={"analyzerId": "Remote_Lookup", "artifactId": observable["id"]},
    ).json()
    page = sign_in()

    page.goto(f"{server.url}/jobs/{job['id']}")
    expect(page.locator("#job-waiting")).to_be_visible()
    expect(page.get_by_role("heading", name="Report")).to_be_visible(timeout=20_000)

    expect(page).to_have_title("Job Remote_Lookup on rare.example – Success · Cerana")
    expect(page.locator(".report-json")).to_contain_text('"remote": true')
    expect(page.locator(".taxonomies .taxonomy-safe")).to_have_text(
        'Remote:Lookup="remote-a"'
    )


@pytest.mark.parametrize("server", ["cortex"], indirect=True)
def test_several_analyzers_run_on_ticked_observables_with_the_keyboard(
    server: LiveServer, sign_in: SignIn
) -> None:
    case = create_case(server, title="Beaconing host")
    for value in ("1.1.1.1", "2.2.2.2"):
        server.client().post(
            f"/api/case/{case['id']}/artifact",
            json={"dataType": "ip", "data": value, "message": "beacon"},
        )
    page = sign_in()
    page.goto(f"{server.url}/cases/{case['id']}?tab=observables")

    page.get_by_label("Tick 1.1.1.1").press("Space")
    page.get_by_label("Tick 2.2.2.2").press("Space")
    page.locator(".run-many summary").focus()
    page.keyboard.press("Enter")
    page.get_by_role("checkbox", name=re.compile("^Echo ")).press("Space")
    page.get_by_role("checkbox", name=re.compile("^NoOp ")).press("Space")
    page.get_by_role("button", name="Run on ticked observables").press("Enter")

    expect(page.locator(".flash")).to_have_text("4 jobs started; see Jobs.")
    page.goto(f"{server.url}/jobs")
    expect(page.locator("#job-list [data-job-status='Success']")).to_have_count(
        4, timeout=20_000
    )


@pytest.mark.parametrize("server", ["two-remotes"], indirect=True)
def test_the_footer_indicator_follows_the_instances_and_matches_the_api_status(
    server: LiveServer, sign_in: SignIn
) -> None:
    remotes = _TWO_REMOTES[0]
    page = sign_in()

    seen = []
    for stop in (None, remotes.alpha, remotes.beta):
        if stop is not None:
            stop.stop()
        health.probe_instances(server.platform)
        page.goto(f"{server.url}/cases")
        indicator = page.locator("#cortex-health")
        api = page.request.get(f"{server.url}/api/status").json()
        status = api["connectors"]["cortex"]["status"]
        expect(indicator).to_have_attribute("data-status", status)
        expect(indicator).to_contain_text(f"Cortex: {status}")
        dot = indicator.locator(".health-dot")
        colour = dot.evaluate("d => getComputedStyle(d).backgroundColor")
        seen.append((status, colour))

    assert seen == [
        ("OK", DOT_COLOURS["OK"]),
        ("WARNING", DOT_COLOURS["WARNING"]),
        ("ERROR", DOT_COLOURS["ERROR"]),
    ]
    page.get_by_role("link", name="About").click()
    expect(page.locator("#cortex-instances tbody tr")).to_have_text(
        [re.compile(r"alpha\s*—\s*ERROR"), re.compile(r"beta\s*—\s*ERROR")]
    )
