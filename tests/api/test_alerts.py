"""Alerts through the TheHive 3 API: create, deduplicate, triage, open or
merge into cases, similar cases and known observables."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cerana.store import tables
from tests.api.conftest import LiveServer


def _alert_body(source_ref: str = "ref-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "siem",
        "source": "splunk",
        "sourceRef": source_ref,
        "title": "Beaconing to a known C2",
        "description": "Host ws-1234 talks to evil.example every minute",
        "artifacts": [
            {"dataType": "ip", "data": "203.0.113.9", "message": "C2 address"},
            {"dataType": "domain", "data": "Evil.Example.", "tags": ["c2"]},
        ],
    }
    body.update(fields)
    return body


def _create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/alert", json=_alert_body(**fields))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _case(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"title": "Known campaign", "description": "Earlier incident", **fields}
    response = client.post("/api/case", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _observable(client: httpx.Client, case_id: str, **fields: Any) -> dict[str, Any]:
    body = {"message": "seen before", **fields}
    response = client.post(f"/api/case/{case_id}/artifact", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# -- creation and deduplication --------------------------------------------------


def test_created_alert_has_thehive_defaults_and_id(admin: httpx.Client) -> None:
    alert = _create(admin)

    expected_id = hashlib.md5(b"siem|splunk|ref-1").hexdigest()
    assert alert["id"] == alert["_id"] == expected_id
    assert (alert["status"], alert["follow"], alert["severity"]) == ("New", True, 2)
    assert alert["occurrences"] == 1 and alert["observableCount"] == 2
    assert alert["_type"] == "alert" and "case" not in alert


def test_artifact_values_are_normalised(admin: httpx.Client) -> None:
    alert = _create(admin)

    assert [a["data"] for a in alert["artifacts"]] == ["203.0.113.9", "evil.example"]
    assert alert["artifacts"][1]["tags"] == ["c2"]
    assert alert["artifacts"][0]["tlp"] == 2


def test_client_status_and_case_are_discarded(admin: httpx.Client) -> None:
    alert = _create(admin, status="Imported", follow=False, case="x", lastSyncDate=1)

    assert alert["status"] == "New" and alert["follow"] is True
    assert "case" not in alert


def test_second_create_is_refused_naming_the_alert(admin: httpx.Client) -> None:
    _create(admin)

    response = admin.post("/api/alert", json=_alert_body())

    assert response.status_code == 400
    assert response.json()["type"] == "ConflictError"
    assert "sourceRef 'ref-1'" in response.json()["message"]


def test_upsert_counts_repeats_and_merges_new_artifacts(admin: httpx.Client) -> None:
    first = _create(admin)
    repeat = _alert_body(
        tags=["again"],
        artifacts=[
            {"dataType": "ip", "data": "203.0.113.9", "ioc": True},
            {"dataType": "url", "data": "http://evil.example/gate.php"},
        ],
    )

    response = admin.post("/api/alert", params={"upsert": "true"}, json=repeat)

    assert response.status_code == 200, response.text
    alert = response.json()
    assert alert["occurrences"] == 2 and alert["lastSeen"] >= first["lastSeen"]
    assert [a["dataType"] for a in alert["artifacts"]] == ["ip", "domain", "url"]
    assert alert["artifacts"][0]["ioc"] is True
    assert alert["tags"] == ["again"] and alert["status"] == "New"


def test_upsert_setting_counts_repeats_without_asking(server: LiveServer) -> None:
    admin = server.client()
    _create(admin)
    settings = server.platform.settings
    object.__setattr__(settings, "alert_upsert", True)
    try:
        repeated = admin.post("/api/alert", json=_alert_body())
        refused = admin.post("/api/alert?upsert=false", json=_alert_body())
    finally:
        object.__setattr__(settings, "alert_upsert", False)

    assert repeated.status_code == 200 and repeated.json()["occurrences"] == 2
    assert refused.status_code == 400


def test_repeat_of_a_followed_read_alert_makes_it_updated(admin: httpx.Client) -> None:
    alert = _create(admin)
    admin.post(f"/api/alert/{alert['id']}/markAsRead")

    repeated = admin.post("/api/alert?upsert=1", json=_alert_body()).json()

    assert repeated["status"] == "Updated"


BAD_INPUT = [
    pytest.param(
        {
            "artifacts": [
                {"dataType": "ip", "data": "1.2.3.4"},
                {"dataType": "nope", "data": "x"},
            ]
        },
        "artifacts[1].dataType",
        id="wrong-datatype",
    ),
    pytest.param(
        {"artifacts": [{"dataType": "ip", "data": "999.1.2.3"}]},
        "artifacts[0].data",
        id="invalid-ip",
    ),
    pytest.param(
        {"description": "x" * 1_000_001},
        "description",
        id="oversized-description",
    ),
    pytest.param(
        {
            "artifacts": [
                {"dataType": "file", "data": "a.exe;application/x-dosexec;%%%"}
            ]
        },
        "artifacts[0].data",
        id="malformed-base64",
    ),
    pytest.param({"sourceRef": "r" * 513}, "sourceRef", id="sourceref-too-long"),
    pytest.param(
        {"artifacts": [{"dataType": "ip", "data": "1.2.3.4", "colour": "red"}]},
        "artifacts[0].colour",
        id="unknown-artifact-key",
    ),
]


@pytest.mark.parametrize(("fields", "named"), BAD_INPUT)
def test_bad_input_is_refused_naming_the_item(
    admin: httpx.Client, fields: dict[str, Any], named: str
) -> None:
    response = admin.post("/api/alert", json=_alert_body(**fields))

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "AttributeCheckingError"
    assert named in [e["name"] for e in body["errors"][0]]
    assert admin.get("/api/alert").headers["X-Total"] == "0"


def test_file_artifact_is_stored_and_described(admin: httpx.Client) -> None:
    content = b"MZ\x90\x00 not really a program"
    encoded = base64.b64encode(content).decode()
    artifact = {
        "dataType": "file",
        "data": f"dropper.exe;application/x-dosexec;{encoded}",
    }

    alert = _create(admin, artifacts=[artifact])
    attachment = alert["artifacts"][0]["attachment"]
    download = admin.get(f"/api/datastore/{attachment['id']}")

    assert attachment["name"] == "dropper.exe"
    assert attachment["hashes"][0] == hashlib.sha256(content).hexdigest()
    assert attachment["hashes"][2] == hashlib.md5(content).hexdigest()
    assert "data" not in alert["artifacts"][0]
    assert download.content == content


def test_create_needs_the_alert_role(server: LiveServer) -> None:
    analyst = server.client(server.add_user("analyst", ["read", "write"]))

    response = analyst.post("/api/alert", json=_alert_body())

    assert response.status_code == 403


# -- reading, similarity, known observables --------------------------------------


def test_similarity_lists_similar_cases_with_counts(admin: httpx.Client) -> None:
    case = _case(admin)
    _observable(admin, case["id"], dataType="ip", data="203.0.113.9", ioc=True)
    _observable(admin, case["id"], dataType="domain", data="evil.example")
    _observable(admin, case["id"], dataType="mail", data="x@y.example", ioc=True)
    alert = _create(admin)

    found = admin.get(f"/api/alert/{alert['id']}", params={"similarity": 1}).json()

    [similar] = found["similarCases"]
    assert similar["id"] == case["id"] and similar["caseId"] == case["caseId"]
    assert (similar["similarArtifactCount"], similar["similarIocCount"]) == (2, 1)
    assert (similar["artifactCount"], similar["iocCount"]) == (3, 2)
    assert [a["seen"] for a in found["artifacts"]] == [1, 1]


def test_known_observables_count_cases_and_other_alerts(admin: httpx.Client) -> None:
    for number, flags in ((1, {"sighted": True}), (2, {"ioc": True})):
        case = _case(admin, title=f"Case {number}")
        _observable(admin, case["id"], dataType="ip", data="203.0.113.9", **flags)
    _create(
        admin,
        sourceRef="other",
        artifacts=[{"dataType": "ip", "data": "203.0.113.9", "ioc": True}],
    )
    alert = _create(admin)

    found = admin.get(f"/api/alert/{alert['id']}?similarity=1").json()

    ip, domain = found["artifacts"]
    assert ip["known"] == {
        "cases": 2,
        "alerts": 1,
        "alertsCapped": False,
        "ioc": True,
        "sighted": True,
    }
    assert (domain["known"]["cases"], domain["known"]["alerts"]) == (0, 0)
    assert domain["known"]["ioc"] is False and ip["seen"] == 2


def test_deleted_and_duplicate_cases_are_not_similar(admin: httpx.Client) -> None:
    deleted = _case(admin, title="Deleted")
    _observable(admin, deleted["id"], dataType="ip", data="203.0.113.9")
    admin.delete(f"/api/case/{deleted['id']}")
    alert = _create(admin)

    found = admin.get(f"/api/alert/{alert['id']}?similarity=1").json()

    assert found["similarCases"] == []
    assert found["artifacts"][0]["seen"] == 0


def test_hash_artifact_matches_a_file_observable(admin: httpx.Client) -> None:
    content = b"sample bytes"
    case = _case(admin)
    upload = admin.post(
        f"/api/case/{case['id']}/artifact",
        data={"_json": '{"dataType": "file", "message": "sample"}'},
        files={"attachment": ("sample.bin", content, "application/octet-stream")},
    )
    assert upload.status_code == 201, upload.text
    md5 = hashlib.md5(content).hexdigest()
    alert = _create(admin, artifacts=[{"dataType": "hash", "data": md5.upper()}])

    found = admin.get(f"/api/alert/{alert['id']}?similarity=1").json()

    assert found["artifacts"][0]["data"] == md5
    assert found["artifacts"][0]["seen"] == 1
    assert found["similarCases"][0]["id"] == case["id"]


def test_search_and_stats_filter_by_status(admin: httpx.Client) -> None:
    first = _create(admin, sourceRef="a")
    _create(admin, sourceRef="b", severity=3, tags=["phishing"])
    admin.post(f"/api/alert/{first['id']}/markAsRead")

    found = admin.post(
        "/api/alert/_search", json={"query": {"status": "New"}, "range": "all"}
    )
    tagged = admin.post("/api/alert/_search", json={"query": {"tags": "phishing"}})
    stats = admin.post(
        "/api/alert/_stats",
        json={
            "stats": [
                {"_agg": "field", "_field": "status", "_select": [{"_agg": "count"}]}
            ]
        },
    )

    assert [a["sourceRef"] for a in found.json()] == ["b"]
    assert found.headers["X-Total"] == "1" and len(found.json()[0]["artifacts"]) == 2
    assert [a["sourceRef"] for a in tagged.json()] == ["b"]
    assert stats.json() == {"Ignored": {"count": 1}, "New": {"count": 1}}


# -- triage and updates ----------------------------------------------------------


def test_read_unread_follow_and_ignore_set_thehive_statuses(
    admin: httpx.Client,
) -> None:
    alert_id = _create(admin)["id"]

    read = admin.post(f"/api/alert/{alert_id}/markAsRead").json()
    unread = admin.post(f"/api/alert/{alert_id}/markAsUnread").json()
    unfollowed = admin.post(f"/api/alert/{alert_id}/unfollow").json()
    ignored = admin.post(f"/api/alert/{alert_id}/ignore").json()

    assert (read["status"], unread["status"]) == ("Ignored", "New")
    assert unfollowed["follow"] is False
    assert ignored["status"] == "Ignored"


def test_update_merges_artifacts_and_marks_followed_alert_updated(
    admin: httpx.Client,
) -> None:
    alert_id = _create(admin)["id"]
    admin.post(f"/api/alert/{alert_id}/markAsRead")

    response = admin.patch(
        f"/api/alert/{alert_id}",
        json={
            "severity": 3,
            "artifacts": [
                {"dataType": "domain", "data": "evil.example", "tags": ["dga"]},
                {"dataType": "ip", "data": "198.51.100.7"},
            ],
        },
    )

    assert response.status_code == 200, response.text
    alert = response.json()
    assert alert["status"] == "Updated" and alert["severity"] == 3
    assert [a["data"] for a in alert["artifacts"]] == [
        "203.0.113.9",
        "evil.example",
        "198.51.100.7",
    ]
    assert alert["artifacts"][1]["tags"] == ["c2", "dga"]
    assert alert["observableCount"] == 3


def test_update_refuses_read_only_attributes(admin: httpx.Client) -> None:
    alert_id = _create(admin)["id"]

    response = admin.patch(f"/api/alert/{alert_id}", json={"sourceRef": "other"})

    assert response.status_code == 400
    assert response.json()["errors"][0][0]["type"] == "UpdateReadOnlyAttributeError"


def test_bulk_update_reports_unknown_ids(admin: httpx.Client) -> None:
    alert_id = _create(admin)["id"]

    response = admin.patch(
        "/api/alert/_bulk", json={"ids": [alert_id, "missing"], "status": "Ignored"}
    )

    assert response.status_code == 207
    assert response.json()["success"][0]["status"] == "Ignored"
    assert response.json()["failure"][0]["object"] == {"id": "missing"}


def test_delete_is_soft_for_writers_and_hard_for_admins(server: LiveServer) -> None:
    admin = server.client()
    analyst = server.client(server.add_user("analyst", ["read", "write"]))
    alert_id = _create(admin)["id"]

    soft = analyst.delete(f"/api/alert/{alert_id}")
    status_after_soft = admin.get(f"/api/alert/{alert_id}").json()["status"]
    refused = analyst.delete(f"/api/alert/{alert_id}?force=1")
    hard = admin.delete(f"/api/alert/{alert_id}", params={"force": 1})

    assert soft.status_code == 204 and status_after_soft == "Ignored"
    assert refused.status_code == 403
    assert hard.status_code == 204
    assert admin.get(f"/api/alert/{alert_id}").status_code == 404


def test_every_alert_write_is_audited(server: LiveServer) -> None:
    admin = server.client()
    alert_id = _create(admin)["id"]
    admin.post(f"/api/alert/{alert_id}/markAsRead")
    admin.delete(f"/api/alert/{alert_id}?force=1")

    audit = tables.audit
    with server.platform.db.read() as conn:
        operations = (
            conn.execute(
                select(audit.c.operation)
                .where(audit.c.object_type == "alert", audit.c.object_id == alert_id)
                .order_by(audit.c.id)
            )
            .scalars()
            .all()
        )

    assert operations == ["Creation", "Update", "Delete"]


# -- into cases ------------------------------------------------------------------


def test_create_case_imports_artifacts_tagged_with_the_source(
    admin: httpx.Client,
) -> None:
    alert = _create(admin, severity=3, tags=["c2"])

    response = admin.post(f"/api/alert/{alert['id']}/createCase", json={})
    case = response.json()
    observables = admin.post(
        f"/api/case/{case['id']}/artifact/_search", json={"range": "all"}
    ).json()
    imported = admin.get(f"/api/alert/{alert['id']}").json()
    again = admin.post(f"/api/alert/{alert['id']}/createCase", json={})

    assert response.status_code == 201
    assert (case["title"], case["severity"], case["tags"]) == (
        alert["title"],
        3,
        ["c2"],
    )
    assert case["startDate"] == alert["date"]
    assert sorted(o["data"] for o in observables) == ["203.0.113.9", "evil.example"]
    assert all("src:siem" in o["tags"] for o in observables)
    assert imported["status"] == "Imported" and imported["case"] == case["id"]
    assert again.json()["id"] == case["id"]


def test_create_case_applies_the_chosen_template(admin: httpx.Client) -> None:
    template = admin.post(
        "/api/case/template",
        json={"name": "C2", "titlePrefix": "[C2]", "tasks": [{"title": "Block"}]},
    )
    assert template.status_code == 201, template.text
    alert = _create(admin)

    case = admin.post(
        f"/api/alert/{alert['id']}/createCase", json={"caseTemplate": "C2"}
    ).json()
    tasks = admin.post(f"/api/case/{case['id']}/task/_search", json={}).json()

    assert case["title"] == f"[C2] {alert['title']}"
    assert [t["title"] for t in tasks] == ["Block"]


def test_merge_into_case_dedups_and_appends_description(admin: httpx.Client) -> None:
    case = _case(admin)
    _observable(admin, case["id"], dataType="ip", data="203.0.113.9")
    alert = _create(admin)

    response = admin.post(f"/api/alert/{alert['id']}/merge/{case['id']}")
    merged = response.json()
    observables = admin.post(
        f"/api/case/{case['id']}/artifact/_search", json={"range": "all"}
    ).json()

    assert response.status_code == 201
    assert merged["description"] == (
        "Earlier incident\n  \n#### Merged with alert #ref-1 Beaconing to a known C2"
        "\n\nHost ws-1234 talks to evil.example every minute"
    )
    assert sorted(o["data"] for o in observables) == ["203.0.113.9", "evil.example"]


def test_many_alerts_merge_into_one_case_in_one_call(admin: httpx.Client) -> None:
    case = _case(admin)
    first = _create(admin, sourceRef="a")
    second = _create(
        admin, sourceRef="b", artifacts=[{"dataType": "ip", "data": "198.51.100.7"}]
    )

    response = admin.post(
        "/api/alert/merge/_bulk",
        json={"caseId": case["id"], "alertIds": [first["id"], second["id"]]},
    )
    observables = admin.post(
        f"/api/case/{case['id']}/artifact/_search", json={"range": "all"}
    ).json()
    statuses = {
        admin.get(f"/api/alert/{a['id']}").json()["status"] for a in (first, second)
    }

    assert response.status_code == 201
    assert response.json()["description"].count("#### Merged with alert") == 2
    assert len(observables) == 3
    assert statuses == {"Imported"}


def test_merge_without_case_opens_one_from_the_first_alert(admin: httpx.Client) -> None:
    first = _create(admin, sourceRef="a")
    second = _create(admin, sourceRef="b")

    response = admin.post(
        "/api/alert/merge/_bulk", json={"alertIds": [first["id"], second["id"]]}
    )

    assert response.status_code == 201
    assert response.json()["title"] == first["title"]
    assert (
        admin.get(f"/api/alert/{second['id']}").json()["case"] == response.json()["id"]
    )


def test_bulk_merge_writes_nothing_when_an_alert_is_missing(
    admin: httpx.Client,
) -> None:
    case = _case(admin)
    alert = _create(admin)

    response = admin.post(
        "/api/alert/merge/_bulk",
        json={"caseId": case["id"], "alertIds": [alert["id"], "missing"]},
    )

    assert response.status_code == 404
    assert "missing" in response.json()["message"]
    assert admin.get(f"/api/alert/{alert['id']}").json()["status"] == "New"


STATUS_QUERIES: list[Any] = [
    None,
    {},
    {"status": "New"},
    {"_field": "status", "_value": "Imported"},
    {"_in": {"_field": "status", "_values": ["New", "Updated"]}},
    {"_and": [{"status": "Ignored"}]},
    {"_or": [{"status": "New"}, {"status": "Imported"}]},
    {"_and": [{"status": "New"}, {"status": "Imported"}]},
    {"status": "new"},
    {"_and": [{"status": "New"}, {"source": "splunk"}]},
]


def _total(client: httpx.Client, query: Any) -> int:
    body = {} if query is None else {"query": query}
    response = client.post("/api/alert/_search", json=body)
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total"])


def test_list_totals_from_counters_match_a_real_count(
    server: LiveServer, admin: httpx.Client
) -> None:
    alerts = [_create(admin, sourceRef=f"count-{n}") for n in range(6)]
    admin.post(f"/api/alert/{alerts[0]['id']}/markAsRead")
    admin.post(f"/api/alert/{alerts[1]['id']}/createCase", json={})
    admin.post(f"/api/alert/{alerts[2]['id']}/ignore")
    assert admin.delete(f"/api/alert/{alerts[3]['id']}?force=1").status_code in (
        200,
        204,
    )
    admin.post("/api/alert/_bulk", json=[_alert_body(f"bulk-{n}") for n in range(3)])

    with server.platform.db.read() as conn:
        statuses = [row.status for row in conn.execute(select(tables.alert.c.status))]
    for query in STATUS_QUERIES:
        wanted = _expected(statuses, query)
        assert _total(admin, query) == wanted, query


def _expected(statuses: list[str], query: Any) -> int:
    # The statuses each query selects, written out by hand.
    selected = {
        0: {"New", "Updated", "Ignored", "Imported"},
        1: {"New", "Updated", "Ignored", "Imported"},
        2: {"New"},
        3: {"Imported"},
        4: {"New", "Updated"},
        5: {"Ignored"},
        6: {"New", "Imported"},
        7: set(),
        8: set(),
        9: {"New"},  # every alert of this test comes from splunk
    }[STATUS_QUERIES.index(query)]
    return sum(1 for status in statuses if status in selected)
