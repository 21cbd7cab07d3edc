"""Analysis pages over plain HTTP: running analyzers from observables,
taxonomy labels, the job list and page, the Cortex health indicator, and
the analyzer administration, on a server with the test analyzers, a live
remote instance ``remote-a`` and a dead one ``remote-b``."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from cerana.connectors.cortex import health
from tests.api.conftest import LiveServer
from tests.api.cortex_support import (  # noqa: F401 (fixtures)
    ECHO_KEY,
    analyzers_dir,
    cortex_server_for,
    stop_cortex,
    wait_for,
)
from tests.conftest import BACKENDS
from tests.web.conftest import PASSWORD, WebSession, create_case

SignIn = Callable[..., WebSession]


@pytest.fixture(params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    analyzers_dir: Path,  # noqa: F811
) -> Iterator[LiveServer]:
    """The Cortex tests' server, so the web fixtures sign in there."""
    live, _ = cortex_server_for(
        request.param, database_urls, tmp_path_factory, analyzers_dir
    )
    yield live
    live.close_clients()


def add_observable(
    server: LiveServer, case_id: str, data: str, data_type: str = "ip"
) -> dict[str, Any]:
    created = server.client().post(
        f"/api/case/{case_id}/artifact",
        json={"dataType": data_type, "data": data, "message": "from the SIEM"},
    )
    assert created.status_code == 201, created.text
    observable: dict[str, Any] = created.json()
    return observable


def wait_jobs(client: httpx.Client, observable_id: str, count: int) -> list[Any]:
    def ended() -> list[Any] | None:
        jobs = client.post(
            "/api/connector/cortex/job/_search",
            json={"query": {"_field": "artifactId", "_value": observable_id}},
        ).json()
        done = [j for j in jobs if j["status"] in ("Success", "Failure")]
        return jobs if len(jobs) == count and len(done) == count else None

    found: list[Any] = wait_for(ended, 20, f"{count} job(s) on {observable_id}")
    return found


def _flash(response: httpx.Response) -> str:
    """The one-time message a redirect after a form carries."""
    return unquote(response.cookies.get("cerana_flash") or "")


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    return html.unescape(found.group(1).strip()) if found else ""


def test_the_observables_tab_offers_the_analyzers_of_each_datatype_and_names_a_dead_instance(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    ip = add_observable(server, str(case["id"]), "8.8.4.4")
    session = sign_in_http()

    page = session.client.get(f"/cases/{case['id']}?tab=observables").text

    buttons = re.findall(
        rf'formaction="/observables/{ip["id"]}/analyze" name="run" value="([^"]+)"',
        page,
    )
    assert {"Echo_1_0", "a1b2c3", "FireHOLBlocklists_2_0"} <= set(buttons)
    assert "Sleepy_1_0" not in buttons  # "other" only
    assert "Cortex instance remote-b is unreachable (ConnectError)" in page


def test_running_an_analyzer_from_the_observable_page_adds_its_taxonomy_label(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    ip = add_observable(server, str(case["id"]), "8.8.4.4")
    session = sign_in_http()

    started = session.post(f"/observables/{ip['id']}/analyze", {"run": "Echo_1_0"})
    jobs = wait_jobs(server.client(), ip["id"], 1)
    tab = session.client.get(f"/cases/{case['id']}?tab=observables").text
    observable_page = session.client.get(f"/observables/{ip['id']}").text

    assert started.status_code == 303
    assert _flash(started) == "1 job started; see Jobs."
    assert jobs[0]["status"] == "Success"
    label = '<span class="taxonomy taxonomy-malicious" title="malicious">Echo:Seen=&#34;8.8.4.4&#34;</span>'
    assert label in tab
    assert label in observable_page
    assert f'href="/jobs/{jobs[0]["id"]}">Echo</a>' in observable_page


def test_several_analyzers_run_on_the_ticked_observables_at_once(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    first = add_observable(server, str(case["id"]), "1.1.1.1")
    second = add_observable(server, str(case["id"]), "2.2.2.2")
    session = sign_in_http()

    response = session.client.post(
        f"/cases/{case['id']}/observables/analyze",
        data={
            "csrf_token": session.csrf,
            "observable": [first["id"], second["id"]],
            "analyzer": ["Echo_1_0", "NoOp_1_0"],
        },
    )
    first_jobs = wait_jobs(server.client(), first["id"], 2)
    second_jobs = wait_jobs(server.client(), second["id"], 2)

    assert response.status_code == 303
    assert _flash(response) == "4 jobs started; see Jobs."
    assert {j["analyzerName"] for j in first_jobs + second_jobs} == {"Echo", "NoOp"}


def test_a_run_that_needs_an_unreachable_instance_names_it_on_the_page(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    ip = add_observable(server, str(case["id"]), "8.8.4.4")
    session = sign_in_http()

    # Not on the embedded engine nor on remote-a: it may be on remote-b.
    response = session.post(f"/observables/{ip['id']}/analyze", {"run": "Elsewhere"})
    shown = session.client.get(f"/observables/{ip['id']}").text

    assert response.status_code == 303
    assert re.search(
        r'<div class="flash" role="status">0 jobs started; see Jobs\. 1 not started: '
        r"Cortex instance remote-b is unreachable \(ConnectError\)</div>",
        shown,
    )


def test_a_read_only_user_sees_no_run_button_and_a_forged_run_is_refused(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    ip = add_observable(server, str(case["id"]), "8.8.4.4")
    server.add_user("reader", ["read"])
    session = sign_in_http("reader", PASSWORD)

    tab = session.client.get(f"/cases/{case['id']}?tab=observables").text
    page = session.client.get(f"/observables/{ip['id']}").text
    single = session.post(f"/observables/{ip['id']}/analyze", {"run": "Echo_1_0"})
    many = session.client.post(
        f"/cases/{case['id']}/observables/analyze",
        data={
            "csrf_token": session.csrf,
            "observable": ip["id"],
            "analyzer": "Echo_1_0",
        },
    )

    assert "/analyze" not in tab and "/analyze" not in page
    assert single.status_code == 403 and many.status_code == 403
    assert "needs the write role" in single.text
    jobs = server.client().post("/api/connector/cortex/job/_search", json={}).json()
    assert jobs == []


def test_the_job_list_filters_by_status_and_its_statuses_come_as_json(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    ip = add_observable(server, str(case["id"]), "8.8.4.4")
    session = sign_in_http()
    session.post(f"/observables/{ip['id']}/analyze", {"run": "Echo_1_0"})
    job = wait_jobs(server.client(), ip["id"], 1)[0]

    listed = session.client.get("/jobs").text
    succeeded = session.client.get("/jobs?status=Success").text
    failed = session.client.get("/jobs?status=Failure")
    statuses = session.client.get("/jobs/status", params={"id": [job["id"], "nope"]})

    assert f'data-job-id="{job["id"]}" data-job-status="Success"' in listed
    assert f"#{case['caseId']} Suspicious login" in listed
    assert job["id"] in succeeded
    assert (
        job["id"] not in failed.text
        and _title(failed.text) == "Jobs – Failure · Cerana"
    )
    assert statuses.json()["jobs"] == {
        job["id"]: {
            "status": "Success",
            "endDate": statuses.json()["jobs"][job["id"]]["endDate"],
        }
    }
    assert statuses.json()["jobs"][job["id"]]["endDate"].endswith("+00:00")


def test_the_job_page_shows_the_report_escaped_and_imports_its_artifacts(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    hostile = add_observable(
        server, str(case["id"]), "<script>alert(1)</script>", "other"
    )
    session = sign_in_http()
    session.post(f"/observables/{hostile['id']}/analyze", {"run": "Echo_1_0"})
    job = wait_jobs(server.client(), hostile["id"], 1)[0]

    page = session.client.get(f"/jobs/{job['id']}").text
    imported = session.post(f"/jobs/{job['id']}/import")
    observables = (
        server.client()
        .post(
            "/api/case/artifact/_search",
            json={
                "query": {"_parent": {"_type": "case", "_query": {"_id": case["id"]}}}
            },
        )
        .json()
    )

    assert "<script>alert(1)</script>" not in page
    assert "&#34;echo&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page
    assert 'class="taxonomy taxonomy-malicious"' in page
    assert "Import as observables" in page
    assert imported.status_code == 303
    assert _flash(imported) == "3 observable(s) imported into the case."
    assert sorted(o["dataType"] for o in observables) == [
        "domain",
        "file",
        "ip",
        "other",
    ]


def test_the_footer_indicator_and_the_about_page_match_the_api_status(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    health.probe_instances(server.platform)
    session = sign_in_http()

    status = session.client.get("/api/status").json()["connectors"]["cortex"]
    cases = session.client.get("/cases").text
    about = session.client.get("/about").text

    assert status["status"] == "WARNING"
    assert 'id="cortex-health" data-status="WARNING"' in cases
    assert "Cortex: WARNING" in cases
    rows = re.findall(
        r"<tr><td>([\w-]+).*?</td><td>(.*?)</td><td>.*?> (\w+)</span>", about
    )
    assert rows == [
        ("local", "0.1.0", "OK"),
        ("remote-a", "3.1.8-1", "OK"),
        ("remote-b", "—", "ERROR"),
    ]


def test_the_analyzer_admin_page_never_sends_a_secret_back(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    page = session.client.get("/admin/analyzers").text

    assert ECHO_KEY not in page
    assert re.search(
        r'for="cfg-Echo_1_0-key">key <span class="hint">required</span>\s*'
        r'<span class="secret-state secret-set">set</span>',
        page,
    )
    assert 'value="http://echo.example"' in page


def test_saving_an_analyzer_configuration_keeps_an_empty_secret_and_shows_errors(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    saved = session.post(
        "/admin/analyzers/Echo",
        {"item_key": "", "item_url": "http://new.example", "item_concurrency": "2"},
    )
    rejected = session.post(
        "/admin/analyzers/FireHOLBlocklists",
        {"item_blocklistpath": "/tmp", "item_ignoreolderthandays": "soon"},
    )
    config = server.client().get("/cortex/api/analyzerconfig/Echo").json()["config"]

    assert saved.status_code == 303
    assert config == {"key": "********", "url": "http://new.example", "concurrency": 2}
    assert rejected.status_code == 400
    assert (
        '<p class="form-error" role="alert" id="error-FireHOLBlocklists">configuration '
        "of FireHOLBlocklists: &#39;ignoreolderthandays&#39; must be a number</p>"
    ) in rejected.text


def test_only_administrators_reach_the_analyzer_administration(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    server.add_user("analyst", ["read", "write"])
    session = sign_in_http("analyst", PASSWORD)

    page = session.client.get("/admin/analyzers")
    forged = session.post("/admin/analyzers/Echo", {"item_url": "http://evil.example"})

    assert page.status_code == 403 and forged.status_code == 403
    assert "Analyzers</a>" not in session.client.get("/cases").text


def test_auto_run_rules_are_added_and_deleted_from_the_admin_page(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    added = session.client.post(
        "/admin/analyzers/autorun/add",
        data={
            "csrf_token": session.csrf,
            "data_type": "domain",
            "analyzer": ["NoOp_1_0"],
        },
    )
    rules = server.client().get("/api/connector/cortex/autorun").json()
    deleted = session.post(f"/admin/analyzers/autorun/{rules[0]['id']}/delete")
    after = server.client().get("/api/connector/cortex/autorun").json()

    assert added.status_code == 303
    assert [(r["dataType"], r["analyzers"]) for r in rules] == [
        ("domain", ["NoOp_1_0"])
    ]
    assert deleted.status_code == 303 and after == []


def test_a_failed_job_shows_its_error_and_no_import_button(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    other = add_observable(server, str(case["id"]), "anything", "other")
    session = sign_in_http()
    session.post(f"/observables/{other['id']}/analyze", {"run": "Crash_1_0"})
    job_id = wait_jobs(server.client(), other["id"], 1)[0]["id"]
    job = server.client().get(f"/api/connector/cortex/job/{job_id}").json()

    page = session.client.get(f"/jobs/{job_id}").text

    assert job["status"] == "Failure"
    assert _title(page) == "Job Crash on anything – Failure · Cerana"
    shown = re.search(r'<h2>The job failed</h2><p class="mono">(.*?)</p>', page, re.S)
    assert shown is not None
    assert html.unescape(shown.group(1)) == job["report"]["errorMessage"]
    assert "Import as observables" not in page
