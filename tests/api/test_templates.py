"""Case templates through the TheHive 3 API: define, search, apply (#5)."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer
from tests.template_fixtures import define_all

with warnings.catch_warnings():
    # thehive4py 1.x warns on import that it is unmaintained; it is the
    # client TheHive 3 users have, which is why we test against it.
    warnings.filterwarnings("ignore", "thehive4py v1.x", DeprecationWarning)
    from thehive4py.api import TheHiveApi
    from thehive4py.models import Case, CaseTask, CaseTemplate, CustomFieldHelper
    from thehive4py.query import Eq

TEMPLATE: dict[str, Any] = {
    "name": "Phishing",
    "titlePrefix": "[PHISHING]",
    "description": "Users received a phishing mail",
    "severity": 3,
    "tlp": 1,
    "tags": ["phishing"],
    "tasks": [
        {"title": "Block senders", "group": "containment", "owner": "bob", "order": 1},
        {
            "title": "Collect mails",
            "description": "With headers",
            "owner": "alice",
            "order": 0,
        },
    ],
    "metrics": {"timeToContain": None, "usersTargeted": 1},
    "customFields": {
        "businessImpact": {"string": "Low", "order": 1},
        "reportedByUser": {"boolean": True, "order": 2},
    },
}


@pytest.fixture
def staffed(server: LiveServer, admin: httpx.Client) -> httpx.Client:
    """The admin client of an instance with the fixture definitions and the
    task owners alice and bob."""
    define_all(admin)
    server.add_user("alice", ["read", "write"])
    server.add_user("bob", ["read", "write"])
    return admin


def _create(admin: httpx.Client, **changes: Any) -> httpx.Response:
    return admin.post("/api/case/template", json={**TEMPLATE, **changes})


def _template_count(admin: httpx.Client) -> str:
    return admin.post("/api/case/template/_search", json={}).headers["X-Total"]


def _tasks(admin: httpx.Client, case_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.post(
        f"/api/case/{case_id}/task/_search", json={"range": "all", "sort": ["+order"]}
    ).json()
    return found


def test_template_is_created_read_and_found_by_name(staffed: httpx.Client) -> None:
    created = _create(staffed)

    read = staffed.get(f"/api/case/template/{created.json()['id']}").json()
    found = staffed.post(
        "/api/case/template/_search", json={"query": {"name": "Phishing"}}
    )

    assert created.status_code == 201, created.text
    assert read["_type"] == "caseTemplate" and read["createdBy"] == "admin"
    assert read["tasks"] == TEMPLATE["tasks"]
    assert read["customFields"] == TEMPLATE["customFields"]
    assert read["metrics"] == TEMPLATE["metrics"]
    assert [t["id"] for t in found.json()] == [read["id"]]


def test_case_opened_from_a_template_gets_everything(staffed: httpx.Client) -> None:
    _create(staffed)

    response = staffed.post(
        "/api/case",
        json={
            "title": "Mails from evil.example",
            "template": "Phishing",
            "tags": ["evil.example"],
            "customFields": {"businessImpact": {"string": "High", "order": 1}},
            "tasks": [{"title": "Warn the users"}],
        },
    )
    case = response.json()
    tasks = _tasks(staffed, case["id"])

    assert response.status_code == 201, response.text
    assert case["title"] == "[PHISHING] Mails from evil.example"
    assert case["description"] == "Users received a phishing mail"
    assert (case["severity"], case["tlp"]) == (3, 1)
    assert case["tags"] == ["evil.example", "phishing"]
    assert case["metrics"] == {"timeToContain": None, "usersTargeted": 1}
    assert case["customFields"] == {
        "businessImpact": {"string": "High", "order": 1},
        "reportedByUser": {"boolean": True, "order": 2},
    }
    assert [(t["title"], t.get("owner"), t["order"]) for t in tasks] == [
        ("Warn the users", None, 0),
        ("Collect mails", "alice", 1),
        ("Block senders", "bob", 2),
    ]
    assert tasks[2]["group"] == "containment"


def test_unknown_template_gets_a_400_naming_it_and_no_case(
    staffed: httpx.Client,
) -> None:
    response = staffed.post(
        "/api/case", json={"title": "t", "description": "d", "template": "Phishin"}
    )

    assert response.status_code == 400
    assert "case template 'Phishin' does not exist" in response.json()["message"]
    assert staffed.get("/api/case").headers["X-Total"] == "0"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (
            {"tasks": [{"title": "Collect", "owner": "carol"}]},
            "Task owner carol of task Collect is not a user",
        ),
        (
            {"customFields": {"reportedByUser": {"boolean": "maybe"}}},
            "reportedByUser.boolean",
        ),
        (
            {"customFields": {"businessImpact": {"number": 2}}},
            "custom field businessImpact: is a string field, not number",
        ),
        ({"metrics": {"usersTargeted": "many"}}, "Invalid value for metrics"),
        (
            {"customFields": {"impact": {"string": "Low"}}},
            "Unknown custom field impact",
        ),
        ({"metrics": {"dwellTime": 1}}, "Unknown metric dwellTime"),
        ({"tasks": [{"description": "no title"}]}, "tasks[0].title is missing"),
        ({"tasks": [{"title": "x", "colour": "red"}]}, "Unknown attribute colour"),
        ({"tasks": [{"title": "x", "order": "first"}]}, "tasks[0].order"),
        ({"title": "A case title"}, "Unknown attribute title"),
        ({"pap": 3}, "case templates have no PAP"),
        ({"name": " "}, "a template name has 1 to 256 characters"),
        ({"name": "x" * 300}, "a template name has 1 to 256 characters"),
    ],
    ids=[
        "unknown-task-owner",
        "default-of-wrong-format",
        "default-of-wrong-type",
        "metric-not-a-number",
        "undefined-custom-field",
        "undefined-metric",
        "task-without-title",
        "unknown-task-key",
        "task-order-not-a-number",
        "case-title-in-template",
        "pap",
        "blank-name",
        "name-too-long",
    ],
)
def test_bad_template_gets_a_400_naming_the_problem_and_writes_nothing(
    staffed: httpx.Client, changes: dict[str, Any], named: str
) -> None:
    response = _create(staffed, **changes)

    assert response.status_code == 400
    assert named in response.json()["message"]
    assert _template_count(staffed) == "0"


def test_duplicate_template_name_is_refused(staffed: httpx.Client) -> None:
    _create(staffed)

    response = _create(staffed, description="another one")

    assert response.status_code == 400
    assert response.json() == {
        "type": "ConflictError",
        "message": "a case template named Phishing exists already",
    }
    assert _template_count(staffed) == "1"


def test_update_checks_owners_and_names(staffed: httpx.Client) -> None:
    first = _create(staffed).json()
    _create(staffed, name="Malware")
    path = f"/api/case/template/{first['id']}"

    renamed = staffed.patch(path, json={"name": "Phishing v2", "tags": []})
    taken = staffed.patch(path, json={"name": "Malware"})
    bad_owner = staffed.patch(path, json={"tasks": [{"title": "x", "owner": "eve"}]})
    stored = staffed.get(path).json()

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Phishing v2" and renamed.json()["tags"] == []
    assert taken.status_code == 400 and "named Malware" in taken.json()["message"]
    assert bad_owner.status_code == 400 and "owner eve" in bad_owner.json()["message"]
    assert stored["name"] == "Phishing v2" and stored["tasks"] == TEMPLATE["tasks"]


def test_delete_removes_the_template_for_good(staffed: httpx.Client) -> None:
    template = _create(staffed).json()

    deleted = staffed.delete(f"/api/case/template/{template['id']}")
    read = staffed.get(f"/api/case/template/{template['id']}")
    opened = staffed.post(
        "/api/case", json={"title": "t", "description": "d", "template": "Phishing"}
    )

    assert deleted.status_code == 204
    assert read.status_code == 404
    assert opened.status_code == 400


def test_only_admins_change_templates(
    server: LiveServer, staffed: httpx.Client
) -> None:
    template = _create(staffed).json()
    analyst = server.client(server.add_user("carol", ["read", "write"]))

    created = analyst.post("/api/case/template", json={**TEMPLATE, "name": "Mine"})
    changed = analyst.patch(
        f"/api/case/template/{template['id']}", json={"severity": 1}
    )
    deleted = analyst.delete(f"/api/case/template/{template['id']}")
    listed = analyst.post("/api/case/template/_search", json={})

    assert [created.status_code, changed.status_code, deleted.status_code] == [
        403,
        403,
        403,
    ]
    assert listed.status_code == 200 and listed.headers["X-Total"] == "1"


def test_thehive4py_case_template_flow(
    server: LiveServer, staffed: httpx.Client
) -> None:
    api = TheHiveApi(server.url, server.admin_key)
    defaults = (
        CustomFieldHelper()
        .add_string("businessImpact", "Medium")
        .add_number("affectedUsers", 10)
        .build()
    )
    template = CaseTemplate(
        name="Phishing",
        titlePrefix="[PHISHING]",
        description="From thehive4py",
        tags=["phishing"],
        metrics={"timeToContain": None},
        customFields=defaults,
        tasks=[
            CaseTask(title="Collect mails", owner="alice"),
            CaseTask(title="Block senders", owner="bob", group="containment"),
        ],
    )

    created = api.create_case_template(template)
    found = api.find_case_templates(query=Eq("name", "Phishing"))
    fetched = api.get_case_template("Phishing")
    case = api.create_case(
        Case(title="Mails from evil.example", template="Phishing", tags=["evil"])
    )
    tasks = _tasks(staffed, case.json()["id"])

    assert created.status_code == 201, created.text
    assert [t["name"] for t in found.json()] == ["Phishing"]
    assert fetched["customFields"] == {
        "businessImpact": {"order": 0, "string": "Medium"},
        "affectedUsers": {"order": 1, "number": 10},
    }
    assert case.status_code == 201, case.text
    assert case.json()["title"] == "[PHISHING] Mails from evil.example"
    assert case.json()["customFields"]["affectedUsers"] == {"order": 1, "number": 10}
    assert [(t["title"], t["owner"], t["group"]) for t in tasks] == [
        ("Collect mails", "alice", "default"),
        ("Block senders", "bob", "containment"),
    ]
