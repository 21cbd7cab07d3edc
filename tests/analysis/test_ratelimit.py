"""Admissions of one analyzer are serialised, on both databases."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from cerana.analysis import ratelimit
from cerana.store import tables
from cerana.store.db import Database


def test_a_second_admission_waits_until_the_first_commits(db: Database) -> None:
    events: list[str] = []

    def admit(name: str, hold: float) -> None:
        with db.write() as conn:
            ratelimit.lock_gate(conn, "NoOp_1_0", 0)
            events.append(f"{name} locked")
            time.sleep(hold)
            events.append(f"{name} commits")

    first = threading.Thread(target=admit, args=("first", 0.3))
    first.start()
    time.sleep(0.1)
    admit("second", 0)
    first.join()

    assert events == [
        "first locked",
        "first commits",
        "second locked",
        "second commits",
    ]


def test_postgresql_keeps_one_gate_row_per_analyzer(db: Database) -> None:
    for analyzer in ("NoOp_1_0", "NoOp_1_0", "Other_1_0"):
        with db.write() as conn:
            ratelimit.lock_gate(conn, analyzer, 0)

    with db.read() as conn:
        gates = conn.execute(select(tables.analyzer_gate.c.analyzer_id)).scalars()
        found = sorted(gates)

    # SQLite needs no row: BEGIN IMMEDIATE serialises every writer.
    expected = ["NoOp_1_0", "Other_1_0"] if db.dialect == "postgresql" else []
    assert found == expected
