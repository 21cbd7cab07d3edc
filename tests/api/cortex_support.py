"""What the Cortex API tests share: a Cerana server with the test analyzers
and remote instances, and small fake Cortex servers on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from cerana.analysis.jobs import sweep  # noqa: F401 (registers the work)
from tests.api.conftest import LiveServer, settings_for, start_server

ECHO_KEY = "echo-secret-key-0123456789"


class FakeCortex:
    """A Cortex 3 look-alike: status, analyzers, run, and job reports.

    Jobs end at their second report request, as a slow Cortex would.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs: list[dict[str, Any]] = []
        self.polls: dict[str, int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802
                fake.answer(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake.answer(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?")[0]
        if handler.headers.get("Authorization") != f"Bearer key-{self.name}":
            return self._send(
                handler, 401, {"type": "AuthenticationError", "message": "bad key"}
            )
        analyzer = {
            "id": "a1b2c3",
            "name": "Remote_Lookup",
            "version": "2.0",
            "description": "remote",
            "dataTypeList": ["ip", "domain"],
        }
        if path == "/api/status":
            return self._send(handler, 200, {"versions": {"Cortex": "3.1.8-1"}})
        if path.startswith("/api/analyzer/type/") or path == "/api/analyzer":
            return self._send(handler, 200, [analyzer])
        if path == "/api/analyzer/a1b2c3/run" and method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            self.runs.append(json.loads(handler.rfile.read(length)))
            return self._send(
                handler,
                200,
                {"id": f"remote-job-{len(self.runs)}", "status": "Waiting"},
            )
        if path.startswith("/api/job/") and path.endswith("/report"):
            job_id = path.split("/")[3]
            self.polls[job_id] = self.polls.get(job_id, 0) + 1
            if self.polls[job_id] < 2:
                return self._send(
                    handler,
                    200,
                    {"id": job_id, "status": "InProgress", "report": "Running"},
                )
            report = {
                "success": True,
                "full": {"remote": True},
                "artifacts": [],
                "summary": {
                    "taxonomies": [
                        {
                            "level": "safe",
                            "namespace": "Remote",
                            "predicate": "Lookup",
                            "value": self.name,
                        }
                    ]
                },
            }
            return self._send(
                handler, 200, {"id": job_id, "status": "Success", "report": report}
            )
        return self._send(handler, 404, {"type": "NotFoundError", "message": path})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def wait_for(
    check: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_job(
    client: httpx.Client, job_id: str, timeout: float = 20.0
) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job = client.get(f"/cortex/api/job/{job_id}/report").json()
        return job if job["status"] not in ("Waiting", "InProgress") else None

    found: dict[str, Any] = wait_for(ended, timeout, f"job {job_id}")
    return found


_SERVERS: dict[str, tuple[LiveServer, FakeCortex]] = {}


def cortex_server_for(
    backend: str,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    analyzers_dir: Path,
) -> tuple[LiveServer, FakeCortex]:
    """One Cerana server per backend with the test analyzers, a live remote
    instance ``remote-a`` and a dead one ``remote-b``."""
    if backend not in _SERVERS:
        fake = FakeCortex("remote-a")
        base = settings_for(
            database_urls[backend], tmp_path_factory.mktemp(f"cortex-{backend}")
        )
        settings = dataclasses.replace(
            base,
            analyzer_paths=str(analyzers_dir),
            analyzer_key="a passphrase for the analyzer secrets",
            analyzers={
                "Echo": {"key": ECHO_KEY, "url": "http://echo.example"},
                "EchoLimited": {"rate": 2, "rate_unit": "Second"},
                "Sleepy": {"job_timeout": 0.04},
                "Forever": {"job_timeout": 0.03},
                "global": {"job_timeout": 0.5},
            },
            cortex={
                "remote-a": {"url": fake.url, "key": "key-remote-a"},
                "remote-b": {"url": closed_port_url(), "key": "key-remote-b"},
            },
        )
        _SERVERS[backend] = (start_server(settings), fake)
    live, fake = _SERVERS[backend]
    live.reset()
    return live, fake


def stop_cortex_servers() -> None:
    for live, fake in _SERVERS.values():
        live.server.should_exit = True
        live.thread.join(timeout=5)
        live.platform.close()
        fake.stop()
    _SERVERS.clear()


@pytest.fixture(scope="session")
def analyzers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.analysis.analyzer_programs import write_analyzers

    return write_analyzers(tmp_path_factory.mktemp("analyzers"))


@pytest.fixture(params=["sqlite", "postgresql"])
def cortex(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    analyzers_dir: Path,
) -> Iterator[LiveServer]:
    live, _ = cortex_server_for(
        request.param, database_urls, tmp_path_factory, analyzers_dir
    )
    yield live
    live.close_clients()


@pytest.fixture
def fake_remote(cortex: LiveServer) -> FakeCortex:
    for live, fake in _SERVERS.values():
        if live is cortex:
            return fake
    raise AssertionError("no fake remote for this server")


@pytest.fixture(scope="session", autouse=True)
def stop_cortex(database_urls: dict[str, str]) -> Iterator[None]:
    yield
    stop_cortex_servers()
