"""A run request is authenticated before its body counts, whatever the body
(the route reads small JSON bodies first, to authenticate and submit in one
trip through the thread pool, #6)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import LiveServer
from tests.api.cortex_support import cortex, stop_cortex  # noqa: F401 (fixtures)

RUN = "/cortex/api/analyzer/NoOp_1_0/run"
BODIES: dict[str, dict[str, Any]] = {
    "valid-json": {"json": {"dataType": "other", "data": "x"}},
    "malformed-json": {
        "content": b"{not json",
        "headers": {"Content-Type": "application/json"},
    },
    "multipart": {"files": {"data": ("a.txt", b"abc")}, "data": {"_json": "{}"}},
}


@pytest.mark.parametrize("body", BODIES, ids=str)
def test_a_run_without_a_key_is_refused_whatever_its_body(
    cortex: LiveServer,  # noqa: F811
    body: str,
) -> None:
    client = cortex.client(key="")

    response = client.post(RUN, **BODIES[body])

    assert response.status_code == 401
    assert response.json()["type"] == "AuthenticationError"


@pytest.mark.parametrize("body", ["valid-json", "malformed-json"], ids=str)
def test_a_read_only_user_cannot_run_an_analyzer(
    cortex: LiveServer,  # noqa: F811
    body: str,
) -> None:
    login = f"run-reader-{body}"
    client = cortex.client(key=cortex.add_user(login, ["read"]))

    response = client.post(RUN, **BODIES[body])

    assert response.status_code == 403
    assert "write" in response.json()["message"]


def test_a_malformed_body_from_a_user_is_a_bad_request(
    cortex: LiveServer,  # noqa: F811
) -> None:
    client = cortex.client()

    response = client.post(RUN, **BODIES["malformed-json"])

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
