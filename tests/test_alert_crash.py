"""A real ``cerana serve`` killed with SIGKILL during a sustained alert
ingest keeps every alert whose creation it acknowledged (#4)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cerana.config import Settings
from cerana.platform import Platform
from cerana.services import users
from cerana.services.context import system_actor
from cerana.store import tables
from cerana.store.db import Database
from tests.conftest import BACKENDS, fresh_database

CLIENTS = 6
ADMIN_PASSWORD = "crash-test-admin-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path / "data" / "cerana.db", "crash") as url:
        yield url


def _admin_key(url: str, data_dir: Path) -> str:
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key="crash-test-secret",
        admin_password=ADMIN_PASSWORD,
    )
    platform = Platform.open(settings)
    try:
        platform.prepare()
        with platform.db.write() as conn:
            return users.renew_key(conn, system_actor(settings.organisation), "admin")
    finally:
        platform.close()


def _serve(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERANA_")}
    env.update(
        CERANA_DATA_DIR=str(data_dir),
        CERANA_DATABASE_URL=url,
        CERANA_SECRET_KEY="crash-test-secret",
        CERANA_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    command = [sys.executable, "-m", "cerana.cli", "--quiet", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = (data_dir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited at start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def _ingest(
    base_url: str, key: str, client: int, acknowledged: list[str], stop: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
        number = 0
        while not stop.is_set():
            number += 1
            body = {
                "type": "crash",
                "source": f"client-{client}",
                "sourceRef": f"event-{number}",
                "title": f"Event {number}",
                "description": "sustained ingest",
                "artifacts": [
                    {
                        "dataType": "ip",
                        "data": f"10.{client}.{number // 250}.{number % 250}",
                    },
                    {"dataType": "domain", "data": f"c{client}-{number}.example"},
                    {"dataType": "other", "data": f"event {number}"},
                ],
            }
            try:
                response = http.post("/api/alert", json=body)
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 201:
                acknowledged.append(response.json()["id"])


@pytest.mark.slow
def test_acknowledged_alerts_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    key = _admin_key(database_url, data_dir)
    port = _free_port()
    server = _serve(database_url, data_dir, port)
    acknowledged: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_ingest,
            args=(f"http://127.0.0.1:{port}", key, n, acknowledged, stop),
        )
        for n in range(CLIENTS)
    ]

    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    restarted = _serve(database_url, data_dir, _free_port())
    try:
        db = Database(database_url)
        with db.read() as conn:
            stored = set(conn.execute(select(tables.alert.c.id)).scalars())
            per_alert = dict(
                conn.execute(
                    select(tables.alert_artifact.c.alert_id, func.count()).group_by(
                        tables.alert_artifact.c.alert_id
                    )
                ).all()
            )
        db.dispose()
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)

    assert len(acknowledged) >= 150
    assert set(acknowledged) <= stored
    assert all(per_alert.get(alert_id) == 3 for alert_id in stored)
