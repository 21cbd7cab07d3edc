"""Database engine, transactions and schema migrations.

Reads and writes go through `Database.read()` and `Database.write()`. On
SQLite a write transaction starts with ``BEGIN IMMEDIATE``: it takes the
write lock up front, so two writers queue on the busy timeout instead of
failing half-way with "database is locked" when a read turns into a write.
Writers of one process also queue on a lock of their own before asking
SQLite: its busy handler sleeps and retries, and under many concurrent
writers that back-off, not the work, set the pace (bulk alert ingestion
lost half its throughput to it).

On SQLite the write-ahead log is copied back into the database file by a
thread of its own (`_Checkpointer`), not by whichever commit crosses
SQLite's threshold: that commit used to pay for the copy and its fsync
while every other writer waited behind it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
_BEGIN_MODE = "cerana_begin"
_CHECKED_IN = "cerana_checked_in"
# A pooled PostgreSQL connection idle longer than this is pinged before use.
PING_AFTER_IDLE_SECONDS = 5.0
# A write-ahead log this long (in pages) that a checkpoint could not empty
# is worth a line in the log: long readers are holding it.
_LARGE_WAL_FRAMES = 100_000
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
        # The SQLite database file; None in memory and on a server.
        self._file = _sqlite_file(self.url) if self.is_sqlite else None
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
            else _server_engine(self.url, isolation_level="AUTOCOMMIT")
        )
        # Re-entrant: a nested write in the same thread reaches SQLite and
        # fails on its busy timeout, as it did before, instead of hanging.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if self.is_sqlite else None
        )
        self._checkpointer = _Checkpointer(self._file) if self._file else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, synchronous: str) -> Engine:
        if not self.is_sqlite:
            return _server_engine(self.url)
        if self._file:
            Path(self._file).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            pool_size=16,
            max_overflow=16,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _configure_sqlite(engine, synchronous, checkpoint_in_thread=bool(self._file))
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
        if self._checkpointer is not None:
            self._checkpointer.wake()

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
        if self._checkpointer is not None:
            self._checkpointer.close()


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None in memory."""
    path = make_url(url).database
    return path if path and path != ":memory:" else None


class _Checkpointer:
    """Copies a SQLite database's write-ahead log into the database file,
    from a thread of its own, at most every `interval` seconds after writes.

    The engine's connections run with ``wal_autocheckpoint=0``. Checkpoints
    are PASSIVE: they never wait for a reader or a writer, and copy what no
    reader still needs; the next one takes the rest. SQLite releases the GIL
    while it copies. Durability is unchanged: a committed transaction is in
    the log, which SQLite replays at the next open after a crash.
    """

    def __init__(self, path: str, interval: float = 0.1) -> None:
        self._path = path
        self._interval = interval
        self._pending = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cerana-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Says a transaction was committed."""
        self._pending.set()

    def close(self) -> None:
        """Stops the thread after a last, complete checkpoint."""
        self._closing.set()
        self._pending.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=5, check_same_thread=False)
        try:
            while not self._closing.is_set():
                self._pending.wait()
                self._pending.clear()
                self._checkpoint(conn, "PASSIVE")
                self._closing.wait(self._interval)
            # Last one: the log is emptied when no other process is using the
            # file; one that is reports busy after a second, and its own
            # checkpoints take over.
            conn.execute("PRAGMA busy_timeout=1000")
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> None:
        try:
            busy, frames, copied = conn.execute(
                f"PRAGMA wal_checkpoint({mode})"
            ).fetchone()
        except sqlite3.Error as error:
            # The log grows until a later checkpoint succeeds; nothing is lost.
            logger.warning("checkpoint of %s failed: %s", self._path, error)
            return
        if frames > _LARGE_WAL_FRAMES and copied < frames:
            logger.info(
                "write-ahead log of %s holds %d pages, %d copied (busy=%d)",
                self._path,
                frames,
                copied,
                busy,
            )


def alembic_config() -> AlembicConfig:
    """Returns the Alembic configuration pointing at the packaged migrations."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _server_engine(url: str, **options: Any) -> Engine:
    """An engine for a database server, whose pooled connections are pinged
    only when they have been idle a while.

    SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` at every checkout: a
    round trip per transaction, 13 % of a PostgreSQL queue worker's time.
    A connection handed back a moment ago is as alive as the ping would
    prove; one that sat idle may have been dropped by a restart or a
    firewall, and gets the ping. A connection the driver already knows is
    broken is replaced without one.
    """
    engine = create_engine(url, pool_size=10, max_overflow=30, **options)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any
    ) -> None:
        if dbapi_connection.broken or dbapi_connection.closed:
            raise exc.DisconnectionError("the connection is closed")
        idle = time.monotonic() - record.info.get(_CHECKED_IN, 0.0)
        if idle < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as error:
            # The pool drops this connection and checks out another.
            raise exc.DisconnectionError(f"ping failed: {error}") from error

    return engine


def _configure_sqlite(
    engine: Engine, synchronous: str, *, checkpoint_in_thread: bool
) -> None:
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
        if checkpoint_in_thread:  # see _Checkpointer
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.info.pop(_BEGIN_MODE, "BEGIN"))
