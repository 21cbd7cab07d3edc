"""Sign-in, sessions with CSRF, API keys, Basic auth and roles."""

from __future__ import annotations

import base64

import httpx

from tests.api.conftest import ADMIN_PASSWORD, LiveServer


def test_login_sets_a_session_that_authenticates_later_calls(
    server: LiveServer,
) -> None:
    client = server.client("")

    response = client.post(
        "/api/login", json={"user": "admin", "password": ADMIN_PASSWORD}
    )
    current = client.get("/api/user/current")

    assert response.status_code == 200
    assert current.status_code == 200
    assert current.json()["login"] == "admin"


def test_wrong_password_is_refused_with_thehive_error_shape(server: LiveServer) -> None:
    client = server.client("")

    response = client.post("/api/login", json={"user": "admin", "password": "nope"})

    assert response.status_code == 401
    assert response.json()["type"] == "AuthenticationError"


def test_session_write_without_csrf_header_is_refused(server: LiveServer) -> None:
    client = server.client("")
    client.post("/api/login", json={"user": "admin", "password": ADMIN_PASSWORD})

    refused = client.post("/api/case", json={"title": "t", "description": "d"})
    token = client.cookies["THE-HIVE-XSRF-TOKEN"]
    accepted = client.post(
        "/api/case",
        json={"title": "t", "description": "d"},
        headers={"X-THE-HIVE-XSRF-TOKEN": token},
    )

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["message"]
    assert accepted.status_code == 201


def test_basic_auth_and_bearer_key_both_work(server: LiveServer) -> None:
    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()

    with_basic = httpx.get(
        f"{server.url}/api/user/current", headers={"Authorization": f"Basic {basic}"}
    )
    with_key = server.client().get("/api/user/current")

    assert with_basic.json()["login"] == "admin"
    assert with_key.json()["login"] == "admin"


def test_every_route_but_login_status_and_health_needs_authentication(
    server: LiveServer,
) -> None:
    anonymous = server.client("")

    assert anonymous.get("/api/status").status_code == 200
    assert anonymous.get("/api/health").text == "Ok"
    assert anonymous.get("/api/case").status_code == 401
    assert anonymous.post("/api/case/_search", json={}).status_code == 401
    assert anonymous.get("/api/list/list_artifactDataType").status_code == 401


def test_read_only_user_cannot_write(server: LiveServer) -> None:
    reader = server.client(server.add_user("reader", ["read"]))

    response = reader.post("/api/case", json={"title": "t", "description": "d"})

    assert response.status_code == 403
    assert response.json() == {
        "type": "AuthorizationError",
        "message": "this action needs the write role",
    }


def test_non_admin_cannot_give_themselves_roles(server: LiveServer) -> None:
    analyst = server.client(server.add_user("analyst", ["read", "write"]))

    response = analyst.patch(
        "/api/user/analyst", json={"roles": ["read", "write", "admin"]}
    )
    me = analyst.get("/api/user/current").json()

    assert response.status_code == 403
    assert me["roles"] == ["read", "write"]


def test_locked_user_is_refused(server: LiveServer, admin: httpx.Client) -> None:
    key = server.add_user("leaver", ["read"])
    admin.patch("/api/user/leaver", json={"status": "Locked"})

    response = server.client(key).get("/api/case")

    assert response.status_code == 403
    assert response.json()["message"] == "Your account is locked"


def test_renewed_key_is_shown_once_and_replaces_the_old_one(
    server: LiveServer, admin: httpx.Client
) -> None:
    old = server.add_user("bot", ["read", "alert"])

    new = admin.post("/api/user/bot/key/renew").text
    shown = admin.get("/api/user/bot/key")

    assert server.client(old).get("/api/user/current").status_code == 401
    assert server.client(new).get("/api/user/current").json()["login"] == "bot"
    assert shown.status_code == 400
    assert admin.get("/api/user/bot").json()["hasKey"] is True


def test_user_json_never_contains_secrets(
    server: LiveServer, admin: httpx.Client
) -> None:
    server.add_user("someone", ["read"])

    body = admin.get("/api/user/someone").text

    assert "password" not in body.replace("hasPassword", "")
    assert "key_hash" not in body
    assert "$argon2" not in body
