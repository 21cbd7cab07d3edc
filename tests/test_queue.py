"""The work queue's storage: Huey on a SQLite file by default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from huey.constants import EmptyData

from cerana.config import Settings
from cerana.queue import WorkQueue, _quiet_huey

# PRAGMA synchronous answers a number: OFF 0, NORMAL 1, FULL 2, EXTRA 3.
LEVELS = {"NORMAL": 1, "FULL": 2}


@pytest.mark.parametrize("level", ["NORMAL", "FULL"], ids=str.lower)
def test_the_sqlite_queue_commits_at_the_database_synchronous_level(
    tmp_path: Path, level: str
) -> None:
    queue = WorkQueue(Settings(data_dir=tmp_path, sqlite_synchronous=level))

    found = queue.huey.storage.conn.execute("pragma synchronous").fetchone()

    assert found == (LEVELS[level],)
    assert queue.huey.storage.filename == str(tmp_path / "queue.db")


def test_an_unknown_synchronous_level_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="SOMETIMES")

    with pytest.raises(ValueError, match="SOMETIMES"):
        WorkQueue(settings)


def test_clearing_an_absent_revoke_flag_takes_no_write_transaction(
    tmp_path: Path,
) -> None:
    storage = WorkQueue(Settings(data_dir=tmp_path)).huey.storage
    storage.put_data("r:set", b"1")
    statements: list[str] = []
    storage.conn.set_trace_callback(statements.append)

    missing = storage.pop_data("r:absent")
    found = storage.pop_data("r:set")

    assert (missing, found) == (EmptyData, b"1")
    assert not storage.has_data_for_key("r:set")
    assert [s for s in statements if s.startswith("begin")] == ["begin exclusive"]


def test_a_task_revoked_once_is_skipped_once(tmp_path: Path) -> None:
    huey = WorkQueue(Settings(data_dir=tmp_path)).huey
    ran: list[int] = []
    task = huey.task(name="test.revocable")(ran.append)

    task.revoke(revoke_once=True)
    task(1)
    huey.execute(huey.dequeue())
    task(2)
    huey.execute(huey.dequeue())

    assert ran == [2]


@pytest.fixture
def huey_logger() -> Iterator[logging.Logger]:
    found = logging.getLogger("huey")
    level = found.level
    yield found
    found.setLevel(level)


@pytest.mark.parametrize(
    ("level", "lines"), [(logging.INFO, 0), (logging.DEBUG, 2)], ids=["info", "debug"]
)
def test_huey_logs_no_line_per_task_at_info(
    tmp_path: Path,
    huey_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    level: int,
    lines: int,
) -> None:
    caplog.set_level(level)
    huey = WorkQueue(Settings(data_dir=tmp_path)).huey
    task = huey.task(name="test.logged")(lambda: None)

    _quiet_huey()
    task()
    huey.execute(huey.dequeue())

    assert len([r for r in caplog.records if r.name == "huey"]) == lines
