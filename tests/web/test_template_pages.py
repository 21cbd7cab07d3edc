"""Case templates, custom fields and metrics pages over plain HTTP (#5):
administration, the template editor, export and import, opening a case
from a template and its custom field values."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer
from tests.template_fixtures import define
from tests.web.conftest import PASSWORD, WebSession, create_case

SignIn = Callable[..., WebSession]

IMPACT = {
    "reference": "impact",
    "name": "Business impact",
    "description": "",
    "type": "string",
    "options": ["Low", "High"],
    "mandatory": False,
}
HOSTS = {
    "reference": "hosts",
    "name": "Affected hosts",
    "description": "",
    "type": "integer",
    "options": [],
    "mandatory": True,
}
HOURS = {"name": "hours", "title": "Hours spent", "description": ""}


def _title(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    return found.group(1).strip() if found else ""


def _alerts(html: str) -> list[str]:
    found = re.findall(r'role="alert"[^>]*>(.*?)<', html, re.S)
    return [unescape(text) for text in found]


def _templates(server: LiveServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        server.client().post("/api/case/template/_search", json={}).json()
    )
    return found


def _define_all(server: LiveServer) -> None:
    admin = server.client()
    define(admin, "custom_fields", IMPACT)
    define(admin, "custom_fields", HOSTS)
    define(admin, "case_metrics", HOURS)


def _editor_form(**changes: str) -> dict[str, str]:
    form = {
        "op": "save",
        "name": "Phishing",
        "title_prefix": "[PHISH]",
        "description": "A user reported a phishing mail.",
        "severity": "3",
        "tlp": "2",
        "tags": "phishing, mail",
        "task_count": "2",
        "task-0-title": "Collect headers",
        "task-0-group": "triage",
        "task-0-owner": "ann",
        "task-0-order": "0",
        "task-1-title": "Block sender",
        "task-1-group": "containment",
        "task-1-owner": "admin",
        "task-1-order": "1",
        "cf-impact": "High",
        "cf-hosts": "",
        "cf-hosts-listed": "on",
        "metric-hours": "2",
    }
    return {**form, **changes}


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/admin/custom-fields", "Custom fields · Cerana"),
        ("/admin/metrics", "Metrics · Cerana"),
        ("/admin/templates", "Case templates · Cerana"),
        ("/admin/templates/new", "New case template · Cerana"),
    ],
    ids=["custom-fields", "metrics", "templates", "new-template"],
)
def test_each_admin_page_has_a_meaningful_title(
    server: LiveServer, sign_in_http: SignIn, path: str, title: str
) -> None:
    session = sign_in_http()

    response = session.client.get(path)

    assert response.status_code == 200
    assert _title(response.text) == title
    assert f'href="{path.removesuffix("/new")}" aria-current="page"' in response.text


def test_an_administrator_creates_edits_and_removes_a_custom_field(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    created = session.post(
        "/admin/custom-fields",
        {
            "reference": "hosts",
            "name": "Hosts",
            "type": "integer",
            "options": "1\n2\n5",
            "mandatory": "on",
        },
    )
    (item_id,) = server.client().get("/api/list/custom_fields").json()
    edited = session.post(
        f"/admin/custom-fields/{item_id}",
        {"reference": "renamed", "name": "Affected hosts", "type": "integer"},
    )
    listed = server.client().get("/api/list/custom_fields").json()
    (new_id,) = listed
    removed = session.post(f"/admin/custom-fields/{new_id}/remove")

    assert created.status_code == 303 and edited.status_code == 303
    assert listed[new_id] == {
        "reference": "hosts",
        "name": "Affected hosts",
        "description": "",
        "type": "integer",
        "options": [],
        "mandatory": False,
    }
    assert removed.status_code == 303
    assert server.client().get("/api/list/custom_fields").json() == {}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"reference": "1st", "name": "First", "type": "string"},
            "custom field reference '1st' is invalid",
        ),
        (
            {"reference": "hosts", "name": "Hosts", "type": "integer", "options": "x"},
            "Options: 'x' is not a whole number",
        ),
        (
            {"reference": "impact", "name": "Again", "type": "string"},
            "a custom field with reference impact exists already",
        ),
    ],
    ids=["bad-reference", "option-of-another-type", "duplicate-reference"],
)
def test_a_bad_custom_field_is_refused_on_the_page_and_nothing_written(
    server: LiveServer, sign_in_http: SignIn, form: dict[str, str], message: str
) -> None:
    define(server.client(), "custom_fields", IMPACT)
    session = sign_in_http()

    response = session.post("/admin/custom-fields", form)

    assert response.status_code == 400
    assert message in _alerts(response.text)[0]
    assert f'value="{form["name"]}"' in response.text
    assert len(server.client().get("/api/list/custom_fields").json()) == 1


def test_an_administrator_creates_and_edits_a_metric_whose_name_stays(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    created = session.post(
        "/admin/metrics", {"name": "hours", "title": "Hours", "description": ""}
    )
    (item_id,) = server.client().get("/api/list/case_metrics").json()
    edited = session.post(
        f"/admin/metrics/{item_id}", {"name": "other", "title": "Hours spent"}
    )
    refused = session.post("/admin/metrics", {"name": "bad name", "title": "T"})

    assert created.status_code == 303 and edited.status_code == 303
    assert list(server.client().get("/api/list/case_metrics").json().values()) == [
        {"name": "hours", "title": "Hours spent", "description": ""}
    ]
    assert refused.status_code == 400
    assert "metric name 'bad name' is invalid" in _alerts(refused.text)[0]


def test_the_editor_saves_tasks_with_owners_and_typed_defaults(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    _define_all(server)
    server.add_user("ann", ["read", "write"])
    session = sign_in_http()

    response = session.post("/admin/templates/new", _editor_form())

    assert response.status_code == 303
    (template,) = _templates(server)
    assert response.headers["location"] == f"/admin/templates/{template['id']}"
    assert [(t["title"], t["owner"], t["order"]) for t in template["tasks"]] == [
        ("Collect headers", "ann", 0),
        ("Block sender", "admin", 1),
    ]
    assert template["customFields"] == {
        "impact": {"string": "High", "order": 0},
        "hosts": {"integer": None, "order": 1},
    }
    assert template["metrics"] == {"hours": 2}
    assert (template["titlePrefix"], template["severity"]) == ("[PHISH]", 3)


def test_moving_a_task_returns_the_form_reordered_without_saving(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    _define_all(server)
    server.add_user("ann", ["read", "write"])
    session = sign_in_http()

    response = session.post("/admin/templates/new", _editor_form(op="down-0"))

    assert response.status_code == 200
    titles = re.findall(r'name="task-\d+-title" value="([^"]*)"', response.text)
    assert titles == ["Block sender", "Collect headers"]
    assert _templates(server) == []


def test_a_task_order_rewritten_by_the_script_is_saved(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    _define_all(server)
    server.add_user("ann", ["read", "write"])
    session = sign_in_http()

    session.post(
        "/admin/templates/new",
        _editor_form(**{"task-0-order": "1", "task-1-order": "0"}),
    )

    (template,) = _templates(server)
    assert [t["title"] for t in template["tasks"]] == [
        "Block sender",
        "Collect headers",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"task-0-owner": "zed"},
            "Task owner zed of task Collect headers is not a user",
        ),
        ({"cf-hosts": "many"}, "Custom field Affected hosts: 'many' is not a whole"),
        ({"cf-impact": "Huge"}, "value 'Huge' is not one of its options"),
        ({"task-1-title": ""}, "Task 2: a task needs a title"),
        ({"name": "Existing"}, "a case template named Existing exists already"),
    ],
    ids=["unknown-owner", "wrong-type", "not-an-option", "task-title", "duplicate"],
)
def test_a_refused_template_keeps_the_typed_form_and_writes_nothing(
    server: LiveServer,
    sign_in_http: SignIn,
    changes: dict[str, str],
    message: str,
) -> None:
    _define_all(server)
    server.add_user("ann", ["read", "write"])
    server.client().post("/api/case/template", json={"name": "Existing"})
    session = sign_in_http()

    response = session.post("/admin/templates/new", _editor_form(**changes))

    assert response.status_code == 400
    assert message in _alerts(response.text)[0]
    assert 'value="[PHISH]"' in response.text
    assert 'value="Collect headers"' in response.text
    assert [t["name"] for t in _templates(server)] == ["Existing"]


def test_an_existing_template_is_shown_in_the_editor_and_saved_with_changes(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    _define_all(server)
    server.add_user("ann", ["read", "write"])
    session = sign_in_http()
    session.post("/admin/templates/new", _editor_form())
    server.client().post("/api/case/template", json={"name": "Malware"})
    (template,) = [t for t in _templates(server) if t["name"] == "Phishing"]
    path = f"/admin/templates/{template['id']}"

    shown = session.client.get(path).text
    renamed = session.post(path, _editor_form(name="Malware"))
    saved = session.post(
        path, _editor_form(**{"cf-impact": "", "cf-hosts": "3", "task_count": "1"})
    )

    assert _title(shown) == "Template Phishing · Cerana"
    assert '<option value="High" selected>High</option>' in shown
    assert renamed.status_code == 400
    assert _alerts(renamed.text) == ["a case template named Malware exists already"]
    assert saved.status_code == 303
    after = server.client().get(f"/api/case/template/{template['id']}").json()
    assert [t["title"] for t in after["tasks"]] == ["Collect headers"]
    assert after["customFields"] == {"hosts": {"integer": 3, "order": 1}}


def test_templates_export_one_or_all_in_thehive_format(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    admin = server.client()
    first = admin.post(
        "/api/case/template", json={"name": "Phishing", "tasks": [{"title": "T"}]}
    ).json()
    admin.post("/api/case/template", json={"name": "Malware"})
    session = sign_in_http()

    one = session.client.get(f"/admin/templates/{first['id']}/export")
    every = session.client.get("/admin/templates/export")

    assert one.headers["content-disposition"] == (
        'attachment; filename="Case-Template__Phishing.json"'
    )
    assert one.json()["tasks"] == [{"title": "T"}]
    assert "id" not in one.json()
    assert [t["name"] for t in every.json()] == ["Malware", "Phishing"]


def _upload(
    session: WebSession, content: bytes, *, create_missing: bool = False
) -> httpx.Response:
    data = {"csrf_token": session.csrf}
    if create_missing:
        data["create_missing"] = "on"
    return session.client.post(
        "/admin/templates/import",
        data=data,
        files={"file": ("Case-Template__Phishing.json", content, "application/json")},
    )


def test_an_import_of_invalid_json_says_so_and_writes_nothing(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    session = sign_in_http()

    response = _upload(session, b'{"name": "Phishing",')

    assert response.status_code == 400
    assert "Case-Template__Phishing.json is not valid JSON" in _alerts(response.text)[0]
    assert _templates(server) == []


def test_an_import_naming_undefined_fields_lists_them_unless_told_to_create(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    document = {
        "name": "Phishing",
        "customFields": {"impact": {"string": "High", "order": 0}},
        "metrics": {"hours": None},
    }
    session = sign_in_http()

    reported = _upload(session, json.dumps(document).encode())
    nothing = _templates(server)
    imported = _upload(session, json.dumps([document]).encode(), create_missing=True)

    assert reported.status_code == 400
    report = reported.text.split('id="import-missing"', 1)[1].split("</div>", 1)[0]
    assert "<strong>Phishing</strong>" in report
    assert "custom fields <code>impact</code>" in report
    assert "metrics <code>hours</code>" in report
    assert nothing == []
    assert imported.status_code == 303
    assert [t["name"] for t in _templates(server)] == ["Phishing"]
    fields = server.client().get("/api/list/custom_fields").json()
    assert [f["reference"] for f in fields.values()] == ["impact"]


ADMIN_PAGES = [
    "/admin/custom-fields",
    "/admin/metrics",
    "/admin/templates",
    "/admin/templates/new",
    "/admin/templates/export",
]
FORGED_ADMIN_WRITES = [
    ("/admin/custom-fields", {"reference": "x", "name": "X", "type": "string"}),
    ("/admin/metrics", {"name": "x", "title": "X"}),
    ("/admin/templates/new", {"op": "save", "name": "Forged", "severity": "2"}),
    ("/admin/templates/{template}", {"op": "save", "name": "Renamed"}),
    ("/admin/templates/{template}/delete", {}),
]


@pytest.mark.parametrize("roles", [["read"], ["read", "write"]], ids=["read", "write"])
def test_a_user_who_is_not_an_administrator_gets_403_on_every_admin_page(
    server: LiveServer, sign_in_http: SignIn, roles: list[str]
) -> None:
    template = server.client().post("/api/case/template", json={"name": "Kept"}).json()
    server.add_user("reader", roles)
    session = sign_in_http("reader", PASSWORD)

    pages = {path: session.client.get(path).status_code for path in ADMIN_PAGES}
    writes = {}
    for path, form in FORGED_ADMIN_WRITES:
        response = session.post(path.replace("{template}", template["id"]), form)
        writes[path] = (response.status_code, "needs the admin role" in response.text)

    assert pages == dict.fromkeys(ADMIN_PAGES, 403)
    assert writes == {path: (403, True) for path, _ in FORGED_ADMIN_WRITES}
    assert [t["name"] for t in _templates(server)] == ["Kept"]
    assert server.client().get("/api/list/custom_fields").json() == {}


def test_a_case_opened_from_a_template_gets_its_tasks_owners_and_defaults(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    _define_all(server)
    server.add_user("ann", ["read", "write"])
    session = sign_in_http()
    session.post("/admin/templates/new", _editor_form())

    form = session.client.get("/cases/new").text
    response = session.post(
        "/cases/new",
        {"title": "Invoice lure", "template": "Phishing", "severity": "", "tlp": ""},
    )

    assert '<option value="Phishing">Phishing</option>' in form
    assert response.status_code == 303
    case = server.client().get("/api/case").json()[0]
    assert (case["title"], case["severity"]) == ("[PHISH] Invoice lure", 3)
    assert case["description"] == "A user reported a phishing mail."
    assert case["customFields"]["impact"]["string"] == "High"
    tasks = server.client().post(f"/api/case/{case['id']}/task/_search", json={}).json()
    assert sorted((t["title"], t["owner"]) for t in tasks) == [
        ("Block sender", "admin"),
        ("Collect headers", "ann"),
    ]


def test_case_values_are_edited_and_closing_needs_the_mandatory_field(
    server: LiveServer, sign_in_http: SignIn
) -> None:
    _define_all(server)
    case = create_case(server, customFields={"impact": {"string": "Low", "order": 0}})
    session = sign_in_http()
    path = f"/cases/{case['id']}"

    wrong = session.post(f"{path}/custom-fields", {"cf-hosts": "two", "version": ""})
    saved = session.post(
        f"{path}/custom-fields", {"cf-impact": "High", "metric-hours": "3"}
    )
    refused = session.post(
        f"{path}/close", {"resolution": "TruePositive", "summary": "done"}
    )
    session.post(
        f"{path}/custom-fields",
        {"cf-impact": "High", "cf-hosts": "4", "metric-hours": "3"},
    )
    closed = session.post(
        f"{path}/close", {"resolution": "TruePositive", "summary": "done"}
    )

    assert wrong.status_code == 400
    assert _alerts(wrong.text) == [
        "Custom field Affected hosts: 'two' is not a whole number"
    ]
    assert 'value="two"' in wrong.text
    assert saved.status_code == 303
    assert refused.status_code == 400
    dialog = refused.text.split('id="close-dialog"', 1)[1].split("</details>", 1)[0]
    assert "Mandatory custom field hosts (Affected hosts) must be set" in dialog
    assert closed.status_code == 303
    after = server.client().get(f"/api/case/{case['id']}").json()
    assert after["status"] == "Resolved"
    assert after["customFields"]["hosts"]["integer"] == 4
    assert after["metrics"] == {"hours": 3}
