"""Custom field and metric definitions, and case values checked against them (#5)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer
from tests.template_fixtures import define, define_all

with warnings.catch_warnings():
    # thehive4py 1.x warns on import that it is unmaintained; it is the
    # client TheHive 3 users have, which is why we test against it.
    warnings.filterwarnings("ignore", "thehive4py v1.x", DeprecationWarning)
    from thehive4py.api import TheHiveApi
    from thehive4py.exceptions import CustomFieldException
    from thehive4py.models import Case, CustomField, CustomFieldHelper

IMPACT = {
    "reference": "businessImpact",
    "name": "Business impact",
    "description": "Impact on the business",
    "type": "string",
    "options": ["Low", "Medium", "High"],
    "mandatory": True,
}


def _case(admin: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"title": "Phishing", "description": "Mails reported", **fields}
    return admin.post("/api/case", json=body)


def _case_count(admin: httpx.Client) -> str:
    return admin.get("/api/case").headers["X-Total"]


def test_definitions_are_listed_as_thehive_lists_them(admin: httpx.Client) -> None:
    item_id = define(admin, "custom_fields", IMPACT)

    listed = admin.get("/api/list/custom_fields").json()
    found = admin.post(
        "/api/list/custom_fields/_exists",
        json={"key": "reference", "value": "businessImpact"},
    ).json()

    assert listed == {item_id: IMPACT}
    assert found == {"found": True}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"reference": "1impact"}, "reference '1impact' is invalid"),
        ({"reference": "business impact"}, "reference 'business impact'"),
        ({"type": "colour"}, "type 'colour'"),
        ({"type": "number", "options": ["Low"]}, "option 'Low' is not a number"),
        ({"type": "integer", "options": [1.5]}, "option 1.5 is not a whole number"),
        ({"mandatory": "yes"}, "mandatory must be true or false"),
        ({"name": ""}, "needs a name"),
        ({"colour": "red"}, "unknown key 'colour'"),
    ],
    ids=[
        "reference-digit-first",
        "reference-with-space",
        "unknown-type",
        "option-of-another-type",
        "fraction-option-of-integer",
        "mandatory-not-boolean",
        "empty-name",
        "unknown-key",
    ],
)
def test_bad_field_definition_is_refused_naming_the_problem(
    admin: httpx.Client, change: dict[str, Any], named: str
) -> None:
    response = admin.post(
        "/api/list/custom_fields", json={"value": {**IMPACT, **change}}
    )

    assert response.status_code == 400
    assert named in response.json()["message"]
    assert admin.get("/api/list/custom_fields").json() == {}


def test_second_field_with_a_taken_reference_is_refused(admin: httpx.Client) -> None:
    define(admin, "custom_fields", IMPACT)

    response = admin.post(
        "/api/list/custom_fields",
        json={"value": {**IMPACT, "name": "Impact again", "options": []}},
    )

    assert response.status_code == 400
    assert response.json()["type"] == "ConflictError"
    assert "reference businessImpact exists already" in response.json()["message"]


def test_bad_metric_definitions_are_refused(admin: httpx.Client) -> None:
    define(admin, "case_metrics", {"name": "ttc", "title": "Time to contain"})

    bad_name = admin.post(
        "/api/list/case_metrics", json={"value": {"name": "time to", "title": "T"}}
    )
    taken = admin.post(
        "/api/list/case_metrics", json={"value": {"name": "ttc", "title": "Other"}}
    )

    assert bad_name.status_code == 400 and "'time to'" in bad_name.json()["message"]
    assert taken.status_code == 400 and "name ttc exists" in taken.json()["message"]


def test_case_values_are_stored_searched_and_counted(admin: httpx.Client) -> None:
    define_all(admin)
    for impact in ("High", "High", "Low"):
        created = _case(
            admin, customFields={"businessImpact": {"string": impact, "order": 1}}
        )
        assert created.status_code == 201, created.text

    found = admin.post(
        "/api/case/_search",
        json={"query": {"customFields.businessImpact.string": "High"}},
    )
    stats = admin.post(
        "/api/case/_stats",
        json={
            "stats": [
                {
                    "_agg": "field",
                    "_field": "customFields.businessImpact.string",
                    "_select": [{"_agg": "count"}],
                }
            ]
        },
    ).json()

    assert found.headers["X-Total"] == "2"
    assert found.json()[0]["customFields"]["businessImpact"] == {
        "string": "High",
        "order": 1,
    }
    assert stats == {"High": {"count": 2}, "Low": {"count": 1}}


@pytest.mark.parametrize(
    ("custom_fields", "named"),
    [
        ({"impact": {"string": "Low"}}, "Unknown custom field impact"),
        ({"businessImpact": {"number": 3}}, "is a string field, not number"),
        ({"businessImpact": {"string": "Severe"}}, "'Severe' is not one of"),
        ({"reportedByUser": {"string": "yes"}}, "is a boolean field, not string"),
        ({"affectedUsers": {"number": "many"}}, "affectedUsers.number"),
        ({"businessImpact": {"colour": "red"}}, "unknown type 'colour'"),
    ],
    ids=[
        "unknown-field",
        "number-for-string",
        "not-an-option",
        "string-for-boolean",
        "text-for-number",
        "unknown-type-key",
    ],
)
def test_bad_case_value_gets_a_400_naming_it_and_no_case(
    admin: httpx.Client, custom_fields: dict[str, Any], named: str
) -> None:
    define_all(admin)

    response = _case(admin, customFields=custom_fields)

    assert response.status_code == 400
    assert named in response.json()["message"]
    assert _case_count(admin) == "0"


def test_numeric_field_takes_thehive3_and_thehive4_keys(admin: httpx.Client) -> None:
    define(
        admin,
        "custom_fields",
        {"reference": "hosts", "name": "Hosts", "type": "integer", "options": []},
    )
    define(
        admin,
        "custom_fields",
        {"reference": "loss", "name": "Loss", "type": "number", "options": []},
    )

    keys = _case(admin, customFields={"hosts": {"number": 3}, "loss": {"float": 2.5}})
    fraction = _case(admin, customFields={"hosts": {"number": 2.5}})

    assert keys.status_code == 201, keys.text
    assert fraction.status_code == 400
    assert "custom field hosts: takes whole numbers" in fraction.json()["message"]


def test_unknown_metric_gets_a_400_naming_it(admin: httpx.Client) -> None:
    define_all(admin)

    response = _case(admin, metrics={"timeToContain": 4, "dwellTime": 2})

    assert response.status_code == 400
    assert "Unknown metric dwellTime" in response.json()["message"]
    assert _case_count(admin) == "0"


def test_update_with_a_wrong_type_is_refused_and_changes_nothing(
    admin: httpx.Client,
) -> None:
    define_all(admin)
    case = _case(admin, customFields={"affectedUsers": {"number": 3}}).json()

    response = admin.patch(
        f"/api/case/{case['id']}",
        json={"customFields": {"affectedUsers": {"string": "three"}}},
    )
    stored = admin.get(f"/api/case/{case['id']}").json()

    assert response.status_code == 400
    assert "is a number field, not string" in response.json()["message"]
    assert stored["customFields"] == {"affectedUsers": {"number": 3}}


def _close(admin: httpx.Client, case_id: str) -> httpx.Response:
    return admin.patch(
        f"/api/case/{case_id}",
        json={
            "status": "Resolved",
            "resolutionStatus": "TruePositive",
            "impactStatus": "NoImpact",
            "summary": "contained",
        },
    )


def test_case_cannot_close_while_a_mandatory_field_is_empty(
    admin: httpx.Client,
) -> None:
    define_all(admin)
    case = _case(admin, customFields={"businessImpact": {"string": None}}).json()

    refused = _close(admin, case["id"])
    admin.patch(
        f"/api/case/{case['id']}",
        json={"customFields": {"businessImpact": {"string": "Medium"}}},
    )
    closed = _close(admin, case["id"])

    assert refused.status_code == 400
    body = refused.json()
    assert body["errors"][0][0]["name"] == "customFields.businessImpact"
    assert "Mandatory custom field businessImpact" in body["message"]
    assert closed.status_code == 200 and closed.json()["status"] == "Resolved"


def test_metrics_are_required_to_close_only_when_configured(
    server: LiveServer, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_all(admin)
    impact = {"businessImpact": {"string": "Low"}}
    first = _case(admin, customFields=impact, metrics={"timeToContain": None}).json()
    second = _case(admin, customFields=impact, metrics={"timeToContain": None}).json()

    closed_by_default = _close(admin, first["id"])
    monkeypatch.setattr(
        server.platform,
        "settings",
        dataclasses.replace(server.platform.settings, metrics_required_to_close=True),
    )
    refused = _close(admin, second["id"])

    assert closed_by_default.status_code == 200
    assert refused.status_code == 400
    assert "Metric timeToContain must be set" in refused.json()["message"]


def test_merge_closes_cases_whose_mandatory_fields_are_empty(
    admin: httpx.Client,
) -> None:
    define_all(admin)
    first, second = (_case(admin).json() for _ in range(2))

    merged = admin.post(f"/api/case/{first['id']}/_merge/{second['id']}")
    source = admin.get(f"/api/case/{first['id']}").json()

    assert merged.status_code == 200, merged.text
    assert source["status"] == "Resolved"
    assert source["resolutionStatus"] == "Duplicated"


def test_thehive4py_defines_a_field_and_fills_it_with_the_helper(
    server: LiveServer,
) -> None:
    api = TheHiveApi(server.url, server.admin_key)
    field = CustomField(
        name="businessUnit",
        description="Business unit concerned",
        type="string",
        options=["HR", "IT"],
        mandatory=False,
    )

    created = api.create_custom_field(field)
    with pytest.raises(CustomFieldException, match="already exists"):
        api.create_custom_field(field)
    values = CustomFieldHelper().add_string("businessUnit", "HR").build()
    case = api.create_case(Case(title="Phishing", description="d", customFields=values))

    assert created.status_code == 200
    assert case.status_code == 201, case.text
    assert case.json()["customFields"] == {"businessUnit": {"order": 0, "string": "HR"}}
