"""The `cerana` command: migrate and user administration."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from cerana.cli import E_CONFIG, E_INVALID, E_OK, main
from cerana.services.users import authenticate_key, authenticate_password
from cerana.store import tables
from cerana.store.db import Database


@pytest.fixture
def env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("CERANA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CERANA_DATABASE_URL", db.url)
    monkeypatch.setenv("CERANA_ADMIN_PASSWORD", "first-admin-pw")
    return db


def test_migrate_creates_the_first_admin(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["migrate"])

    assert status == E_OK
    with env.read() as conn:
        assert authenticate_password(conn, "admin", "first-admin-pw")["roles"] == [
            "read",
            "write",
            "admin",
            "alert",
        ]
    assert "schema is up to date" in capsys.readouterr().out


def test_user_add_list_lock_and_unlock(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        [
            "user",
            "add",
            "alice",
            "--name",
            "Alice",
            "--roles",
            "read,write",
            "--password",
            "alice-password",
        ]
    )

    main(["user", "lock", "alice"])
    with env.read() as conn:
        locked = conn.execute(
            select(tables.user.c.status).where(tables.user.c.id == "alice")
        ).scalar()
    main(["user", "unlock", "alice"])
    main(["user", "list"])

    assert locked == "Locked"
    listing = capsys.readouterr().out
    assert "alice" in listing and "Ok" in listing and "read,write" in listing


def test_renew_key_prints_a_working_key_once(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["migrate"])
    capsys.readouterr()

    status = main(["user", "renew-key", "admin"])
    key = capsys.readouterr().out.strip()

    assert status == E_OK
    with env.read() as conn:
        assert authenticate_key(conn, key)["id"] == "admin"


def test_set_password_replaces_the_old_one(env: Database) -> None:
    main(["user", "add", "bob", "--password", "bob-password-1"])

    status = main(["user", "set-password", "bob", "--password", "bob-password-2"])

    assert status == E_OK
    with env.read() as conn:
        assert authenticate_password(conn, "bob", "bob-password-2")["id"] == "bob"


def test_duplicate_user_is_reported_with_its_own_status(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["user", "add", "carol", "--password", "carol-password"])

    status = main(["user", "add", "carol", "--password", "carol-password"])

    assert status == E_INVALID
    assert "user carol already exists" in capsys.readouterr().err


def test_short_password_is_refused(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["user", "add", "dave", "--password", "short"])

    assert status == E_INVALID
    assert "at least 8 characters" in capsys.readouterr().err


def test_bad_configuration_exits_with_the_config_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERANA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CERANA_PORT", "not-a-port")

    status = main(["migrate"])

    assert status == E_CONFIG
    assert "CERANA_PORT" in capsys.readouterr().err
