"""Bulk alert ingestion: `POST /api/alert/_bulk` with a JSON array or NDJSON,
one result per item; good items kept, bad ones reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from cerana.services import webhooks
from cerana.store import tables
from tests.api.conftest import LiveServer


def _alert(number: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "ids",
        "source": "suricata",
        "sourceRef": f"evt-{number}",
        "title": f"Signature {number} fired",
        "description": "ET TROJAN beacon",
        "artifacts": [
            {"dataType": "ip", "data": f"198.51.100.{number % 250}"},
            {"dataType": "domain", "data": f"host{number}.example"},
        ],
    }
    body.update(fields)
    return body


def _ndjson(items: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(item) for item in items) + b"\n"


def test_array_of_good_alerts_are_all_created(admin: httpx.Client) -> None:
    response = admin.post("/api/alert/_bulk", json=[_alert(n) for n in range(50)])

    body = response.json()
    assert response.status_code == 201
    assert (body["created"], body["failed"]) == (50, 0)
    assert [item["index"] for item in body["items"]] == list(range(50))
    assert admin.get("/api/alert").headers["X-Total"] == "50"


BAD_ITEMS = [
    pytest.param(
        {"artifacts": [{"dataType": "colour", "data": "red"}]},
        "artifacts[0].dataType",
        id="wrong-datatype",
    ),
    pytest.param(
        {"artifacts": [{"dataType": "domain", "data": "not a domain"}]},
        "artifacts[0].data",
        id="invalid-value",
    ),
    pytest.param({"description": "d" * 1_000_001}, "description", id="oversized"),
    pytest.param(
        {"artifacts": [{"dataType": "file", "data": "x.bin;text/plain;not*base64"}]},
        "artifacts[0].data",
        id="malformed-base64",
    ),
]


@pytest.mark.parametrize(("fields", "named"), BAD_ITEMS)
def test_bad_item_is_reported_and_good_ones_kept(
    admin: httpx.Client, fields: dict[str, Any], named: str
) -> None:
    items = [_alert(0), _alert(1, **fields), _alert(2)]

    response = admin.post("/api/alert/_bulk", json=items)

    body = response.json()
    assert response.status_code == 207
    assert [item["status"] for item in body["items"]] == [201, 400, 201]
    error = body["items"][1]["error"]
    assert named in [problem["name"] for problem in error["errors"][0]]
    assert admin.get("/api/alert").headers["X-Total"] == "2"


def test_ndjson_feed_reports_unreadable_lines(admin: httpx.Client) -> None:
    feed = _ndjson([_alert(0)]) + b"{not json\n" + _ndjson([_alert(2), ["x"]])

    response = admin.post(
        "/api/alert/_bulk",
        content=feed,
        headers={"Content-Type": "application/x-ndjson"},
    )

    items = response.json()["items"]
    assert response.status_code == 207
    assert [item["status"] for item in items] == [201, 400, 201, 400]
    assert "line 2 is not valid JSON" in items[1]["error"]["message"]
    assert items[3]["error"]["errors"][0][0]["name"] == "alert"


def test_repeats_are_refused_unless_upsert(admin: httpx.Client) -> None:
    admin.post("/api/alert/_bulk", json=[_alert(1)])
    items = [_alert(1), _alert(2), _alert(2)]

    refused = admin.post("/api/alert/_bulk", json=items).json()
    counted = admin.post("/api/alert/_bulk?upsert=true", json=items).json()
    alert = admin.post(
        "/api/alert/_search", json={"query": {"sourceRef": "evt-2"}}
    ).json()

    assert [i["status"] for i in refused["items"]] == [400, 201, 400]
    assert refused["items"][0]["error"]["type"] == "ConflictError"
    assert [i["status"] for i in counted["items"]] == [200, 200, 200]
    assert alert[0]["occurrences"] == 3


def test_all_bad_items_answer_400(admin: httpx.Client) -> None:
    response = admin.post("/api/alert/_bulk", json=[{"title": "no type"}, 42])

    assert response.status_code == 400
    assert response.json()["failed"] == 2


def test_body_must_be_an_array_or_ndjson(admin: httpx.Client) -> None:
    response = admin.post("/api/alert/_bulk", json=_alert(1))

    assert response.status_code == 400
    assert "array" in response.json()["message"]


def test_bulk_needs_the_alert_role(server: LiveServer) -> None:
    reader = server.client(server.add_user("reader", ["read"]))

    response = reader.post("/api/alert/_bulk", json=[_alert(1)])

    assert response.status_code == 403


def test_each_created_alert_is_audited_with_its_artifacts(server: LiveServer) -> None:
    admin = server.client()

    admin.post("/api/alert/_bulk", json=[_alert(n) for n in range(20)])

    with server.platform.db.read() as conn:
        audits = conn.execute(
            select(func.count())
            .select_from(tables.audit)
            .where(tables.audit.c.object_type == "alert")
        ).scalar_one()
        artifacts = conn.execute(
            select(func.count()).select_from(tables.alert_artifact)
        ).scalar_one()
    assert (audits, artifacts) == (20, 40)


def test_bulk_audit_records_read_as_those_of_single_creations(
    server: LiveServer,
) -> None:
    admin = server.client()

    admin.post("/api/alert/_bulk", json=[_alert(n) for n in range(3)])

    audit = tables.audit
    with server.platform.db.read() as conn:
        rows = conn.execute(
            select(audit.c.operation, audit.c.base, audit.c.details)
            .where(audit.c.object_type == "alert")
            .order_by(audit.c.id)
        ).all()
    assert [(operation, base) for operation, base, _ in rows] == [
        ("Creation", True),
        ("Creation", False),
        ("Creation", False),
    ]
    assert rows[2][2]["title"] == "Signature 2 fired" and rows[2][2]["tags"] == []


@pytest.fixture
def no_cached_webhooks() -> Iterator[None]:
    webhooks.forget_cached_webhooks()
    yield
    webhooks.forget_cached_webhooks()


@pytest.mark.usefixtures("no_cached_webhooks")
def test_bulk_queues_one_webhook_delivery_per_created_alert(
    server: LiveServer,
) -> None:
    admin = server.client()
    admin.post(
        "/api/webhook",
        json={
            "name": "soc",
            "url": "http://127.0.0.1:9/hook",
            "objectTypes": ["alert"],
        },
    )

    admin.post("/api/alert/_bulk", json=[_alert(n) for n in range(5)])

    delivery, audit = tables.webhook_delivery, tables.audit
    with server.platform.db.read() as conn:
        delivered = conn.execute(
            select(audit.c.object_id)
            .join(delivery, delivery.c.audit_id == audit.c.id)
            .order_by(audit.c.id)
        ).scalars()
        ids = [item["id"] for item in _created_ids(admin)]
    assert sorted(delivered) == sorted(ids)


def _created_ids(admin: httpx.Client) -> list[dict[str, Any]]:
    found = admin.post("/api/alert/_search?range=all", json={"query": {}})
    return found.json()  # type: ignore[no-any-return]


def test_a_large_request_is_ingested_whole(admin: httpx.Client) -> None:
    items = [_alert(n) for n in range(2000)]

    response = admin.post("/api/alert/_bulk", json=items)

    assert response.status_code == 201
    assert response.json()["created"] == 2000
    assert admin.get("/api/alert").headers["X-Total"] == "2000"
