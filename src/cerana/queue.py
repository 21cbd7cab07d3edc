"""The work queue: Huey on a SQLite file by default, on Redis when
``queue_url`` says ``redis://``.

The database stays the source of truth: work is first written as a row
(a job, a webhook delivery), then a message naming that row is queued to
wake a worker. A message lost with a crashed worker costs nothing, since
the periodic sweep re-queues rows left behind.

Background work is a plain function ``fn(platform, *args)`` registered
once with `register`; `enqueue` sends it to any worker, in this process
(threads inside ``cerana serve``) or in ``cerana worker`` processes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huey import RedisHuey, crontab
from huey.api import Huey, TaskWrapper
from huey.constants import EmptyData
from huey.consumer import Consumer
from huey.storage import SqliteStorage
from sqlalchemy import Connection

from cerana.config import Settings
from cerana.store.db import SYNCHRONOUS_LEVELS

if TYPE_CHECKING:
    from cerana.platform import Platform

logger = logging.getLogger(__name__)

Work = Callable[..., None]


@dataclass(frozen=True)
class _Registered:
    fn: Work
    retries: int
    retry_delay: int
    every_minutes: int | None


_REGISTRY: dict[str, _Registered] = {}
# How an idle worker polls the SQLite queue: first after 10 ms, then 15 %
# later each time, up to a second. A job queued soon after the previous
# one waits for the next poll: starting at 50 ms added about 25 ms to each
# job of a steady trickle (bench/analysis.py).
_POLL = {"initial_delay": 0.01, "max_delay": 1.0}
# Platforms whose queue workers run in this process (see `platform_of`).
_running: list[Platform] = []
_lock = threading.Lock()


def register(
    name: str,
    *,
    retries: int = 0,
    retry_delay: int = 0,
    every_minutes: int | None = None,
) -> Callable[[Work], Work]:
    """Registers ``fn(platform, *args)`` as queued work named ``name``.

    ``every_minutes`` makes it periodic (run with no argument).
    """

    def decorator(fn: Work) -> Work:
        _REGISTRY[name] = _Registered(fn, retries, retry_delay, every_minutes)
        return fn

    return decorator


class _QuietConsumer(Consumer):  # type: ignore[misc]
    """A consumer that leaves signal handling to the host process (uvicorn
    in ``cerana serve``), instead of replacing its handlers."""

    def _set_signal_handlers(self) -> None:
        return None


class WorkQueue:
    """One Huey instance bound to the settings, with every registered task."""

    def __init__(self, settings: Settings) -> None:
        self.huey = _create_huey(settings)
        self._tasks: dict[str, TaskWrapper] = {}
        self._consumer: Consumer | None = None
        # The platform this queue's work runs against. Kept per queue, not
        # per process, so that two platforms in one process (the tests,
        # an embedding application) never run each other's work.
        self._platform: Platform | None = None
        for name, registered in _REGISTRY.items():
            self._tasks[name] = self._wrap(name, registered)

    def _wrap(self, name: str, registered: _Registered) -> TaskWrapper:
        def run(*args: Any) -> None:
            if self._platform is None:
                raise RuntimeError("queued work ran before its workers started")
            registered.fn(self._platform, *args)

        if registered.every_minutes:
            schedule = crontab(minute=f"*/{registered.every_minutes}")
            return self.huey.periodic_task(schedule, name=name)(run)
        return self.huey.task(
            retries=registered.retries, retry_delay=registered.retry_delay, name=name
        )(run)

    def enqueue(self, name: str, *args: Any, delay: float | None = None) -> None:
        """Queues registered work ``name`` with ``args``.

        Raises KeyError for an unknown name (a programming error).
        """
        task = self._tasks[name]
        if delay:
            task.schedule(args=args, delay=delay)
        else:
            task(*args)

    def start_workers(self, platform: Platform, workers: int) -> None:
        """Starts ``workers`` worker threads (and the periodic scheduler)."""
        _quiet_huey()
        self._platform = platform
        _register_running(platform)
        consumer = _QuietConsumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            **_POLL,
        )
        consumer.start()
        self._consumer = consumer
        logger.info("%d queue workers started", workers)

    def run_forever(self, platform: Platform, workers: int) -> None:
        """Runs a worker process until interrupted (``cerana worker``)."""
        _quiet_huey()
        self._platform = platform
        _register_running(platform)
        consumer = self.huey.create_consumer(
            workers=workers, worker_type="thread", **_POLL
        )
        consumer.run()

    def stop_workers(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
            logger.info("queue workers stopped")
        if self._platform is not None:
            with _lock:
                _running[:] = [p for p in _running if p is not self._platform]


def _quiet_huey() -> None:
    """Raises Huey's loggers to WARNING when the process logs at INFO.

    Huey logs two INFO lines for every task it runs ("Executing ...",
    "... executed in"); our work logs its own line where it matters (one
    per analyzer job), so at INFO they only cost, about 2 % of a no-op
    job's CPU time (#6). At DEBUG they stay; warnings and errors always do.
    """
    huey_logger = logging.getLogger("huey")
    if huey_logger.getEffectiveLevel() == logging.INFO:
        huey_logger.setLevel(logging.WARNING)


class _SqliteQueueStorage(SqliteStorage):  # type: ignore[misc]
    """Huey's SQLite storage at the ``sqlite_synchronous`` level of the
    database, instead of SQLite's default FULL.

    FULL costs an fsync per commit, about 3 ms on our test machine, and
    Huey commits three times per task under one lock: the queue alone
    capped the engine near 100 jobs/s. NORMAL (WAL) survives a crash of
    the process; a power cut may lose the last messages, which the sweep
    queues again from the job rows.
    """

    def __init__(self, *args: Any, synchronous: str = "NORMAL", **kwargs: Any):
        if synchronous.upper() not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"unknown SQLite synchronous level {synchronous!r}")
        self._synchronous = synchronous.upper()
        super().__init__(*args, **kwargs)

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute(f"pragma synchronous={self._synchronous}")
        return conn

    def pop_data(self, key: str) -> Any:
        # Huey pops each task's revoke flag once the task has run, in an
        # exclusive transaction: a third of the queue's commits, while
        # nothing here revokes tasks. A plain read first skips the commit
        # when there is no flag; one set meanwhile is only left behind, as
        # it would be if set just after the pop (#6).
        if not self.has_data_for_key(key):
            return EmptyData
        return super().pop_data(key)


def _create_huey(settings: Settings) -> Huey:
    url = settings.queue_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("cerana", url=url)
    if url and not url.startswith("sqlite:"):
        raise ValueError(
            f"queue_url must be redis://... or sqlite:///path, not {url!r}"
        )
    path = (
        url.removeprefix("sqlite:///") if url else str(settings.data_dir / "queue.db")
    )
    return Huey(
        "cerana",
        storage_class=_SqliteQueueStorage,
        filename=path,
        synchronous=settings.sqlite_synchronous,
    )


def _register_running(platform: Platform) -> None:
    with _lock:
        if all(p is not platform for p in _running):
            _running.append(platform)


def platform_of(conn: Connection) -> Platform:
    """Returns the bound platform whose database ``conn`` belongs to, so
    that work queued from inside a transaction reaches that platform's
    queue. Raises RuntimeError when no platform of that database runs
    workers in this process."""
    with _lock:
        for platform in _running:
            if platform.db.owns(conn):
                return platform
    raise RuntimeError("no queue workers run for this database in this process")
