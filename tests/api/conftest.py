"""A real Cerana server on 127.0.0.1 per backend, shared by the API tests.

The server runs in a thread of the test process (uvicorn, real sockets).
After every test its database is emptied and seeded again, so each test
starts from a fresh instance with one administrator.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from cerana.app import create_app
from cerana.config import Settings
from cerana.platform import Platform
from cerana.services import users
from cerana.services.context import system_actor
from cerana.store.tables import metadata
from tests.conftest import BACKENDS

ADMIN_PASSWORD = "admin-password-1"


@dataclass
class LiveServer:
    """A running server, its platform and the administrator's API key."""

    url: str
    platform: Platform
    thread: threading.Thread
    server: uvicorn.Server
    admin_key: str = ""
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: str | None = None) -> httpx.Client:
        """An HTTP client authenticated with ``key`` (default: the admin's)."""
        token = self.admin_key if key is None else key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client

    def add_user(
        self, login: str, roles: list[str], password: str = "password-123"
    ) -> str:
        """Creates a user and returns a fresh API key for it."""
        actor = system_actor(self.platform.settings.organisation)
        with self.platform.db.write() as conn:
            users.create_user(
                conn,
                actor,
                {
                    "login": login,
                    "name": login.title(),
                    "roles": roles,
                    "password": password,
                },
            )
            return users.renew_key(conn, actor, login)

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()

    def reset(self) -> None:
        with self.platform.db.write() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        self._seed()

    def _seed(self) -> None:
        self.platform.seed()
        actor = system_actor(self.platform.settings.organisation)
        with self.platform.db.write() as conn:
            self.admin_key = users.renew_key(conn, actor, "admin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(settings: Settings) -> LiveServer:
    """Starts a server for ``settings`` in a thread and waits until it answers."""
    platform = Platform.open(settings)
    platform.prepare()
    app = create_app(settings, prepared=platform)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    live = LiveServer(
        url=f"http://127.0.0.1:{port}", platform=platform, thread=thread, server=server
    )
    live._seed()
    return live


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key="test-secret-key-not-for-production",
        admin_password=ADMIN_PASSWORD,
        stream_refresh=2.0,
    )


_SERVERS: dict[str, LiveServer] = {}


@pytest.fixture(params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    backend: str = request.param
    if backend not in _SERVERS:
        data_dir = tmp_path_factory.mktemp(f"server-{backend}")
        _SERVERS[backend] = start_server(settings_for(database_urls[backend], data_dir))
    live = _SERVERS[backend]
    live.reset()  # other tests share this database and may have emptied it
    yield live
    live.close_clients()


@pytest.fixture
def admin(server: LiveServer) -> httpx.Client:
    return server.client()


@pytest.fixture(scope="session", autouse=True)
def stop_servers(database_urls: dict[str, str]) -> Iterator[None]:
    """Stops the servers before their databases are dropped."""
    yield
    for live in _SERVERS.values():
        live.server.should_exit = True
        live.thread.join(timeout=5)
        live.platform.close()
    _SERVERS.clear()
