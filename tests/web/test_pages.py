"""Pages over plain HTTP: sign-in, titles, timing, CSRF, roles, errors."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import ADMIN_PASSWORD, LiveServer
from tests.web.conftest import PASSWORD, WebSession, create_case, login_fields

SignIn = Callable[..., WebSession]


def _title(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    return found.group(1).strip() if found else ""


def _alerts(html: str) -> list[str]:
    return re.findall(r'role="alert"[^>]*>(.*?)<', html, re.S)


def test_a_signed_out_visitor_is_sent_to_the_sign_in_page(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.get("/cases?status=any")

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fcases%3Fstatus%3Dany"


def test_a_wrong_password_is_reported_on_the_form_with_status_401(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.post(
            "/login", data=login_fields(anonymous, "admin", "not-it")
        )

    assert response.status_code == 401
    assert _alerts(response.text) == ["Wrong login or password."]
    assert "THE_HIVE_SESSION" not in response.cookies


def test_a_sign_in_posted_without_the_form_token_is_refused(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.post(
            "/login", data={"login": "admin", "password": ADMIN_PASSWORD}
        )

    assert response.status_code == 403
    assert _alerts(response.text) == ["This sign-in form has expired: sign in again."]
    assert "THE_HIVE_SESSION" not in response.cookies


def test_signing_out_ends_the_session(server: LiveServer, sign_in_http: SignIn) -> None:
    session = sign_in_http()

    response = session.post("/logout")
    after = session.client.get("/cases")

    assert response.status_code == 303
    assert after.status_code == 303
    assert after.headers["location"].startswith("/login")


def test_signing_in_on_the_web_also_signs_in_the_api(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    current = session.client.get("/api/user/current")

    assert current.status_code == 200
    assert current.json()["login"] == "admin"


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/cases", "Cases · Cerana"),
        ("/cases/new", "New case · Cerana"),
        ("/me", "My account · Cerana"),
        ("/about", "About · Cerana"),
        ("/admin/users", "Users · Cerana"),
        ("/admin/datatypes", "Observable datatypes · Cerana"),
    ],
)
def test_each_page_has_a_meaningful_title_and_reports_its_server_time(
    server: LiveServer, sign_in_http: SignIn, path: str, title: str
) -> None:
    session = sign_in_http()

    response = session.client.get(path)

    assert response.status_code == 200
    assert _title(response.text) == title
    assert re.fullmatch(
        r"db;dur=[\d.]+, app;dur=[\d.]+", response.headers["server-timing"]
    )
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("tab", ["details", "tasks", "observables", "history"])
def test_each_case_tab_is_titled_with_the_case_and_the_tab(
    server: LiveServer, sign_in_http: SignIn, tab: str
) -> None:
    case = create_case(server, title="Beaconing host")
    session = sign_in_http()

    response = session.client.get(f"/cases/{case['id']}?tab={tab}")

    assert response.status_code == 200
    assert (
        _title(response.text)
        == f"#{case['caseId']} Beaconing host – {tab.title()} · Cerana"
    )


def test_the_about_page_shows_version_backend_and_the_embedded_cortex_engine(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    html = session.client.get("/about").text

    backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[
        server.platform.db.dialect
    ]
    assert f'<dd id="about-database">{backend}</dd>' in html
    assert '<dd id="about-version">0.1.0</dd>' in html
    assert re.search(
        r"<td>local <span[^>]*>\(embedded engine\)</span></td><td>0\.1\.0</td>", html
    )


def test_a_form_posted_without_the_csrf_token_is_refused(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = session.client.post(
        "/cases/new",
        data={"title": "t", "description": "d", "severity": "2", "tlp": "2"},
    )

    assert response.status_code == 403
    assert "did not come from Cerana" in _alerts(response.text)[0]
    assert server.client().get("/api/case").json() == []


FORGED_WRITES = [
    ("/cases/new", {"title": "t", "description": "d", "severity": "2", "tlp": "2"}),
    ("/cases/{case}/close", {"resolution": "FalsePositive", "summary": "s"}),
    ("/cases/{case}/tasks", {"title": "forged"}),
    ("/cases/{case}/observables", {"data_type": "ip", "data": "9.9.9.9", "tlp": "2"}),
    ("/cases/{case}/flag", {"flag": "true"}),
    ("/cases/bulk", {"action": "flag", "case": "{case}"}),
    ("/admin/users", {"login": "mallory", "name": "M", "role_admin": "on"}),
    ("/admin/datatypes", {"name": "forged"}),
]


def test_a_read_only_user_is_refused_every_write_with_403_and_the_reason(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    server.add_user("reader", ["read"])
    session = sign_in_http("reader", PASSWORD)

    refusals = {}
    for path, data in FORGED_WRITES:
        filled = {k: v.replace("{case}", str(case["id"])) for k, v in data.items()}
        response = session.post(path.replace("{case}", str(case["id"])), filled)
        refusals[path] = (
            response.status_code,
            "needs the" in "".join(_alerts(response.text)),
        )

    assert refusals == {path: (403, True) for path, _ in FORGED_WRITES}
    after = (
        server.client().get(f"/api/case/{case['id']}", params={"nstats": "true"}).json()
    )
    assert after["status"] == "Open" and after["flag"] is False
    assert (
        after["stats"]["tasks"]["total"] == 0
        and after["stats"]["artifacts"]["count"] == 0
    )
    assert server.client().get("/api/case").headers["x-total"] == "1"


def test_a_new_case_without_a_title_is_refused_with_the_message_on_the_form(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = session.post(
        "/cases/new",
        {"title": "", "description": "typed text", "severity": "2", "tlp": "2"},
    )

    assert response.status_code == 400
    assert _alerts(response.text) == ["Title: a case needs a title"]
    assert "typed text</textarea>" in response.text


def test_closing_without_a_summary_keeps_the_case_open_and_says_why(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    session = sign_in_http()

    response = session.post(
        f"/cases/{case['id']}/close", {"resolution": "TruePositive", "summary": ""}
    )

    assert response.status_code == 400
    assert "Summary: say in a few words how the case ended" in _alerts(response.text)
    assert server.client().get(f"/api/case/{case['id']}").json()["status"] == "Open"


def test_a_bulk_close_without_a_ticked_case_or_summary_says_what_is_missing(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    session = sign_in_http()
    close = {"action": "close", "resolution": "Other", "next": "/cases?status=any"}

    nothing_ticked = session.post("/cases/bulk", {**close, "summary": "done"})
    no_summary = session.post(
        "/cases/bulk", {**close, "case": str(case["id"]), "summary": ""}
    )
    closed = session.post(
        "/cases/bulk", {**close, "case": str(case["id"]), "summary": "done"}
    )

    assert nothing_ticked.status_code == 400
    assert _alerts(nothing_ticked.text) == ["Tick at least one case first"]
    assert no_summary.status_code == 400
    assert _alerts(no_summary.text) == [
        "Summary: say in a few words how the case ended"
    ]
    assert closed.status_code == 303
    assert server.client().get(f"/api/case/{case['id']}").json()["status"] == "Resolved"


def test_bad_observable_values_are_listed_and_good_ones_kept(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    session = sign_in_http()

    response = session.post(
        f"/cases/{case['id']}/observables",
        {"data_type": "ip", "data": "10.0.0.1\nnot-an-ip", "tlp": "2", "tags": "t"},
    )

    assert response.status_code == 200
    assert "1 added, 1 not added" in response.text
    assert "<code>not-an-ip</code>" in response.text
    stored = (
        server.client().post(f"/api/case/{case['id']}/artifact/_search", json={}).json()
    )
    assert [o["data"] for o in stored] == ["10.0.0.1"]


def test_an_unknown_case_is_a_404_page(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = session.client.get("/cases/no-such-case")

    assert response.status_code == 404
    assert _title(response.text) == "Not found · Cerana"


def test_a_search_the_query_language_cannot_parse_shows_why(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = session.client.get("/cases", params={"q": "title:(", "status": "any"})

    assert response.status_code == 400
    assert _alerts(response.text)[0].startswith("Search not understood:")


def test_the_case_list_filters_and_searches(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    create_case(
        server, title="Ransomware on file server", severity=3, tags=["ransomware"]
    )
    create_case(
        server,
        title="Phishing wave",
        description="Mails with a lure",
        severity=1,
        tags=["phishing"],
    )
    closed = create_case(server, title="Old phishing", tags=["phishing"])
    server.client().patch(
        f"/api/case/{closed['id']}",
        json={"status": "Resolved", "resolutionStatus": "Other"},
    )
    session = sign_in_http()

    def titles(**params: str) -> list[str]:
        html = session.client.get("/cases", params=params).text
        return re.findall(r'<td class="title"><a href="/cases/[^"]+">([^<]+)</a>', html)

    assert titles() == ["Phishing wave", "Ransomware on file server"]
    assert titles(severity="3") == ["Ransomware on file server"]
    assert titles(status="any", tags="phishing") == ["Old phishing", "Phishing wave"]
    assert titles(status="Resolved") == ["Old phishing"]
    assert titles(q="lure") == ["Phishing wave"]
    assert titles(status="any", q="title:ransomware") == ["Ransomware on file server"]
    assert titles(status="any", q=f"#{closed['caseId']}") == ["Old phishing"]


def test_the_case_list_pages_through_results_with_counts(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    for number in range(30):
        create_case(server, title=f"Case {number:02d}")
    session = sign_in_http()

    first = session.client.get("/cases").text
    second = session.client.get("/cases", params={"page": "2"}).text

    assert "1–25 of 30 cases" in first
    assert "26–30 of 30 cases" in second
    assert "Page 2 of 2" in second


def test_the_csv_export_lists_observables_and_defuses_formulas(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    admin = server.client()
    admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "other", "data": "=HYPERLINK(1)", "message": "m"},
    )
    admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "domain", "data": "evil.example", "tags": ["c2"]},
    )
    session = sign_in_http()

    response = session.client.get(f"/cases/{case['id']}/observables.csv")

    lines = response.text.splitlines()
    assert response.headers["content-type"].startswith("text/csv")
    assert lines[0] == "dataType,data,message,tags,tlp,ioc,sighted,startDate,createdBy"
    assert sorted(line.split(",")[1] for line in lines[1:]) == [
        "'=HYPERLINK(1)",
        "evil.example",
    ]


def test_the_markdown_preview_renders_with_the_sanitiser_and_needs_the_csrf_header(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()
    source = "**bold** <script>alert(1)</script>"

    refused = session.client.post("/markdown/preview", content=source)
    preview = session.client.post(
        "/markdown/preview",
        content=source,
        headers={"X-THE-HIVE-XSRF-TOKEN": session.csrf},
    )

    assert refused.status_code == 403
    assert (
        preview.text
        == "<p><strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    )


def test_a_user_changes_their_own_password_and_renews_their_key(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    server.add_user("ann", ["read", "write"])
    session = sign_in_http("ann", PASSWORD)

    wrong = session.post(
        "/me/password",
        {
            "current_password": "nope",
            "password": "new-pass-1",
            "password_again": "new-pass-1",
        },
    )
    changed = session.post(
        "/me/password",
        {
            "current_password": PASSWORD,
            "password": "new-pass-1",
            "password_again": "new-pass-1",
        },
    )
    renewed = session.post("/me/key", {"action": "renew"})

    assert wrong.status_code == 400
    assert _alerts(wrong.text) == ["the current password is wrong"]
    assert changed.status_code == 303
    key = re.search(r'<code id="new-key">([^<]+)</code>', renewed.text)
    assert key is not None
    with_key = httpx.get(
        f"{server.url}/api/user/current",
        headers={"Authorization": f"Bearer {key.group(1)}"},
    )
    assert with_key.json()["login"] == "ann"
    assert sign_in_http("ann", "new-pass-1").client.get("/me").status_code == 200


def test_an_administrator_manages_users_and_datatypes(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    created = session.post(
        "/admin/users",
        {"login": "bob", "name": "Bob", "password": "bob-pass-1", "role_read": "on"},
    )
    duplicate = session.post(
        "/admin/users", {"login": "bob", "name": "Bob again", "role_read": "on"}
    )
    locked = session.post("/admin/users/bob", {"action": "lock"})
    added = session.post("/admin/datatypes", {"name": "btc-wallet"})
    bad = session.post("/admin/datatypes", {"name": "Not Valid"})

    assert created.status_code == 303
    assert duplicate.status_code == 400
    assert _alerts(duplicate.text) == ["user bob already exists"]
    assert locked.status_code == 303
    assert server.client().get("/api/user/bob").json()["status"] == "Locked"
    assert added.status_code == 303
    assert (
        "btc-wallet"
        in server.client().get("/api/list/list_artifactDataType").json().values()
    )
    assert bad.status_code == 400 and "is invalid" in _alerts(bad.text)[0]
    with httpx.Client(base_url=server.url) as bob:
        refused = bob.post("/login", data=login_fields(bob, "bob", "bob-pass-1"))
    assert refused.status_code == 403


def test_an_observable_seen_in_another_case_links_to_that_case(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    first = create_case(server, title="First sighting")
    second = create_case(server, title="Second sighting")
    admin = server.client()
    for case in (first, second):
        admin.post(
            f"/api/case/{case['id']}/artifact",
            json={"dataType": "ip", "data": "192.0.2.9", "message": "m"},
        )
    session = sign_in_http()

    tab = session.client.get(
        f"/cases/{second['id']}", params={"tab": "observables"}
    ).text
    observable_path = re.search(
        r'<a href="(/observables/[^"]+)" class="seen-count"[^>]*>1 case →</a>', tab
    )
    assert observable_path is not None
    page = session.client.get(observable_path.group(1)).text

    assert f'<a href="/cases/{first["id"]}?tab=observables">First sighting</a>' in page
    assert "Second sighting</a>" not in page.split("Seen in other cases")[1]


def test_a_log_with_an_attachment_and_a_file_observable_are_uploaded(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    task = (
        server.client()
        .post(f"/api/case/{case['id']}/task", json={"title": "Triage"})
        .json()
    )
    session = sign_in_http()
    fields = {"csrf_token": session.csrf}

    logged = session.client.post(
        f"/tasks/{task['id']}/logs",
        data={**fields, "message": "See the **dump**."},
        files={"attachment": ("dump.txt", b"memory dump", "text/plain")},
    )
    added = session.client.post(
        f"/cases/{case['id']}/observables",
        data={**fields, "data_type": "file", "tlp": "2", "message": "dropper"},
        files={
            "attachment": ("dropper.bin", b"MZ\x90\x00", "application/octet-stream")
        },
    )

    assert logged.status_code == 303 and added.status_code == 303
    page = session.client.get(f"/tasks/{task['id']}").text
    link = re.search(
        r'<a href="(/api/datastore/[0-9a-f]{64}\?name=dump.txt)">dump.txt</a>', page
    )
    assert link is not None
    assert session.client.get(link.group(1)).content == b"memory dump"
    observables = (
        server.client().post(f"/api/case/{case['id']}/artifact/_search", json={}).json()
    )
    assert [(o["dataType"], o["attachment"]["name"]) for o in observables] == [
        ("file", "dropper.bin")
    ]


def test_merging_by_case_number_opens_the_merged_case(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    first = create_case(server, title="Alert A")
    second = create_case(server, title="Alert B")
    session = sign_in_http()

    unknown = session.post(f"/cases/{first['id']}/merge", {"number": "999"})
    merged = session.post(
        f"/cases/{first['id']}/merge", {"number": str(second["caseId"])}
    )

    assert unknown.status_code == 400
    assert _alerts(unknown.text) == ["Case number: there is no case #999"]
    assert merged.status_code == 303
    page = session.client.get(merged.headers["location"]).text
    assert f"#{first['caseId']}:Alert A / #{second['caseId']}:Alert B" in _title(page)
    sources = server.client().get(f"/api/case/{first['id']}").json()
    assert (sources["status"], sources["resolutionStatus"]) == (
        "Resolved",
        "Duplicated",
    )
