"""`cerana templates export` and `cerana templates import` (#5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cerana.cli import E_INVALID, E_OK, main
from cerana.services import users
from cerana.services.context import system_actor
from cerana.store import tables
from cerana.store.db import Database
from tests.template_fixtures import THEHIVE_TEMPLATE, thehive_template


@pytest.fixture
def env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A database with the task owners of the fixture template."""
    monkeypatch.setenv("CERANA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CERANA_DATABASE_URL", db.url)
    monkeypatch.setenv("CERANA_ADMIN_PASSWORD", "first-admin-pw")
    assert main(["migrate"]) == E_OK
    with db.write() as conn:
        for login in ("alice", "bob"):
            users.create_user(
                conn,
                system_actor("cerana"),
                {"login": login, "name": login, "roles": ["read"]},
            )
    return db


def _template_names(db: Database) -> list[str]:
    table = tables.case_template
    with db.read() as conn:
        return list(conn.execute(select(table.c.name).order_by(table.c.name)).scalars())


def _list_size(db: Database) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(tables.dblist)
                .where(tables.dblist.c.list_name != "list_artifactDataType")
            ).scalar_one()
        )


def _variants(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"template-{number}.json"
        document = {**thehive_template(), "name": f"Phishing {number}"}
        path.write_text(json.dumps(document), encoding="utf-8")
        paths.append(path)
    return paths


def test_import_of_many_files_defines_what_is_missing(
    env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _variants(tmp_path / "in", 12)

    status = main(["templates", "import", *map(str, files), "--create-missing"])

    assert status == E_OK
    assert len(_template_names(env)) == 12
    out = capsys.readouterr().out
    assert "custom field businessImpact defined for template-0.json" in out
    assert "12 case templates imported from 12 files" in out


def test_import_without_create_missing_names_the_undefined_and_writes_nothing(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["templates", "import", str(THEHIVE_TEMPLATE)])

    assert status == E_INVALID
    err = capsys.readouterr().err
    assert "names custom fields businessImpact, reportedByUser" in err
    assert "metrics timeToContain, usersTargeted that are not defined" in err
    assert _template_names(env) == [] and _list_size(env) == 0


def test_invalid_json_file_is_reported_and_writes_nothing(
    env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _variants(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken.json"
    broken.write_text('{"name": "Broken", "tasks": [', encoding="utf-8")

    status = main(["templates", "import", str(tmp_path / "in"), "--create-missing"])

    assert status == E_INVALID
    assert f"error: {broken} is not valid JSON" in capsys.readouterr().err
    assert _template_names(env) == ["Phishing 0", "Phishing 1"]
    assert len(good) == 2


def test_export_of_all_templates_to_a_folder_gives_thehive_files(
    env: Database, tmp_path: Path
) -> None:
    main(["templates", "import", str(THEHIVE_TEMPLATE), "--create-missing"])

    status = main(["templates", "export", "--output", str(tmp_path / "out")])

    written = tmp_path / "out" / "Case-Template__Phishing_campaign.json"
    assert status == E_OK
    assert json.loads(written.read_text("utf-8")) == thehive_template()


def test_export_of_one_template_goes_to_standard_output(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["templates", "import", str(THEHIVE_TEMPLATE), "--create-missing"])
    capsys.readouterr()

    found = main(["templates", "export", "--name", "Phishing campaign"])
    exported = capsys.readouterr().out
    missing = main(["templates", "export", "--name", "Malware"])

    assert found == E_OK
    assert json.loads(exported) == thehive_template()
    assert missing == E_INVALID
    assert "no case template is named Malware" in capsys.readouterr().err


def test_round_trip_through_files_gives_identical_json(
    env: Database, tmp_path: Path
) -> None:
    main(
        [
            "templates",
            "import",
            *map(str, _variants(tmp_path / "in", 3)),
            "--create-missing",
        ]
    )
    first = tmp_path / "first.json"
    main(["templates", "export", "--output", str(first)])
    with env.write() as conn:
        conn.execute(tables.case_template.delete())
        conn.execute(tables.dblist.delete())

    imported = main(["templates", "import", str(first), "--create-missing"])
    second = tmp_path / "second.json"
    main(["templates", "export", "--output", str(second)])

    assert imported == E_OK
    assert second.read_bytes() == first.read_bytes()
    assert len(json.loads(first.read_text("utf-8"))) == 3
