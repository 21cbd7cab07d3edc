"""Cases through the TheHive 3 API: create, read, update, close, delete, merge."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cerana.store import db as db_module
from tests.api.conftest import LiveServer
from tests.conftest import terminate_backends


def _case(admin: httpx.Client, **fields: object) -> dict[str, object]:
    body = {"title": "Phishing wave", "description": "Users report mails", **fields}
    response = admin.post("/api/case", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_created_case_has_defaults_and_a_number(admin: httpx.Client) -> None:
    case = _case(admin)

    assert case["caseId"] == 1
    assert case["severity"] == 2 and case["tlp"] == 2
    assert case["status"] == "Open"
    assert case["owner"] == "admin"
    assert case["_type"] == "case" and case["id"] == case["_id"]


def test_case_with_tasks_creates_them_in_order(admin: httpx.Client) -> None:
    case = _case(admin, tasks=[{"title": "Collect"}, {"title": "Contain"}])

    tasks = admin.post(
        f"/api/case/{case['id']}/task/_search",
        json={"range": "all", "sort": ["+order"]},
    ).json()

    assert [t["title"] for t in tasks] == ["Collect", "Contain"]
    assert [t["order"] for t in tasks] == [0, 1]


def test_missing_title_gets_attribute_error_naming_it(admin: httpx.Client) -> None:
    response = admin.post("/api/case", json={"description": "d"})

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "AttributeCheckingError"
    assert body["errors"][0][0]["name"] == "title"


def test_bad_severity_is_refused_and_nothing_is_written(admin: httpx.Client) -> None:
    response = admin.post(
        "/api/case", json={"title": "t", "description": "d", "severity": 9}
    )
    listed = admin.get("/api/case")

    assert response.status_code == 400
    assert "severity" in response.json()["message"]
    assert listed.headers["X-Total"] == "0"


def test_closing_a_case_closes_its_tasks(admin: httpx.Client) -> None:
    case = _case(
        admin,
        tasks=[{"title": "waiting"}, {"title": "started", "status": "InProgress"}],
    )

    closed = admin.patch(
        f"/api/case/{case['id']}",
        json={
            "status": "Resolved",
            "resolutionStatus": "TruePositive",
            "impactStatus": "WithImpact",
            "summary": "done",
        },
    ).json()
    tasks = admin.post(
        f"/api/case/{case['id']}/task/_search",
        json={"range": "all", "sort": ["+order"]},
    ).json()

    assert closed["status"] == "Resolved" and "endDate" in closed
    assert [t["status"] for t in tasks] == ["Cancel", "Completed"]


def test_stale_version_gets_409_and_keeps_the_newer_change(admin: httpx.Client) -> None:
    case = _case(admin)
    admin.patch(f"/api/case/{case['id']}", json={"severity": 3})

    stale = admin.patch(
        f"/api/case/{case['id']}",
        json={"severity": 1},
        headers={"If-Match": str(case["_version"])},
    )
    current = admin.get(f"/api/case/{case['id']}").json()

    assert stale.status_code == 409
    assert stale.json()["type"] == "ConflictError"
    assert current["severity"] == 3


def test_concurrent_creations_get_distinct_numbers(server: LiveServer) -> None:
    clients = [server.client() for _ in range(8)]

    def create(index: int) -> int:
        response = clients[index % 8].post(
            "/api/case", json={"title": f"c{index}", "description": "d"}
        )
        assert response.status_code == 201, response.text
        return int(response.json()["caseId"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(create, range(64)))

    assert sorted(numbers) == list(range(1, 65))


def test_soft_delete_hides_nothing_but_marks_deleted(admin: httpx.Client) -> None:
    case = _case(admin)

    response = admin.delete(f"/api/case/{case['id']}")

    assert response.status_code == 204
    assert admin.get(f"/api/case/{case['id']}").json()["status"] == "Deleted"


def test_force_delete_needs_admin_and_removes_everything(
    server: LiveServer, admin: httpx.Client
) -> None:
    analyst = server.client(server.add_user("analyst", ["read", "write"]))
    case = _case(admin, tasks=[{"title": "x"}])

    refused = analyst.delete(f"/api/case/{case['id']}/force")
    removed = admin.delete(f"/api/case/{case['id']}/force")

    assert refused.status_code == 403
    assert removed.status_code == 204
    assert admin.get(f"/api/case/{case['id']}").status_code == 404
    assert admin.post("/api/case/task/_search", json={}).json() == []


def test_bulk_update_reports_each_failure(admin: httpx.Client) -> None:
    case = _case(admin)

    response = admin.patch(
        "/api/case/_bulk", json={"ids": [case["id"], "missing"], "flag": True}
    )

    assert response.status_code == 207
    assert response.json()["success"][0]["flag"] is True
    assert response.json()["failure"][0]["type"] == "NotFoundError"


def test_search_by_status_and_tag_sorted_by_start_date(admin: httpx.Client) -> None:
    _case(admin, title="old", tags=["phishing"], startDate=1_000_000_000_000)
    _case(admin, title="new", tags=["phishing"], startDate=1_700_000_000_000)
    _case(admin, title="other", tags=["malware"])

    response = admin.post(
        "/api/case/_search",
        json={
            "query": {"_and": [{"status": "Open"}, {"tags": "phishing"}]},
            "sort": ["-startDate"],
            "range": "0-50",
        },
    )

    assert [c["title"] for c in response.json()] == ["new", "old"]
    assert response.headers["X-Total"] == "2"


def test_unknown_field_in_query_is_a_400_naming_it(admin: httpx.Client) -> None:
    response = admin.post("/api/case/_search", json={"query": {"nosuchfield": "x"}})

    assert response.status_code == 400
    assert "nosuchfield" in response.json()["message"]


def test_case_stats_counts_and_terms(admin: httpx.Client) -> None:
    _case(admin, severity=1)
    _case(admin, severity=3)
    _case(admin, severity=3)

    response = admin.post(
        "/api/case/_stats",
        json={
            "query": {},
            "stats": [
                {"_agg": "field", "_field": "severity", "_select": [{"_agg": "count"}]},
                {"_agg": "count"},
            ],
        },
    )

    assert response.json() == {"1": {"count": 1}, "3": {"count": 2}, "count": 3}


def test_merge_creates_a_new_case_and_resolves_both(admin: httpx.Client) -> None:
    first = _case(admin, title="A", severity=1, tags=["x"])
    second = _case(admin, title="B", severity=3, tags=["y"])
    admin.post(
        f"/api/case/{first['id']}/artifact",
        json={"dataType": "ip", "data": "10.0.0.1", "message": "m1"},
    )
    admin.post(
        f"/api/case/{second['id']}/artifact",
        json={"dataType": "ip", "data": "10.0.0.1", "message": "m2"},
    )

    merged = admin.post(f"/api/case/{first['id']}/_merge/{second['id']}").json()
    source = admin.get(f"/api/case/{first['id']}").json()
    observables = admin.post(
        f"/api/case/{merged['id']}/artifact/_search", json={}
    ).json()

    assert merged["title"] == "#1:A / #2:B"
    assert merged["severity"] == 3 and sorted(merged["tags"]) == ["x", "y"]
    assert merged["mergeFrom"] == [first["id"], second["id"]]
    assert (
        source["resolutionStatus"] == "Duplicated"
        and source["mergeInto"] == merged["id"]
    )
    assert len(observables) == 1 and observables[0]["message"] == "#1:m1\n#2:m2"


def test_links_list_cases_sharing_observables(admin: httpx.Client) -> None:
    first, second, third = _case(admin), _case(admin), _case(admin)
    for case in (first, second):
        admin.post(
            f"/api/case/{case['id']}/artifact",
            json={"dataType": "domain", "data": "evil.example", "message": "m"},
        )
    admin.post(
        f"/api/case/{third['id']}/artifact",
        json={"dataType": "domain", "data": "other.example", "message": "m"},
    )

    links = admin.get(f"/api/case/{first['id']}/links").json()

    assert [link["id"] for link in links] == [second["id"]]
    assert links[0]["linksCount"] == 1
    assert links[0]["linkedWith"][0]["data"] == "evil.example"


def test_list_totals_from_case_counters_match_the_cases(
    server: LiveServer, admin: httpx.Client
) -> None:
    cases = [_case(admin, title=f"counted {n}") for n in range(6)]
    admin.patch(
        f"/api/case/{cases[0]['id']}",
        json={
            "status": "Resolved",
            "resolutionStatus": "TruePositive",
            "impactStatus": "NoImpact",
            "summary": "done",
        },
    )
    admin.delete(f"/api/case/{cases[1]['id']}")
    assert admin.delete(f"/api/case/{cases[2]['id']}/force").status_code in (200, 204)
    queries: list[tuple[object, set[str]]] = [
        (None, {"Open", "Resolved", "Deleted"}),
        ({"status": "Open"}, {"Open"}),
        ({"_field": "status", "_value": "Resolved"}, {"Resolved"}),
        (
            {"_in": {"_field": "status", "_values": ["Open", "Deleted"]}},
            {"Open", "Deleted"},
        ),
        (
            {"_or": [{"status": "Resolved"}, {"status": "Deleted"}]},
            {"Resolved", "Deleted"},
        ),
        ({"_and": [{"status": "Open"}, {"title": "counted"}]}, {"Open"}),
    ]

    statuses = [
        c["status"]
        for c in admin.post("/api/case/_search", json={"range": "all"}).json()
    ]
    for query, selected in queries:
        body = {} if query is None else {"query": query}
        response = admin.post("/api/case/_search", json=body)
        wanted = sum(1 for status in statuses if status in selected)
        assert int(response.headers["X-Total"]) == wanted, query
    assert sorted(statuses) == ["Deleted", "Open", "Open", "Open", "Resolved"]


def test_totals_of_status_and_tag_searches_follow_every_change(
    admin: httpx.Client,
) -> None:
    """The per-tag counters (migration 0007) agree with the cases after
    tags are added, replaced and dropped, statuses change, cases are
    merged, deleted and force-deleted."""
    tagged = [
        _case(admin, title=f"tagged {n}", tags=tags)
        for n, tags in enumerate(
            [["zeta", "alpha"], ["alpha"], ["alpha", "beta"], ["beta"], []]
        )
    ]
    admin.patch(f"/api/case/{tagged[3]['id']}", json={"tags": ["alpha", "gamma"]})
    admin.patch(f"/api/case/{tagged[2]['id']}", json={"tags": ["beta"]})
    admin.patch(
        f"/api/case/{tagged[0]['id']}",
        json={
            "status": "Resolved",
            "resolutionStatus": "TruePositive",
            "impactStatus": "NoImpact",
            "summary": "done",
        },
    )
    admin.delete(f"/api/case/{tagged[1]['id']}")
    assert admin.delete(f"/api/case/{tagged[2]['id']}/force").status_code in (200, 204)
    merged = admin.post(f"/api/case/{tagged[3]['id']}/_merge/{tagged[4]['id']}")
    assert merged.status_code == 200, merged.text
    Case = dict[str, Any]
    queries: list[tuple[object, Callable[[Case], bool]]] = [
        ({"tags": "alpha"}, lambda c: "alpha" in c["tags"]),
        (
            {"_and": [{"status": "Open"}, {"tags": "alpha"}]},
            lambda c: c["status"] == "Open" and "alpha" in c["tags"],
        ),
        (
            {"_and": [{"_field": "tags", "_value": "beta"}, {"status": "Open"}]},
            lambda c: c["status"] == "Open" and "beta" in c["tags"],
        ),
        (
            {
                "_or": [
                    {"_and": [{"status": "Resolved"}, {"tags": "zeta"}]},
                    {"_and": [{"status": "Deleted"}, {"tags": "zeta"}]},
                ]
            },
            lambda c: c["status"] != "Open" and "zeta" in c["tags"],
        ),
        (
            {"_and": [{"tags": "alpha"}, {"tags": "gamma"}]},
            lambda c: {"alpha", "gamma"} <= set(c["tags"]),
        ),
        (
            {"_or": [{"tags": "alpha"}, {"status": "Deleted"}]},
            lambda c: "alpha" in c["tags"] or c["status"] == "Deleted",
        ),
    ]

    cases = admin.post("/api/case/_search", json={"range": "all"}).json()
    assert any("gamma" in c["tags"] for c in cases)
    for query, selects in queries:
        response = admin.post("/api/case/_search", json={"query": query})
        wanted = sum(1 for c in cases if selects(c))
        assert int(response.headers["X-Total"]) == wanted, query
        assert len(response.json()) == wanted, query


def test_concurrent_tag_writes_keep_the_tag_totals(server: LiveServer) -> None:
    """Creations, tag changes and closes at once, sharing tags given in
    every order: none fails (no deadlock on the counter rows) and the
    totals still agree with the cases."""
    clients = [server.client() for _ in range(8)]
    orders = [["red", "green", "blue"], ["blue", "red"], ["green", "blue", "red"]]

    def work(index: int) -> None:
        client = clients[index % 8]
        tags = orders[index % 3]
        response = client.post(
            "/api/case", json={"title": f"t{index}", "description": "d", "tags": tags}
        )
        assert response.status_code == 201, response.text
        case_id = response.json()["id"]
        changed = client.patch(f"/api/case/{case_id}", json={"tags": tags[::-1][:2]})
        assert changed.status_code == 200, changed.text
        if index % 2:
            closed = client.patch(
                f"/api/case/{case_id}",
                json={
                    "status": "Resolved",
                    "resolutionStatus": "Other",
                    "impactStatus": "NoImpact",
                    "summary": "done",
                },
            )
            assert closed.status_code == 200, closed.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(48)))

    admin = clients[0]
    cases = admin.post("/api/case/_search", json={"range": "all"}).json()
    for status in ("Open", "Resolved"):
        for tag in ("red", "green", "blue"):
            query = {"_and": [{"status": status}, {"tags": tag}]}
            found = admin.post("/api/case/_search", json={"query": query})
            wanted = sum(1 for c in cases if c["status"] == status and tag in c["tags"])
            assert int(found.headers["X-Total"]) == wanted, (status, tag)


def test_a_deadlock_answers_409_and_saves_nothing(
    server: LiveServer, admin: httpx.Client
) -> None:
    """PostgreSQL aborts one of two transactions that wait for each other;
    the request it aborts answers 409 ConflictError, not 500."""
    db = server.platform.db
    if db.is_sqlite:
        return  # one writer at a time: SQLite cannot deadlock
    closing = {
        "status": "Resolved",
        "resolutionStatus": "Other",
        "impactStatus": "NoImpact",
        "summary": "done",
    }
    closed = admin.patch(f"/api/case/{_case(admin)['id']}", json=closing)
    assert closed.status_code == 200  # both counter rows now exist
    case = _case(admin, title="to close")
    counter = "UPDATE case_count SET total = total WHERE status = :status"
    with db.engine.connect() as other, other.begin():
        # Only the request's transaction looks for the deadlock, and loses.
        other.exec_driver_sql("SET LOCAL deadlock_timeout = '60s'")
        other.execute(sa.text(counter), {"status": "Resolved"})
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # The close takes the Open counter, then waits for Resolved.
            pending = pool.submit(admin.patch, f"/api/case/{case['id']}", json=closing)
            time.sleep(0.5)
            other.execute(sa.text(counter), {"status": "Open"})
            response = pending.result(timeout=30)

    assert response.status_code == 409, response.text
    assert response.json()["type"] == "ConflictError"
    assert admin.get(f"/api/case/{case['id']}").json()["status"] == "Open"


def _kill_pooled_connections(engine: sa.Engine) -> None:
    """Ends, on the server side, every connection idle in ``engine``'s pool."""
    held = [engine.connect() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
    pids = [
        conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for conn in held
    ]
    for conn in held:
        conn.close()
    terminate_backends(pids)


def test_a_lost_database_connection_answers_503_once_then_recovers(
    server: LiveServer, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL restart under pooled connections costs one 503 per pool,
    with nothing saved; the pool then replaces its connections."""
    db = server.platform.db
    if db.is_sqlite:
        return  # a file, no connection to lose
    case = _case(admin, title="before the restart")
    # The connections were used a moment ago, so none is pinged first.
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 1e9)
    _kill_pooled_connections(db._reader)
    _kill_pooled_connections(db.engine)

    read = admin.get(f"/api/case/{case['id']}")
    assert read.status_code == 503, read.text
    assert read.json()["type"] == "ServiceUnavailable"
    assert admin.get(f"/api/case/{case['id']}").status_code == 200

    lost = admin.patch(f"/api/case/{case['id']}", json={"title": "lost"})
    assert lost.status_code == 503, lost.text
    assert admin.get(f"/api/case/{case['id']}").json()["title"] == "before the restart"
    saved = admin.patch(f"/api/case/{case['id']}", json={"title": "after"})
    assert saved.status_code == 200, saved.text
    assert admin.get(f"/api/case/{case['id']}").json()["title"] == "after"
