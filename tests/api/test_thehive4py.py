"""The official Python client, thehive4py 1.8.2, against a running server.

Every call goes through the client exactly as a SOC script would make it,
authenticated with an API key, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import LiveServer

# thehive4py 1.x announces on import that it is no longer maintained
# (TheHive-Project/TheHive4py, release 1.8.2); the notice is not ours to fix.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from thehive4py.api import TheHiveApi
    from thehive4py.models import Case, CaseObservable, CaseTask, CaseTaskLog
    from thehive4py.query import And, Eq

SAMPLE = b"MZ\x90\x00 not really a sample\n"


@pytest.fixture
def api(server: LiveServer) -> TheHiveApi:
    return TheHiveApi(server.url, server.admin_key)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.bin"
    path.write_bytes(SAMPLE)
    return path


def _open_case(api: TheHiveApi, title: str = "Phishing wave", **fields: Any) -> Any:
    fields.setdefault("tasks", [CaseTask(title="Triage"), CaseTask(title="Contain")])
    fields.setdefault("tags", ["phishing", "mail"])
    case = Case(title=title, description="Users got a fake invoice", **fields)
    response = api.create_case(case)
    assert response.status_code == 201, response.text
    return response.json()


def _add_observable(api: TheHiveApi, case_id: str, observable: CaseObservable) -> Any:
    response = api.create_case_observable(case_id, observable)
    if observable.dataType == "file":
        # thehive4py opens the file itself and never closes it (TheHive4py#10).
        observable.data[0]["attachment"][1].close()
    assert response.status_code == 201, response.text
    return response.json()


def _write_log(api: TheHiveApi, task_id: str, log: CaseTaskLog) -> Any:
    response = api.create_task_log(task_id, log)
    if log.file is not None:
        log.attachment["attachment"][1].close()  # TheHive4py#10, as above
    assert response.status_code == 201, response.text
    return response.json()


def _update_case(api: TheHiveApi, case_id: str, **changes: Any) -> Any:
    # Case() ignores status and the resolution fields: scripts set them on
    # the object, then name the fields to send.
    case = Case(id=case_id)
    for name, value in changes.items():
        setattr(case, name, value)
    return api.update_case(case, fields=list(changes))


def _tasks(api: TheHiveApi, case_id: str) -> dict[str, Any]:
    response = api.get_case_tasks(case_id)
    assert response.status_code == 200, response.text
    return {task["title"]: task for task in response.json()}


def test_case_is_opened_with_its_tasks(api: TheHiveApi) -> None:
    case = Case(
        title="Phishing wave",
        description="Users got a fake invoice",
        tasks=[CaseTask(title="Triage"), CaseTask(title="Contain")],
        tags=["phishing", "mail"],
        tlp=3,
        severity=3,
    )

    response = api.create_case(case)
    created = response.json()
    tasks = _tasks(api, created["id"])

    assert response.status_code == 201
    assert created["caseId"] == 1 and created["owner"] == "admin"
    assert (created["tlp"], created["severity"], created["status"]) == (3, 3, "Open")
    assert sorted(created["tags"]) == ["mail", "phishing"]
    assert sorted(tasks) == ["Contain", "Triage"]
    assert {t["status"] for t in tasks.values()} == {"Waiting"}


def test_open_cases_are_found_with_a_query(api: TheHiveApi) -> None:
    wanted = _open_case(api, "Phishing wave")
    _open_case(api, "Ransomware", tags=["ransomware"])
    closed = _open_case(api, "Old phishing")
    _update_case(api, closed["id"], status="Resolved", resolutionStatus="Other")

    response = api.find_cases(
        query=And(Eq("status", "Open"), Eq("tags", "phishing")), range="all", sort=[]
    )

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [wanted["id"]]
    assert response.headers["X-Total"] == "1"


def test_find_first_returns_the_first_case_of_the_sort_order(
    api: TheHiveApi,
) -> None:
    _open_case(api, "first")
    _open_case(api, "second")

    newest = api.find_first(query=Eq("status", "Open"), sort=["-caseId"])

    assert (newest["caseId"], newest["title"]) == (2, "second")


def test_single_multi_value_and_file_observables_are_added(
    api: TheHiveApi, sample: Path
) -> None:
    case = _open_case(api)

    single = _add_observable(
        api,
        case["id"],
        CaseObservable(dataType="ip", data="203.0.113.7", message="C2", ioc=True),
    )
    several = _add_observable(
        api,
        case["id"],
        CaseObservable(
            dataType="domain",
            data=["a.example", "b.example"],
            message="Sender domains",
            tags=["sender"],
        ),
    )
    file = _add_observable(
        api,
        case["id"],
        CaseObservable(dataType="file", data=str(sample), message="Attachment"),
    )
    listed = api.get_case_observables(case["id"]).json()

    assert (single["data"], single["ioc"], single["tlp"]) == ("203.0.113.7", True, 2)
    assert sorted(o["data"] for o in several) == ["a.example", "b.example"]
    assert file["attachment"]["name"] == "sample.bin"
    assert file["attachment"]["size"] == len(SAMPLE)
    assert file["attachment"]["hashes"][0] == hashlib.sha256(SAMPLE).hexdigest()
    assert sorted(o["dataType"] for o in listed) == ["domain", "domain", "file", "ip"]


def test_observable_is_read_flagged_and_deleted(api: TheHiveApi) -> None:
    case = _open_case(api)
    observable = _add_observable(
        api,
        case["id"],
        CaseObservable(dataType="url", data="http://a.example/x", message="Link"),
    )

    fetched = api.get_case_observable(observable["id"])
    flagged = api.update_case_observable(
        observable["id"],
        CaseObservable(ioc=True, sighted=True, tags=["seen"]),
        fields=["ioc", "sighted", "tags"],
    )
    deleted = api.delete_case_observable(observable["id"])
    remaining = api.get_case_observables(case["id"], query=Eq("status", "Ok"))

    assert fetched.status_code == 200
    assert fetched.json()["data"] == "http://a.example/x"
    assert flagged.status_code == 200
    assert (flagged.json()["ioc"], flagged.json()["sighted"]) == (True, True)
    assert flagged.json()["tags"] == ["seen"] and flagged.json()["_version"] == 2
    assert deleted.status_code == 204
    assert remaining.json() == []


def test_task_logs_are_written_with_and_without_a_file(
    api: TheHiveApi, sample: Path
) -> None:
    case = _open_case(api)
    task = _tasks(api, case["id"])["Triage"]

    note = _write_log(api, task["id"], CaseTaskLog(message="Headers checked"))
    attached = _write_log(
        api, task["id"], CaseTaskLog(message="Sample attached", file=str(sample))
    )
    logs = api.get_task_logs(task["id"])
    started = api.get_case_task(task["id"]).json()

    assert note["message"] == "Headers checked" and "attachment" not in note
    assert attached["attachment"]["name"] == "sample.bin"
    assert attached["attachment"]["size"] == len(SAMPLE)
    assert logs.status_code == 200
    assert sorted(log["message"] for log in logs.json()) == [
        "Headers checked",
        "Sample attached",
    ]
    assert (started["status"], started["owner"]) == ("InProgress", "admin")


def test_case_is_updated_then_closed_with_its_tasks(api: TheHiveApi) -> None:
    case = _open_case(api)
    started = _tasks(api, case["id"])["Triage"]
    _write_log(api, started["id"], CaseTaskLog(message="On it"))
    edited = Case(json=api.get_case(case["id"]).json())
    edited.title, edited.severity = "Phishing wave (finance)", 1

    updated = api.update_case(edited, fields=["title", "severity"])
    closed = _update_case(
        api,
        case["id"],
        status="Resolved",
        resolutionStatus="TruePositive",
        impactStatus="WithImpact",
        summary="Blocked the sender; two users reset",
    )
    tasks = _tasks(api, case["id"])

    assert updated.status_code == 200
    assert (updated.json()["title"], updated.json()["severity"]) == (
        "Phishing wave (finance)",
        1,
    )
    assert closed.status_code == 200
    assert closed.json()["status"] == "Resolved" and "endDate" in closed.json()
    assert (closed.json()["resolutionStatus"], closed.json()["impactStatus"]) == (
        "TruePositive",
        "WithImpact",
    )
    assert closed.json()["summary"] == "Blocked the sender; two users reset"
    assert {t: tasks[t]["status"] for t in tasks} == {
        "Triage": "Completed",
        "Contain": "Cancel",
    }


def test_case_sent_back_whole_is_updated(api: TheHiveApi) -> None:
    # Without `fields`, the client sends every attribute it knows, PAP included.
    case = _open_case(api)
    edited = Case(json=api.get_case(case["id"]).json())
    edited.tags = ["phishing", "finance"]

    response = api.update_case(edited)

    assert response.status_code == 200, response.text
    assert sorted(response.json()["tags"]) == ["finance", "phishing"]
    assert response.json()["_version"] == 2


def test_case_with_a_pap_other_than_the_default_is_refused(api: TheHiveApi) -> None:
    case = Case(title="Sensitive", description="No automated analysis", pap=3)

    response = api.create_case(case)

    assert response.status_code == 400
    assert response.json()["errors"][0][0]["name"] == "pap"


def test_cases_sharing_an_observable_are_linked(api: TheHiveApi) -> None:
    first = _open_case(api, "first")
    second = _open_case(api, "second")
    _open_case(api, "unrelated")
    for case in (first, second):
        _add_observable(
            api,
            case["id"],
            CaseObservable(dataType="ip", data="198.51.100.9", message="Scanner"),
        )

    response = api.get_linked_cases(first["id"])

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [second["id"]]
    assert response.json()[0]["linksCount"] == 1
    assert response.json()[0]["linkedWith"][0]["data"] == "198.51.100.9"


def test_current_user_is_the_owner_of_the_key(api: TheHiveApi) -> None:
    response = api.get_current_user()

    assert response.status_code == 200
    assert response.json()["login"] == "admin"
    assert "admin" in response.json()["roles"]


def test_health_answers_ok(api: TheHiveApi) -> None:
    response = api.health()

    assert (response.status_code, response.text) == (200, "Ok")
