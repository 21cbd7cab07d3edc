"""The work queue's storage: Huey on a SQLite file by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerana.config import Settings
from cerana.queue import WorkQueue

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
