"""Database engine, transactions and schema migrations.

Reads and writes go through `Database.read()` and `Database.write()`. On
SQLite a write transaction starts with ``BEGIN IMMEDIATE``: it takes the
write lock up front, so two writers queue on the busy timeout instead of
failing half-way with "database is locked" when a read turns into a write.
Writers of one process also queue on a lock of their own before asking
SQLite: its busy handler sleeps and retries, and under many concurrent
writers that back-off, not the work, set the pace (bulk alert ingestion
lost half its throughput to it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
_BEGIN_MODE = "cerana_begin"
# SQLite's `synchronous` levels; settings refuse OFF, bulk loaders use it.
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def normalise_url(url: str) -> str:
    """Returns ``url`` with the psycopg 3 driver named for PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One database: its engine and the way transactions begin."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL") -> None:
        # OFF is for bulk loading tools (bench/generate.py); settings refuse it.
        if sqlite_synchronous.upper() not in SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"sqlite_synchronous must be NORMAL, FULL or EXTRA, not {sqlite_synchronous!r}"
            )
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.engine = self._create_engine(sqlite_synchronous)
        # PostgreSQL reads run in autocommit. At READ COMMITTED, its default
        # and ours, each statement of a transaction takes its own snapshot
        # anyway, so BEGIN and COMMIT bought nothing but two round trips a
        # request (the API key look-up is one such read). SQLite keeps its
        # read transaction: there it is what gives one snapshot to the
        # statements of a request, and costs no round trip.
        # A pool of its own: switching a pooled connection in and out of
        # autocommit at each checkout cost more than the round trips saved.
        self._reader = (
            self.engine
            if self.is_sqlite
            else create_engine(
                self.url,
                pool_size=10,
                max_overflow=30,
                pool_pre_ping=True,
                isolation_level="AUTOCOMMIT",
            )
        )
        # Re-entrant: a nested write in the same thread reaches SQLite and
        # fails on its busy timeout, as it did before, instead of hanging.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if self.is_sqlite else None
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, synchronous: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(
                self.url, pool_size=10, max_overflow=30, pool_pre_ping=True
            )
        sqlite_path = make_url(self.url).database
        if sqlite_path and sqlite_path != ":memory:":
            Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            pool_size=16,
            max_overflow=16,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _configure_sqlite(engine, synchronous)
        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yields a connection to read with (see ``_reader``); writes go
        through `write`."""
        with self._reader.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Yields a connection inside a write transaction, committed on exit.

        Any exception rolls the whole transaction back: no partial write.
        """
        if self._write_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self._write_lock, self.engine.connect() as conn:
            conn.info[_BEGIN_MODE] = "BEGIN IMMEDIATE"
            with conn.begin():
                yield conn

    def migrate(self) -> None:
        """Brings the schema to the newest revision (Alembic ``upgrade head``)."""
        with self.engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        logger.info("database schema is up to date (%s)", self.dialect)

    def owns(self, conn: Connection) -> bool:
        """Whether ``conn`` is a connection to this database."""
        return conn.engine is self.engine or conn.engine is self._reader

    def dispose(self) -> None:
        self.engine.dispose()
        if self._reader is not self.engine:
            self._reader.dispose()


def alembic_config() -> AlembicConfig:
    """Returns the Alembic configuration pointing at the packaged migrations."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: transactions begin where we say.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.info.pop(_BEGIN_MODE, "BEGIN"))
