"""Webhooks: endpoints managed by admins, deliveries written with the
change they carry, POSTed from the queue in TheHive 3's shape, signed,
retried with back-off, and listed when they fail."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, select

from cerana.domain.dates import now_ms
from cerana.services import webhooks as webhook_service
from cerana.store import tables
from tests.api.conftest import LiveServer

SECRET = "s3cret-never-logged"


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records what it is sent and
    answers the given statuses in turn, then 200."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers = list(answers or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/TOKEN123"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.requests) >= count, timeout)
        return [orjson.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def hooks(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The server, with short delays."""
    monkeypatch.setattr(webhook_service, "RETRY_BASE_SECONDS", 0.5)
    monkeypatch.setattr(webhook_service, "TIMEOUT_SECONDS", 0.5)
    webhook_service.forget_cached_webhooks()
    yield server
    webhook_service.forget_cached_webhooks()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/never"
    sock.close()


def _webhook(client: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "soc", "url": url, "secret": SECRET, **fields}
    response = client.post("/api/webhook", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _alert(client: httpx.Client, source_ref: str = "r1") -> dict[str, Any]:
    body = {
        "type": "siem",
        "source": "elastalert",
        "sourceRef": source_ref,
        "title": "Impossible travel",
        "description": "Two logins 9000 km apart",
        "artifacts": [{"dataType": "ip", "data": "192.0.2.10"}],
    }
    response = client.post("/api/alert", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _deliveries(server: LiveServer) -> list[Any]:
    delivery = tables.webhook_delivery
    with server.platform.db.read() as conn:
        return list(conn.execute(select(delivery).order_by(delivery.c.id)).mappings())


def test_admin_manages_endpoints_without_seeing_the_secret(
    hooks: LiveServer, receiver: Receiver
) -> None:
    admin = hooks.client()
    analyst = hooks.client(hooks.add_user("analyst", ["read", "write"]))

    created = _webhook(admin, receiver.url, objectTypes=["alert"])
    listed = admin.get("/api/webhook").json()
    disabled = admin.patch(f"/api/webhook/{created['id']}", json={"enabled": False})
    forbidden = analyst.get("/api/webhook")
    bad_scheme = admin.post(
        "/api/webhook", json={"name": "x", "url": "file:///etc/passwd"}
    )

    assert created["hasSecret"] is True and "secret" not in created
    assert [w["name"] for w in listed] == ["soc"]
    assert disabled.json()["enabled"] is False
    assert forbidden.status_code == 403
    assert bad_scheme.status_code == 400 and "http" in bad_scheme.json()["message"]


def test_alert_creation_is_delivered_signed_in_thehive_shape(
    hooks: LiveServer, receiver: Receiver
) -> None:
    admin = hooks.client()
    _webhook(admin, receiver.url)

    alert = _alert(admin)
    [payload] = receiver.wait_for(1)

    headers, body = receiver.requests[0]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Cerana-Signature"] == f"sha256={expected}"
    assert payload["operation"] == "Creation" and payload["objectType"] == "alert"
    assert payload["objectId"] == alert["id"] and payload["rootId"] == alert["id"]
    assert payload["base"] is True and payload["requestId"]
    assert payload["details"]["title"] == "Impossible travel"
    assert payload["object"]["artifacts"][0]["data"] == "192.0.2.10"


def test_endpoints_receive_only_the_types_and_operations_they_asked_for(
    hooks: LiveServer, receiver: Receiver
) -> None:
    admin = hooks.client()
    _webhook(admin, receiver.url, objectTypes=["case"], operations=["Update"])

    _alert(admin)
    case = admin.post("/api/case", json={"title": "t", "description": "d"}).json()
    admin.patch(f"/api/case/{case['id']}", json={"severity": 3})
    payloads = receiver.wait_for(1)
    time.sleep(1.0)

    assert [(p["objectType"], p["operation"]) for p in payloads] == [("case", "Update")]
    assert payloads[0]["details"] == {"severity": 3}
    assert len(_deliveries(hooks)) == 1


def test_failed_attempt_is_retried_after_a_back_off(hooks: LiveServer) -> None:
    flaky = Receiver(answers=[500])
    try:
        _webhook(hooks.client(), flaky.url)

        _alert(hooks.client())
        first, second = flaky.wait_for(2)
        wait_until(lambda: _deliveries(hooks)[0]["status"] == "Delivered")
    finally:
        flaky.close()

    [delivery] = _deliveries(hooks)
    assert first == second
    assert delivery["attempts"] == 2 and delivery["last_status_code"] == 200


def test_unanswered_endpoint_fails_then_an_admin_sends_it_again(
    hooks: LiveServer,
    receiver: Receiver,
    silent_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_service, "MAX_ATTEMPTS", 2)
    admin = hooks.client()
    webhook = _webhook(admin, silent_url)
    _alert(admin)

    def failed() -> list[dict[str, Any]]:
        found = admin.get("/api/webhook/delivery", params={"status": "Failed"})
        return found.json()  # type: ignore[no-any-return]

    wait_until(lambda: len(failed()) == 1, timeout=30)
    [delivery] = failed()
    admin.patch(f"/api/webhook/{webhook['id']}", json={"url": receiver.url})
    retried = admin.post(f"/api/webhook/delivery/{delivery['id']}/retry").json()
    [payload] = receiver.wait_for(1)

    assert delivery["attempts"] == 2 and delivery["webhookName"] == "soc"
    assert "timed out" in delivery["lastError"]
    assert retried == {"retried": 1}
    assert payload["objectType"] == "alert"
    wait_until(lambda: _deliveries(hooks)[0]["status"] == "Delivered")


def test_a_refused_change_leaves_no_delivery(
    hooks: LiveServer, receiver: Receiver
) -> None:
    admin = hooks.client()
    _webhook(admin, receiver.url)

    refused = admin.post("/api/alert", json={"type": "x", "title": "no source"})
    _alert(admin)
    rows = _deliveries(hooks)

    assert refused.status_code == 400
    assert len(rows) == 1
    assert receiver.wait_for(1)[0]["operation"] == "Creation"


def test_sweep_delivers_what_a_lost_wake_up_left_pending(
    hooks: LiveServer, receiver: Receiver
) -> None:
    admin = hooks.client()
    case = admin.post("/api/case", json={"title": "t", "description": "d"}).json()
    webhook = _webhook(admin, receiver.url)
    with hooks.platform.db.write() as conn:
        audit_id = conn.execute(
            select(tables.audit.c.id).where(tables.audit.c.object_id == case["id"])
        ).scalar_one()
        conn.execute(
            insert(tables.webhook_delivery).values(
                webhook_id=webhook["id"],
                audit_id=audit_id,
                status="Pending",
                attempts=0,
                next_attempt_at=now_ms(),
                created_at=now_ms(),
            )
        )

    webhook_service.sweep(hooks.platform)

    [payload] = receiver.wait_for(1)
    assert payload["objectId"] == case["id"] and payload["object"]["title"] == "t"
    assert _deliveries(hooks)[0]["status"] == "Delivered"


def test_logs_name_the_host_but_never_the_secret_or_path(
    hooks: LiveServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_service, "MAX_ATTEMPTS", 1)
    failing = Receiver(answers=[503])
    caplog.set_level(logging.INFO, logger="cerana.services.webhooks")
    try:
        _webhook(hooks.client(), failing.url)
        _alert(hooks.client())
        failing.wait_for(1)
        wait_until(lambda: _deliveries(hooks)[0]["status"] == "Failed")
    finally:
        failing.close()

    assert "failed after 1 attempts: HTTP 503" in caplog.text
    assert "127.0.0.1" in caplog.text
    assert SECRET not in caplog.text and "TOKEN123" not in caplog.text
