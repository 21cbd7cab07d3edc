"""Case template export and import in TheHive 3's file format (#5)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer
from tests.template_fixtures import THEHIVE_TEMPLATE, define_all, thehive_template

IMPORT = "/api/case/template/_import"


@pytest.fixture
def owners(server: LiveServer) -> None:
    """The users the fixture template's tasks are assigned to."""
    server.add_user("alice", ["read", "write"])
    server.add_user("bob", ["read", "write"])


def _template_count(admin: httpx.Client) -> str:
    return admin.post("/api/case/template/_search", json={}).headers["X-Total"]


def _lists_are_empty(admin: httpx.Client) -> bool:
    fields = admin.get("/api/list/custom_fields").json()
    metrics = admin.get("/api/list/case_metrics").json()
    return bool(fields == {} and metrics == {})


@pytest.mark.usefixtures("owners")
def test_thehive3_export_imports_with_tasks_owners_and_defaults(
    admin: httpx.Client,
) -> None:
    define_all(admin)

    response = admin.post(IMPORT, content=THEHIVE_TEMPLATE.read_bytes())
    (template,) = response.json()["templates"]
    exported = admin.get(f"/api/case/template/{template['id']}/_export")

    assert response.status_code == 201, response.text
    assert [(t["title"], t["owner"]) for t in template["tasks"]] == [
        ("Collect the e-mails", "alice"),
        ("Block senders and links", "bob"),
        ("Search for victims", "alice"),
    ]
    assert template["metrics"] == {"timeToContain": None, "usersTargeted": 0}
    assert template["customFields"]["firstReceived"] == {
        "date": 1512468900000,
        "order": 3,
    }
    assert exported.json() == thehive_template()


@pytest.mark.usefixtures("owners")
def test_imported_thehive3_template_opens_cases(admin: httpx.Client) -> None:
    define_all(admin)
    admin.post(IMPORT, content=THEHIVE_TEMPLATE.read_bytes())

    case = admin.post(
        "/api/case", json={"title": "Wave 3", "template": "Phishing campaign"}
    ).json()
    tasks = admin.post(
        f"/api/case/{case['id']}/task/_search", json={"sort": ["+order"]}
    ).json()

    assert case["title"] == "[PHISHING] Wave 3"
    assert case["customFields"]["businessImpact"] == {"string": "Low", "order": 1}
    assert [t["owner"] for t in tasks] == ["alice", "bob", "alice"]


def test_round_trip_into_a_clean_instance_gives_identical_json(
    server: LiveServer, admin: httpx.Client, owners: None
) -> None:
    define_all(admin)
    admin.post(IMPORT, content=THEHIVE_TEMPLATE.read_bytes())
    admin.post(
        "/api/case/template",
        json={
            "name": "Malware on a laptop",
            "flag": True,
            "tags": ["malware"],
            "metrics": {"timeToContain": 4.5},
            "customFields": {"affectedUsers": {"number": 1, "order": 1}},
            "tasks": [{"title": "Isolate", "group": "containment", "owner": "bob"}],
        },
    )
    first = admin.get("/api/case/template/_export")

    server.reset()
    server.add_user("alice", ["read"])
    server.add_user("bob", ["read"])
    clean = server.client()
    imported = clean.post(
        IMPORT, params={"createMissing": "true"}, content=first.content
    )
    second = clean.get("/api/case/template/_export")

    assert imported.status_code == 201, imported.text
    assert [t["name"] for t in first.json()] == [
        "Malware on a laptop",
        "Phishing campaign",
    ]
    assert second.content == first.content


@pytest.mark.usefixtures("owners")
def test_undefined_fields_and_metrics_are_listed_and_nothing_is_written(
    admin: httpx.Client,
) -> None:
    response = admin.post(IMPORT, json=thehive_template())

    assert response.status_code == 400
    assert response.json()["message"] == (
        "case template Phishing campaign names custom fields businessImpact, "
        "reportedByUser, firstReceived, affectedUsers and metrics timeToContain, "
        "usersTargeted that are not defined: define them first, or import with "
        "createMissing"
    )
    assert _template_count(admin) == "0"


@pytest.mark.usefixtures("owners")
def test_create_missing_defines_fields_with_the_type_of_their_value(
    admin: httpx.Client,
) -> None:
    response = admin.post(
        IMPORT, params={"createMissing": "true"}, json=thehive_template()
    )
    fields = admin.get("/api/list/custom_fields").json().values()
    metrics = admin.get("/api/list/case_metrics").json().values()

    assert response.status_code == 201, response.text
    assert response.json()["createdMetrics"] == ["timeToContain", "usersTargeted"]
    assert {f["reference"]: f["type"] for f in fields} == {
        "businessImpact": "string",
        "reportedByUser": "boolean",
        "firstReceived": "date",
        "affectedUsers": "number",
    }
    assert {m["name"]: m["title"] for m in metrics} == {
        "timeToContain": "timeToContain",
        "usersTargeted": "usersTargeted",
    }


def test_unknown_owner_undoes_the_created_definitions(admin: httpx.Client) -> None:
    response = admin.post(
        IMPORT, params={"createMissing": "true"}, json=thehive_template()
    )

    assert response.status_code == 400
    assert "Task owner alice of task Collect the e-mails" in response.json()["message"]
    assert _lists_are_empty(admin)
    assert _template_count(admin) == "0"


@pytest.mark.usefixtures("owners")
def test_invalid_json_file_gets_a_400_naming_it_and_nothing_is_written(
    admin: httpx.Client,
) -> None:
    define_all(admin)
    files = [
        ("file", ("good.json", THEHIVE_TEMPLATE.read_bytes(), "application/json")),
        ("file", ("broken.json", b'{"name": "Broken", ', "application/json")),
    ]

    response = admin.post(IMPORT, files=files)

    assert response.status_code == 400
    assert response.json()["message"].startswith("broken.json is not valid JSON")
    assert _template_count(admin) == "0"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"[1, 2", "request body is not valid JSON"),
        (b'"Phishing"', "must hold a case template object or a list of them"),
        (b"[42]", "a case template is a JSON object, not int"),
        (b'{"description": "no name"}', "Attribute name is missing"),
    ],
    ids=["truncated", "string", "list-of-numbers", "no-name"],
)
def test_bad_import_body_gets_a_400(
    admin: httpx.Client, body: bytes, named: str
) -> None:
    response = admin.post(IMPORT, content=body)

    assert response.status_code == 400
    assert named in response.json()["message"]
    assert _template_count(admin) == "0"


@pytest.mark.usefixtures("owners")
def test_several_files_import_together(admin: httpx.Client) -> None:
    define_all(admin)
    other: dict[str, Any] = {**thehive_template(), "name": "Phishing, wave 2"}
    files = [
        ("a", ("one.json", THEHIVE_TEMPLATE.read_bytes(), "application/json")),
        ("b", ("two.json", json.dumps(other).encode(), "application/json")),
    ]

    response = admin.post(IMPORT, files=files)

    assert response.status_code == 201, response.text
    assert [t["name"] for t in response.json()["templates"]] == [
        "Phishing campaign",
        "Phishing, wave 2",
    ]


@pytest.mark.usefixtures("owners")
def test_import_of_a_taken_name_is_refused(admin: httpx.Client) -> None:
    define_all(admin)
    admin.post(IMPORT, json=thehive_template())

    response = admin.post(IMPORT, json=[thehive_template()])

    assert response.status_code == 400
    assert "named Phishing campaign exists already" in response.json()["message"]
    assert _template_count(admin) == "1"


@pytest.mark.usefixtures("owners")
def test_single_export_is_named_as_thehive_names_it(admin: httpx.Client) -> None:
    define_all(admin)
    template = admin.post(IMPORT, json=thehive_template()).json()["templates"][0]

    exported = admin.get(f"/api/case/template/{template['id']}/_export")

    assert exported.headers["content-disposition"] == (
        'attachment; filename="Case-Template__Phishing_campaign.json"'
    )
    assert "id" not in exported.json() and "createdAt" not in exported.json()
