"""Migrations that move existing rows: run on a database holding data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from cerana.store.db import alembic_config
from tests.conftest import BACKENDS, fresh_database


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables, of each backend."""
    with fresh_database(request.param, tmp_path / "migrating.db", "migrating") as url:
        yield url


def _migrate(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


_CASE = (
    "INSERT INTO case_record (id, number, title, description, severity,"
    " start_date, flag, tlp, status, owner, metrics, custom_fields, tags,"
    " organisation, created_by, created_at, version)"
    " VALUES ('c1', 1, 't', 'd', 2, 0, false, 2, 'Open', 'admin', '{}', '{}',"
    " '[]', 'cerana', 'admin', 0, 1)"
)
_OBSERVABLE = (
    "INSERT INTO observable (id, case_id, data_type, data, data_key, start_date,"
    " tlp, ioc, sighted, status, reports, tags, organisation, created_by,"
    " created_at, version)"
    " VALUES (:id, 'c1', :data_type, :data, :id, 0, 2, false, false, 'Ok', '{}',"
    " '[]', 'cerana', 'admin', 0, 1)"
)


def test_0009_gives_the_existing_hash_rows_their_observables_datatype(
    empty_url: str,
) -> None:
    engine = sa.create_engine(empty_url)
    try:
        _migrate(engine, "0008")
        with engine.begin() as conn:
            conn.execute(sa.text(_CASE))
            for oid, data_type in (("h1", "hash"), ("f1", "file")):
                conn.execute(
                    sa.text(_OBSERVABLE),
                    {"id": oid, "data_type": data_type, "data": oid},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO observable_hash (observable_id, hash) VALUES"
                    " ('h1', 'aa'), ('f1', 'aa'), ('f1', 'bb')"
                )
            )

        _migrate(engine, "head")

        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT observable_id, hash, data_type FROM observable_hash"
                    " ORDER BY observable_id, hash"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("f1", "aa", "file"),
            ("f1", "bb", "file"),
            ("h1", "aa", "hash"),
        ]

        _migrate(engine, "0008", down=True)
        with engine.connect() as conn:
            columns = {
                c["name"] for c in sa.inspect(conn).get_columns("observable_hash")
            }
        assert columns == {"observable_id", "hash"}
    finally:
        engine.dispose()
