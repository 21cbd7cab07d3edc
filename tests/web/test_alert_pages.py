"""Alert pages over plain HTTP: the list and its filters, bulk triage and
merges, the preview with seen counts and similar cases, importing as a
case, and refusals (#4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx

from tests.api.conftest import LiveServer
from tests.web.conftest import PASSWORD, WebSession, create_case

SignIn = Callable[..., WebSession]


def _title(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    return found.group(1).strip() if found else ""


def _alerts(html: str) -> list[str]:
    return re.findall(r'role="alert"[^>]*>(.*?)<', html, re.S)


def _listed(html: str) -> list[str]:
    return re.findall(r'<td class="title"><a href="/alerts/[^"]+">([^<]+)</a>', html)


def create_alert(server: LiveServer, ref: str, **fields: Any) -> dict[str, Any]:
    """Creates an alert through the API as the administrator."""
    body: dict[str, Any] = {
        "type": "siem",
        "source": "splunk",
        "sourceRef": ref,
        "title": f"Alert {ref}",
        "description": "Raised by a correlation rule.",
        **fields,
    }
    response = server.client().post("/api/alert", json=body)
    assert response.status_code == 201, response.text
    alert: dict[str, Any] = response.json()
    return alert


def _tick(
    session: WebSession, fields: dict[str, str], alert_ids: list[str]
) -> httpx.Response:
    """Posts the bulk form of the list with ``alert_ids`` ticked."""
    data = {"csrf_token": session.csrf, **fields, "alert": alert_ids}
    return session.client.post("/alerts/bulk", data=data)


def _status(server: LiveServer, alert: dict[str, Any]) -> str:
    status: str = server.client().get(f"/api/alert/{alert['id']}").json()["status"]
    return status


def test_the_alert_list_is_titled_and_linked_from_the_main_nav(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = session.client.get("/alerts")

    assert response.status_code == 200
    assert _title(response.text) == "Alerts · Cerana"
    assert '<a href="/alerts" aria-current="page">Alerts</a>' in response.text


def test_the_alert_list_filters_by_status_read_type_source_severity_and_tags(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    create_alert(server, "a", title="Beaconing", severity=3, tags=["c2"])
    create_alert(server, "b", title="Port scan", type="ids", source="suricata")
    seen = create_alert(server, "c", title="Phishing", severity=1, tags=["mail"])
    server.client().post(f"/api/alert/{seen['id']}/markAsRead")
    session = sign_in_http()

    def titles(**params: str) -> list[str]:
        return _listed(session.client.get("/alerts", params=params).text)

    assert sorted(titles()) == ["Beaconing", "Phishing", "Port scan"]
    assert titles(read="read") == ["Phishing"]
    assert sorted(titles(read="unread")) == ["Beaconing", "Port scan"]
    assert titles(status="Ignored") == ["Phishing"]
    assert titles(type="ids") == ["Port scan"]
    assert titles(source="suricata") == ["Port scan"]
    assert titles(severity="3") == ["Beaconing"]
    assert titles(tags="mail") == ["Phishing"]
    assert titles(sort="-severity") == ["Beaconing", "Port scan", "Phishing"]


def test_the_alert_list_pages_through_results_with_counts(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    bodies = [
        {"type": "siem", "source": "splunk", "sourceRef": f"r{n}", "title": f"A{n}"}
        for n in range(30)
    ]
    for body in bodies:
        body["description"] = "d"
    server.client().post("/api/alert/_bulk", json=bodies)
    session = sign_in_http()

    first = session.client.get("/alerts").text
    second = session.client.get("/alerts", params={"page": "2"}).text

    assert "1–25 of 30 alerts" in first
    assert "26–30 of 30 alerts" in second and "Page 2 of 2" in second
    assert len(_listed(second)) == 5


def test_bulk_triage_marks_read_unread_and_ignores_the_ticked_alerts(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    one, two, other = (create_alert(server, ref) for ref in ("1", "2", "3"))
    session = sign_in_http()
    ticked = [one["id"], two["id"]]

    def bulk(action: str, alerts: list[str]) -> int:
        return _tick(session, {"action": action}, alerts).status_code

    read = bulk("read", ticked)
    after_read = [_status(server, a) for a in (one, two, other)]
    unread = bulk("unread", ticked[:1])
    ignored = bulk("ignore", [other["id"]])

    assert (read, unread, ignored) == (303, 303, 303)
    assert after_read == ["Ignored", "Ignored", "New"]
    assert [_status(server, a) for a in (one, two, other)] == [
        "New",
        "Ignored",
        "Ignored",
    ]


def test_a_bulk_triage_reports_the_alerts_it_could_not_change(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    alert = create_alert(server, "1")
    session = sign_in_http()

    response = _tick(session, {"action": "ignore"}, [alert["id"], "no-such-alert"])

    assert response.status_code == 303
    flash = unquote(response.cookies.get("cerana_flash") or "")
    assert flash.startswith("1 alert(s) ignored. 1 failed: ")
    assert "no-such-alert" in flash
    assert _status(server, alert) == "Ignored"


def test_a_bulk_action_without_a_ticked_alert_or_with_an_unknown_case_says_why(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    alert = create_alert(server, "1")
    session = sign_in_http()

    nothing = session.post("/alerts/bulk", {"action": "read"})
    unknown = session.post(
        "/alerts/bulk", {"action": "merge", "number": "999", "alert": alert["id"]}
    )
    garbled = session.post(
        "/alerts/bulk", {"action": "merge", "number": "abc", "alert": alert["id"]}
    )
    no_template = session.post(
        "/alerts/bulk",
        {"action": "new-case", "template": "Nope", "alert": alert["id"]},
    )

    assert nothing.status_code == 400
    assert _alerts(nothing.text) == ["Tick at least one alert first"]
    assert unknown.status_code == 400
    assert _alerts(unknown.text) == ["Case number: there is no case #999"]
    assert garbled.status_code == 400
    assert _alerts(garbled.text)[0].startswith("Case number: type the number")
    assert no_template.status_code == 400
    assert _alerts(no_template.text) == ["case template &#39;Nope&#39; does not exist"]
    assert _status(server, alert) == "New"
    assert server.client().get("/api/case").json() == []


def test_bulk_merge_adds_the_ticked_alerts_to_a_case_picked_by_number(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server, title="Ongoing intrusion")
    one = create_alert(server, "1", artifacts=[{"dataType": "ip", "data": "192.0.2.1"}])
    two = create_alert(server, "2", artifacts=[{"dataType": "ip", "data": "192.0.2.2"}])
    session = sign_in_http()

    response = _tick(
        session,
        {"action": "merge", "number": f"#{case['caseId']}"},
        [one["id"], two["id"]],
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{case['id']}"
    merged = [server.client().get(f"/api/alert/{a['id']}").json() for a in (one, two)]
    assert [(a["status"], a["case"]) for a in merged] == [("Imported", case["id"])] * 2
    observables = (
        server.client().post(f"/api/case/{case['id']}/artifact/_search", json={}).json()
    )
    assert sorted(o["data"] for o in observables) == ["192.0.2.1", "192.0.2.2"]


def test_bulk_new_case_opens_one_case_from_the_ticked_alerts_with_a_template(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    server.client().post(
        "/api/case/template",
        json={"name": "Triage", "titlePrefix": "[T]", "tasks": [{"title": "Look"}]},
    )
    one = create_alert(server, "1", title="First")
    two = create_alert(server, "2", title="Second")
    session = sign_in_http()

    response = _tick(
        session, {"action": "new-case", "template": "Triage"}, [one["id"], two["id"]]
    )

    assert response.status_code == 303
    cases = server.client().get("/api/case").json()
    assert [c["title"] for c in cases] == ["[T] First"]
    assert "Merged with alert #2 Second" in cases[0]["description"]
    assert [_status(server, a) for a in (one, two)] == ["Imported", "Imported"]


def test_the_preview_shows_the_alert_its_seen_counts_and_similar_cases(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server, title="Earlier beaconing")
    server.client().post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "ip", "data": "203.0.113.9", "message": "m", "ioc": True},
    )
    alert = create_alert(
        server,
        "1",
        title="Beaconing again",
        description="**Host** <script>alert(1)</script>",
        artifacts=[
            {"dataType": "ip", "data": "203.0.113.9", "ioc": True, "tags": ["c2"]},
            {"dataType": "domain", "data": "fresh.example"},
        ],
    )
    session = sign_in_http()

    html = session.client.get(f"/alerts/{alert['id']}").text

    assert _title(html) == "Alert Beaconing again · Cerana"
    assert "<strong>Host</strong> &lt;script&gt;" in html
    rows = re.findall(r'<tr data-artifact="[^"]+">(.*?)</tr>', html, re.S)
    assert "203.0.113.9" in rows[0] and "seen 1 time" in rows[0]
    assert f'<a href="/cases/{case["id"]}" title="Earlier beaconing">' in rows[0]
    assert "not in any case" in rows[1]
    similar = html.split('id="similar-cases"')[1]
    assert f'<a href="/cases/{case["id"]}">Earlier beaconing</a>' in similar
    assert 'aria-label="1 of 1 observables shared"' in similar
    assert 'aria-label="1 of 1 IOCs shared"' in similar
    assert _status(server, alert) == "New"


def test_the_preview_marks_read_and_unread_follows_and_ignores(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    alert = create_alert(server, "1")
    session = sign_in_http()
    path = f"/alerts/{alert['id']}/triage"

    states = []
    for action in ("read", "unread", "unfollow", "follow", "ignore"):
        assert session.post(path, {"action": action}).status_code == 303
        current = server.client().get(f"/api/alert/{alert['id']}").json()
        states.append((current["status"], current["follow"]))
    bad = session.post(path, {"action": "explode"})

    assert states == [
        ("Ignored", True),
        ("New", True),
        ("New", False),
        ("New", True),
        ("Ignored", True),
    ]
    assert bad.status_code == 400 and _alerts(bad.text) == ["Choose an action"]


def test_importing_with_a_template_opens_a_case_and_an_unknown_one_is_refused(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    server.client().post(
        "/api/case/template",
        json={"name": "Phishing", "titlePrefix": "[PHISH]", "tasks": [{"title": "X"}]},
    )
    alert = create_alert(server, "1", title="Fake invoice")
    session = sign_in_http()
    page = session.client.get(f"/alerts/{alert['id']}").text

    unknown = session.post(f"/alerts/{alert['id']}/import", {"template": "Nope"})
    imported = session.post(f"/alerts/{alert['id']}/import", {"template": "Phishing"})

    assert "<option>Phishing</option>" in page
    assert unknown.status_code == 400
    assert _alerts(unknown.text) == ["case template &#39;Nope&#39; does not exist"]
    assert imported.status_code == 303
    case = server.client().get(
        imported.headers["location"].replace("/cases", "/api/case")
    )
    assert case.json()["title"] == "[PHISH] Fake invoice"
    after = session.client.get(f"/alerts/{alert['id']}").text
    assert f'Imported into <a href="/cases/{case.json()["id"]}">' in after
    assert "Import as case…" not in after


def test_merging_from_the_preview_needs_a_known_case_number(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server, title="Open incident")
    alert = create_alert(server, "1")
    session = sign_in_http()

    unknown = session.post(f"/alerts/{alert['id']}/merge", {"number": "4242"})
    merged = session.post(
        f"/alerts/{alert['id']}/merge", {"number": str(case["caseId"])}
    )

    assert unknown.status_code == 400
    assert _alerts(unknown.text) == ["Case number: there is no case #4242"]
    assert 'value="4242"' in unknown.text
    assert merged.status_code == 303
    assert merged.headers["location"] == f"/cases/{case['id']}"
    assert _status(server, alert) == "Imported"


def test_an_unknown_alert_is_a_404_page(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = session.client.get("/alerts/no-such-alert")

    assert response.status_code == 404
    assert _title(response.text) == "Not found · Cerana"


FORGED_WRITES = [
    ("/alerts/bulk", {"action": "read", "alert": "{alert}"}),
    ("/alerts/bulk", {"action": "new-case", "alert": "{alert}"}),
    ("/alerts/{alert}/triage", {"action": "ignore"}),
    ("/alerts/{alert}/import", {"template": ""}),
    ("/alerts/{alert}/merge", {"number": "{number}"}),
]


def test_a_read_only_user_sees_no_write_controls_and_is_refused_every_write(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    case = create_case(server)
    alert = create_alert(server, "1")
    server.add_user("reader", ["read"])
    session = sign_in_http("reader", PASSWORD)
    fill = {"{alert}": alert["id"], "{number}": str(case["caseId"])}

    listing = session.client.get("/alerts").text
    preview = session.client.get(f"/alerts/{alert['id']}").text
    refusals = []
    for path, data in FORGED_WRITES:
        for old, new in fill.items():
            path = path.replace(old, new)
            data = {k: v.replace(old, new) for k, v in data.items()}
        response = session.post(path, data)
        refusals.append(
            (response.status_code, "needs the" in _alerts(response.text)[0])
        )

    assert 'action="/alerts/bulk"' not in listing
    assert 'type="checkbox"' not in listing
    assert "Import as case" not in preview and "/triage" not in preview
    assert refusals == [(403, True)] * len(FORGED_WRITES)
    assert _status(server, alert) == "New"
    assert server.client().get("/api/case").headers["x-total"] == "1"
