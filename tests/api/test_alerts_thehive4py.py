"""Alert flows of the official Python client, thehive4py 1.8.2: create with
artifacts, find, promote to a case, merge into a case, triage, delete."""

from __future__ import annotations

import io
import warnings
from typing import Any

import pytest

from tests.api.conftest import LiveServer

# thehive4py 1.x announces on import that it is no longer maintained
# (TheHive-Project/TheHive4py, release 1.8.2); the notice is not ours to fix.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from thehive4py.api import TheHiveApi
    from thehive4py.models import Alert, AlertArtifact, Case
    from thehive4py.query import And, Eq

SAMPLE = b"%PDF-1.4 invoice that is not an invoice\n"


@pytest.fixture
def api(server: LiveServer) -> TheHiveApi:
    return TheHiveApi(server.url, server.admin_key)


def _alert(source_ref: str, **fields: Any) -> Alert:
    artifacts = [
        AlertArtifact(dataType="ip", data="203.0.113.77"),
        AlertArtifact(dataType="mail", data="billing@evil.example", tags=["sender"]),
        AlertArtifact(dataType="file", data=(io.BytesIO(SAMPLE), "invoice.pdf")),
    ]
    return Alert(
        title="Invoice phishing",
        tlp=3,
        tags=["phishing"],
        description="A user reported a fake invoice",
        type="external",
        source="mail-gateway",
        sourceRef=source_ref,
        artifacts=artifacts,
        **fields,
    )


def _create(api: TheHiveApi, source_ref: str = "msg-1") -> dict[str, Any]:
    response = api.create_alert(_alert(source_ref))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_alert_with_artifacts_is_created(api: TheHiveApi) -> None:
    alert = _create(api)

    by_type = {a["dataType"]: a for a in alert["artifacts"]}
    assert alert["tlp"] == 3 and alert["status"] == "New"
    assert by_type["mail"]["tags"] == ["sender"]
    assert by_type["file"]["attachment"]["name"] == "invoice.pdf"
    assert by_type["file"]["attachment"]["contentType"] == "application/pdf"


def test_duplicate_alert_is_refused_as_by_thehive(api: TheHiveApi) -> None:
    _create(api)

    response = api.create_alert(_alert("msg-1"))

    assert response.status_code == 400
    assert response.json()["type"] == "ConflictError"


def test_alerts_are_found_with_a_query(api: TheHiveApi) -> None:
    _create(api, "msg-1")
    _create(api, "msg-2")

    response = api.find_alerts(
        query=And(Eq("source", "mail-gateway"), Eq("sourceRef", "msg-2")),
        range="all",
        sort=[],
    )

    assert response.status_code == 200
    assert [a["sourceRef"] for a in response.json()] == ["msg-2"]


def test_alert_is_promoted_to_a_case_with_its_observables(api: TheHiveApi) -> None:
    alert = _create(api)

    response = api.promote_alert_to_case(alert["id"])
    case = response.json()
    observables = api.get_case_observables(case["id"]).json()
    promoted = api.get_alert(alert["id"]).json()

    assert response.status_code == 201
    assert case["title"] == "Invoice phishing" and case["tlp"] == 3
    assert sorted(o["dataType"] for o in observables) == ["file", "ip", "mail"]
    assert promoted["status"] == "Imported" and promoted["case"] == case["id"]


def test_alert_is_merged_into_an_existing_case(api: TheHiveApi) -> None:
    case = api.create_case(Case(title="Campaign", description="Ongoing", tags=["x"]))
    alert = _create(api)

    response = api.merge_alert_into_case(alert["id"], case.json()["id"])
    merged = response.json()

    assert response.status_code == 201
    assert "#### Merged with alert #msg-1 Invoice phishing" in merged["description"]
    assert len(api.get_case_observables(merged["id"]).json()) == 3


def test_update_read_similarity_and_delete(api: TheHiveApi) -> None:
    alert = _create(api)
    changed = Alert(json={**alert, "severity": 3})

    updated = api.update_alert(alert["id"], changed, fields=["severity", "artifacts"])
    read = api.mark_alert_as_read(alert["id"])
    similar = api.get_alert(alert["id"], similar_cases=True)
    deleted = api.delete_alert(alert["id"])

    assert updated.status_code == 200, updated.text
    assert updated.json()["severity"] == 3 and updated.json()["observableCount"] == 3
    assert read.json()["status"] == "Ignored"
    assert similar.json()["similarCases"] == []
    assert deleted.status_code == 204
    assert api.get_alert(alert["id"]).status_code == 404
