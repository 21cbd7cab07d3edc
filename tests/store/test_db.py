"""The database layer: pooled PostgreSQL connections pinged after idling and
replaced when dead; SQLite's log copied back by a thread of its own."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerana.store import db as db_module
from cerana.store.db import Database
from tests.conftest import terminate_backends


@pytest.fixture
def postgres(database_urls: dict[str, str]) -> Iterator[Database]:
    database = Database(database_urls["postgresql"])
    yield database
    database.dispose()


def _backend_pids(database: Database) -> set[int]:
    pids: set[int] = set()
    with database.read() as conn:
        pids.add(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    with database.write() as conn:
        pids.add(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    return pids


def test_connections_killed_while_idle_are_replaced_before_use(
    postgres: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _backend_pids(postgres)
    terminate_backends(old)
    # Every checkout counts as idle long enough to be pinged.
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)

    new = _backend_pids(postgres)

    assert new.isdisjoint(old)
    with postgres.write() as conn:
        assert conn.exec_driver_sql("SELECT 41 + 1").scalar_one() == 42


def test_a_connection_the_driver_knows_is_closed_is_replaced_without_a_ping(
    postgres: Database,
) -> None:
    with postgres.write() as conn:
        first = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        raw = conn.connection.dbapi_connection
        assert raw is not None
    raw.close()  # back in the pool, closed, and checked in a moment ago

    with postgres.write() as conn:
        second = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    assert second != first


def _fill(database: Database, megabytes: int) -> None:
    blob = "x" * 1000
    for _ in range(megabytes):
        with database.write() as conn:
            conn.exec_driver_sql(
                "INSERT INTO filler (body) VALUES " + ", ".join(["(?)"] * 1000),
                tuple([blob] * 1000),
            )


def test_sqlite_log_is_copied_into_the_database_file_by_a_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cerana.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.write() as conn:
            conn.exec_driver_sql("CREATE TABLE filler (body TEXT)")
            # Commits themselves never copy the log back.
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        before = path.stat().st_size
        _fill(database, 4)
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 4_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 4_000_000
    finally:
        database.dispose()


def test_sqlite_log_is_emptied_at_close_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "cerana.db"
    database = Database(f"sqlite:///{path}")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE filler (body TEXT)")
    _fill(database, 2)
    database.dispose()

    wal = path.with_name("cerana.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM filler").fetchone() == (2000,)
