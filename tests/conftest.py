"""Shared fixtures: real SQLite and real PostgreSQL databases.

Every test that takes ``db`` runs twice, once per backend. PostgreSQL is
not optional: when it cannot be reached the run fails, it never skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from cerana.store.db import Database
from cerana.store.tables import metadata

POSTGRES_ADMIN_URL = os.environ.get(
    "CERANA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgresql"]


def _database_name() -> str:
    # One database per test process: parallel runs (xdist workers, several
    # developers' runs on one machine) never drop each other's database.
    return f"cerana_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def _drop_postgres_database(name: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _create_postgres_database(name: str) -> str:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required and could not be reached at "
            f"{POSTGRES_ADMIN_URL}: {exc}",
            pytrace=False,
        )
    finally:
        admin.dispose()
    return (
        sa.make_url(POSTGRES_ADMIN_URL)
        .set(database=name)
        .render_as_string(hide_password=False)
    )


@contextmanager
def fresh_database(backend: str, sqlite_file: Path, label: str) -> Iterator[str]:
    """Yields the URL of a new, empty database of ``backend``: the SQLite
    file ``sqlite_file``, or a PostgreSQL database of this process's own,
    dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{sqlite_file}"
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"cerana_{label}_{worker}_{os.getpid()}"
    url = _create_postgres_database(name)
    try:
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole test session."""
    sqlite_file = tmp_path_factory.mktemp("sqlite") / "cerana.db"
    name = _database_name()
    urls = {
        "sqlite": f"sqlite:///{sqlite_file}",
        "postgresql": _create_postgres_database(name),
    }
    for url in urls.values():
        database = Database(url)
        database.migrate()
        database.dispose()
    yield urls
    for database in _ENGINES.values():
        database.dispose()
    _drop_postgres_database(name)


_ENGINES: dict[str, Database] = {}


def terminate_backends(pids: Iterable[int]) -> None:
    """Ends PostgreSQL server processes, as a database restart would."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db(
    request: pytest.FixtureRequest, database_urls: dict[str, str]
) -> Iterator[Database]:
    """A clean database of each backend, emptied before the test (the API
    tests' servers share it and leave their seed data behind)."""
    backend: str = request.param
    if backend not in _ENGINES:
        _ENGINES[backend] = Database(database_urls[backend])
    database = _ENGINES[backend]
    _empty(database)
    yield database


def _empty(database: Database) -> None:
    with database.write() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path
