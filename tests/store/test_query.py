"""The query DSL compiled to SQL, run on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cerana.domain.errors import InvalidQuery
from cerana.store import query as query_module
from cerana.store import tables
from cerana.store.db import Database
from cerana.store.models import CASE, LOG, OBSERVABLE, TASK, USER, Model
from cerana.store.query import (
    MAX_CLAUSES,
    compile_query,
    order_by_clauses,
    parse_range,
    parse_sort,
    search,
)

ORG = "acme"
DAY = 86_400_000
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


# -- building rows -------------------------------------------------------------


def case_row(number: int, **values: Any) -> dict[str, Any]:
    """A complete case row; ``values`` override the defaults."""
    row: dict[str, Any] = {
        "id": f"case{number}",
        "number": number,
        "title": f"Case {number}",
        "description": "",
        "severity": 2,
        "owner": "alice",
        "start_date": T0,
        "end_date": None,
        "flag": False,
        "tlp": 2,
        "status": "Open",
        "resolution_status": None,
        "impact_status": None,
        "summary": None,
        "metrics": {},
        "custom_fields": {},
        "tags": [],
        "organisation": ORG,
        "created_by": "alice",
        "created_at": T0,
        "version": 1,
    }
    row.update(values)
    return row


_CUSTOM_COLUMNS = {
    "string": "string_value",
    "number": "number_value",
    "boolean": "boolean_value",
    "date": "date_value",
}


def insert_cases(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Inserts cases with their tag and custom field side rows."""
    for row in rows:
        conn.execute(tables.case.insert(), [row])
        tags = [{"case_id": row["id"], "tag": tag} for tag in row["tags"]]
        if tags:
            conn.execute(tables.case_tag.insert(), tags)
        for reference, value in row["custom_fields"].items():
            ((kind, content),) = value.items()
            conn.execute(
                tables.case_custom_field.insert(),
                [
                    {
                        "case_id": row["id"],
                        "reference": reference,
                        "type": kind,
                        _CUSTOM_COLUMNS[kind]: content,
                    }
                ],
            )


def record(**values: Any) -> dict[str, Any]:
    return {
        "organisation": ORG,
        "created_by": "alice",
        "created_at": T0,
        "version": 1,
        **values,
    }


CASES = [
    case_row(
        1,
        title="Phishing campaign",
        description="Mail with a link to 100 pages",
        severity=1,
        tlp=1,
        tags=["phishing", "mail"],
        metrics={"time": 5},
        custom_fields={"businessUnit": {"string": "HR"}, "score": {"number": 7}},
    ),
    case_row(
        2,
        title="Ransomware outbreak",
        description="Files encrypted 100%",
        severity=3,
        tlp=3,
        status="Resolved",
        resolution_status="TruePositive",
        owner="bob",
        tags=["malware"],
        start_date=T0 + DAY,
        end_date=T0 + 3 * DAY,
        flag=True,
        metrics={"time": 12},
    ),
    case_row(
        3,
        title="Suspicious login",
        description="user_name from new_country",
        summary="Benign",
        start_date=T0 + 2 * DAY,
    ),
    case_row(
        5,
        title="Deleted phishing",
        description="userXname",
        status="Deleted",
        tags=["phishing"],
        start_date=T0 + 3 * DAY,
        metrics={"time": None},
    ),
    case_row(9, title="Phishing elsewhere", organisation="other", tags=["phishing"]),
]


@pytest.fixture
def cases(db: Database) -> Iterator[Database]:
    with db.write() as conn:
        insert_cases(conn, CASES)
    yield db


def found(db: Database, model: Model, query: object, **options: Any) -> list[str]:
    """Ids of the rows ``query`` finds, sorted by id."""
    with db.read() as conn:
        rows, total = search(
            conn,
            model,
            organisation=ORG,
            query=query,
            range_=(0, None),
            sort=[],
            **options,
        )
    ids = sorted(row["id"] for row in rows)
    assert total == len(ids)
    return ids


# -- range and sort --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, (0, 10), id="absent-is-first-ten"),
        pytest.param("0-10", (0, 10), id="first-page"),
        pytest.param("5-15", (5, 10), id="offset-and-limit"),
        pytest.param("all", (0, None), id="all"),
        pytest.param("10", (10, 10), id="no-end-gives-ten"),
        pytest.param("10-5", (10, 10), id="end-before-start-gives-ten"),
        pytest.param("10-10", (10, 10), id="empty-range-gives-ten"),
        pytest.param("0-abc", (0, 10), id="non-numeric-end-gives-ten"),
        pytest.param("0-50000", (0, 10_000), id="page-capped"),
    ],
)
def test_parse_range_reads_thehive_ranges(
    raw: object, expected: tuple[int, int | None]
) -> None:
    assert parse_range(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("-5-10", id="negative-start"),
        pytest.param("abc-10", id="non-numeric-start"),
        pytest.param("", id="empty"),
        pytest.param(5, id="not-a-string"),
    ],
)
def test_parse_range_refuses_a_bad_start(raw: object) -> None:
    with pytest.raises(InvalidQuery, match="Invalid range"):
        parse_range(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, [], id="absent"),
        pytest.param("-startDate", [("startDate", True)], id="single-string"),
        pytest.param(
            ["+title", "severity", "-title"],
            [("title", False), ("severity", False)],
            id="signs-and-duplicates",
        ),
        pytest.param(["", "tlp"], [("tlp", False)], id="empty-item-skipped"),
    ],
)
def test_parse_sort_reads_signed_fields(
    raw: object, expected: list[tuple[str, bool]]
) -> None:
    assert parse_sort(raw) == expected


@pytest.mark.parametrize("raw", [[1], ["+"], [None], [["title"]]])
def test_parse_sort_refuses_non_field_items(raw: object) -> None:
    with pytest.raises(InvalidQuery, match="Invalid sort field"):
        parse_sort(raw)


# -- operators -----------------------------------------------------------------

EVERY_CASE = ["case1", "case2", "case3", "case5"]

OPERATOR_CASES = [
    ({}, EVERY_CASE, "empty-object-matches-all"),
    ({"_any": "whatever"}, EVERY_CASE, "any"),
    ({"status": "Open"}, ["case1", "case3"], "field-equality"),
    ({"_field": "status", "_value": "Resolved"}, ["case2"], "field-value-pair"),
    ({"title": "PHISHING"}, ["case1", "case5"], "text-equality-is-substring"),
    ({"owner": "ali"}, [], "user-equality-is-exact"),
    ({"severity": 3}, ["case2"], "number-equality"),
    ({"severity": "3"}, ["case2"], "number-given-as-string"),
    ({"flag": True}, ["case2"], "boolean-equality"),
    ({"flag": "true"}, ["case2"], "boolean-given-as-string"),
    ({"_gt": {"severity": 1}}, ["case2", "case3", "case5"], "gt"),
    ({"_gte": {"severity": 3}}, ["case2"], "gte"),
    ({"_lt": {"severity": 2}}, ["case1"], "lt"),
    ({"_lte": {"tlp": 2}}, ["case1", "case3", "case5"], "lte"),
    ({"_gt": {"severity": 2.5}}, ["case2"], "gt-fractional-on-integer-column"),
    (
        {"_gt": {"startDate": "20231116T000000+0000"}},
        ["case3", "case5"],
        "gt-date-string",
    ),
    (
        {"_between": {"_field": "startDate", "_from": T0, "_to": T0 + 2 * DAY}},
        ["case2"],
        "between-excludes-both-ends",
    ),
    (
        {"_in": {"_field": "status", "_values": ["Resolved", "Deleted"]}},
        ["case2", "case5"],
        "in",
    ),
    (
        {"_in": {"_field": "tags", "_values": ["mail", "malware"]}},
        ["case1", "case2"],
        "in-tags",
    ),
    (
        {"_in": {"_field": "title", "_values": ["ransom", "login"]}},
        ["case2", "case3"],
        "in-text",
    ),
    ({"_in": {"_field": "severity", "_values": []}}, [], "in-nothing"),
    ({"_contains": "endDate"}, ["case2"], "contains-date"),
    ({"_contains": "tags"}, ["case1", "case2", "case5"], "contains-any-tag"),
    ({"_contains": "customFields.businessUnit"}, ["case1"], "contains-custom-field"),
    ({"_contains": "customFields"}, ["case1"], "contains-any-custom-field"),
    ({"_contains": "metrics.time"}, ["case1", "case2"], "contains-metric-not-null"),
    (
        {"_not": {"_contains": "resolutionStatus"}},
        ["case1", "case3", "case5"],
        "not-contains",
    ),
    (
        {"_not": {"resolutionStatus": "TruePositive"}},
        ["case1", "case3", "case5"],
        "not-equal-includes-missing-values",
    ),
    (
        {"_not": {"summary": "benign"}},
        ["case1", "case2", "case5"],
        "not-text-includes-null",
    ),
    ({"_like": {"_field": "title", "_value": "PHISH"}}, ["case1", "case5"], "like"),
    (
        {"_like": {"_field": "description", "_value": "100%"}},
        ["case2"],
        "like-escapes-percent",
    ),
    (
        {"_like": {"_field": "description", "_value": "user_name"}},
        ["case3"],
        "like-escapes-underscore",
    ),
    ({"_like": {"_field": "tags", "_value": "PHISH"}}, ["case1", "case5"], "like-tags"),
    (
        {"_like": {"_field": "severity", "_value": 3}},
        ["case2"],
        "like-number-is-equality",
    ),
    ({"tags": "phishing"}, ["case1", "case5"], "tag-equality"),
    ({"tags": "Phishing"}, [], "tag-equality-is-exact"),
    ({"_not": {"tags": "phishing"}}, ["case2", "case3"], "not-tag"),
    ({"_id": "case2"}, ["case2"], "id"),
    ({"id": "case3"}, ["case3"], "id-as-field"),
    ({"_type": "case"}, EVERY_CASE, "type-of-this-model"),
    ({"_type": "case_task"}, [], "type-of-another-model"),
    ({"customFields.businessUnit.string": "HR"}, ["case1"], "custom-string"),
    ({"_gt": {"customFields.score.number": 5}}, ["case1"], "custom-number-gt"),
    ({"_lt": {"customFields.score.integer": 5}}, [], "custom-integer-lt"),
    (
        {"_not": {"customFields.score.number": 7}},
        ["case2", "case3", "case5"],
        "not-custom",
    ),
    ({"_gt": {"metrics.time": 10}}, ["case2"], "metric-gt"),
    ({"metrics.time": 5}, ["case1"], "metric-equality"),
    ({"_not": {"metrics.time": 5}}, ["case2", "case3", "case5"], "not-metric"),
    ({"createdBy": "alice"}, EVERY_CASE, "meta-attribute"),
    ({"_and": [{"status": "Open"}, {"tags": "phishing"}]}, ["case1"], "and"),
    ({"_or": [{"severity": 3}, {"tags": "mail"}]}, ["case1", "case2"], "or"),
    ({"_and": []}, EVERY_CASE, "empty-and-matches-all"),
    ({"_or": []}, EVERY_CASE, "empty-or-matches-all-as-elasticsearch"),
    ({"_not": {"status": "Open"}}, ["case2", "case5"], "not"),
    ({"_string": "status:Open"}, ["case1", "case3"], "string-field"),
    ({"_string": "phishing"}, ["case1", "case5"], "string-bare-word-in-text"),
    ({"_string": "BENIGN"}, ["case3"], "string-bare-word-any-text-field"),
    ({"_string": "tags:phishing AND NOT status:Deleted"}, ["case1"], "string-and-not"),
    ({"_string": "tags:phish*"}, ["case1", "case5"], "string-prefix-tag"),
    (
        {"_string": "owner:al*"},
        ["case1", "case3", "case5"],
        "string-prefix-exact-field",
    ),
    ({"_string": "owner:AL*"}, [], "string-prefix-exact-field-keeps-case"),
    ({"_string": 'title:"suspicious login"'}, ["case3"], "string-phrase"),
    (
        {"_string": "severity:[2 TO 3]"},
        ["case2", "case3", "case5"],
        "string-inclusive-range",
    ),
    ({"_string": "severity:{2 TO 3]"}, ["case2"], "string-half-open-range"),
    ({"_string": "severity:[* TO 1]"}, ["case1"], "string-open-range"),
    (
        {"_string": "(tags:mail OR tags:malware) -status:Resolved"},
        ["case1"],
        "string-group",
    ),
    (
        {"_string": "title:(ransomware OR login)"},
        ["case2", "case3"],
        "string-field-group",
    ),
    ({"_string": "endDate:*"}, ["case2"], "string-field-exists"),
    ({"_string": "*"}, EVERY_CASE, "string-star"),
    ({"_string": "  "}, EVERY_CASE, "string-blank"),
    ({"_string": "status:Open && severity:1"}, ["case1"], "string-ampersands"),
    (
        {"_string": "status:Open || severity:3"},
        ["case1", "case2", "case3"],
        "string-pipes",
    ),
    ({"_string": "status:Open !tags:mail"}, ["case3"], "string-bang"),
    ({"_string": r"description:100\%"}, ["case2"], "string-escaped-character"),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(query, expected, id=name)
        for query, expected, name in OPERATOR_CASES
    ],
)
def test_operator_selects_the_expected_cases(
    cases: Database, query: object, expected: list[str]
) -> None:
    assert found(cases, CASE, query) == expected


def test_search_never_returns_another_organisation(cases: Database) -> None:
    assert "case9" not in found(cases, CASE, {"tags": "phishing"})


def test_scope_narrows_the_search(cases: Database) -> None:
    scope = tables.case.c.status != "Deleted"

    assert found(cases, CASE, {"tags": "phishing"}, scope=scope) == ["case1"]


def test_page_and_total_are_separate(cases: Database) -> None:
    with cases.read() as conn:
        rows, total = search(
            conn,
            CASE,
            organisation=ORG,
            query={},
            range_=(1, 2),
            sort=[("startDate", False)],
        )

    assert [row["id"] for row in rows] == ["case2", "case3"]
    assert total == 4


# -- parents, children and attachments -------------------------------------------


@pytest.fixture
def family(cases: Database) -> Database:
    with cases.write() as conn:
        conn.execute(
            tables.attachment.insert(),
            [
                {
                    "id": "a" * 64,
                    "sha1": "b" * 40,
                    "md5": "c" * 32,
                    "size": 3,
                    "created_at": T0,
                }
            ],
        )
        conn.execute(
            tables.task.insert(),
            [
                record(
                    id="task1",
                    case_id="case1",
                    title="Check mails",
                    status="Waiting",
                    flag=False,
                    order=0,
                    group="default",
                ),
                record(
                    id="task2",
                    case_id="case2",
                    title="Restore",
                    status="Completed",
                    flag=False,
                    order=0,
                    group="default",
                ),
            ],
        )
        conn.execute(
            tables.task_log.insert(),
            [
                record(
                    id="log1",
                    task_id="task2",
                    case_id="case2",
                    message="Restored",
                    start_date=T0,
                    status="Ok",
                    owner="bob",
                )
            ],
        )
        conn.execute(
            tables.observable.insert(),
            [
                record(
                    id="obs1",
                    case_id="case1",
                    data_type="ip",
                    data="1.2.3.4",
                    data_key="k1",
                    start_date=T0,
                    tlp=2,
                    ioc=True,
                    sighted=False,
                    status="Ok",
                    reports={},
                    tags=["c2"],
                    attachment_id=None,
                    attachment_name=None,
                    attachment_content_type=None,
                ),
                record(
                    id="obs2",
                    case_id="case2",
                    data_type="file",
                    data=None,
                    data_key="k2",
                    start_date=T0,
                    tlp=2,
                    ioc=False,
                    sighted=False,
                    status="Ok",
                    reports={},
                    tags=[],
                    attachment_id="a" * 64,
                    attachment_name="report.pdf",
                    attachment_content_type="application/pdf",
                ),
            ],
        )
        conn.execute(
            tables.observable_tag.insert(), [{"observable_id": "obs1", "tag": "c2"}]
        )
    return cases


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        pytest.param(
            TASK,
            {"_parent": {"_type": "case", "_query": {"tags": "phishing"}}},
            ["task1"],
            id="task-parent-query",
        ),
        pytest.param(
            TASK,
            {"_parent": {"_type": "case", "_id": "case2"}},
            ["task2"],
            id="task-parent-id",
        ),
        pytest.param(
            LOG,
            {"_parent": {"_type": "case_task", "_query": {"status": "Completed"}}},
            ["log1"],
            id="log-parent-query",
        ),
        pytest.param(
            CASE,
            {"_child": {"_type": "case_task", "_query": {"status": "Completed"}}},
            ["case2"],
            id="case-child-task",
        ),
        pytest.param(
            CASE,
            {"_child": {"_type": "case_artifact", "_query": {"tags": "c2"}}},
            ["case1"],
            id="case-child-observable-tag",
        ),
        pytest.param(
            CASE,
            {
                "_child": {
                    "_type": "case_task",
                    "_query": {"_parent": {"_type": "case", "_query": {"severity": 3}}},
                }
            },
            ["case2"],
            id="child-of-parent-of-child",
        ),
        pytest.param(
            TASK,
            {"_child": {"_type": "case_task_log", "_query": {"message": "restored"}}},
            ["task2"],
            id="task-child-log",
        ),
        pytest.param(
            OBSERVABLE, {"attachment.hashes": "b" * 40}, ["obs2"], id="hash-sha1"
        ),
        pytest.param(
            OBSERVABLE,
            {"attachment.hashes": "C" * 32},
            ["obs2"],
            id="hash-md5-any-case",
        ),
        pytest.param(
            OBSERVABLE,
            {"_not": {"attachment.hashes": "a" * 64}},
            ["obs1"],
            id="not-hash",
        ),
        pytest.param(
            OBSERVABLE,
            {"attachment.name": "report.pdf"},
            ["obs2"],
            id="attachment-name",
        ),
        pytest.param(
            OBSERVABLE, {"_contains": "attachment.id"}, ["obs2"], id="has-attachment"
        ),
        pytest.param(OBSERVABLE, {"ioc": True}, ["obs1"], id="observable-ioc"),
    ],
)
def test_related_entities_are_searched_through_subqueries(
    family: Database, model: Model, query: object, expected: list[str]
) -> None:
    assert found(family, model, query) == expected


# -- errors ------------------------------------------------------------------------


def nested_not(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"status": "Open"}
    for _ in range(levels):
        query = {"_not": query}
    return query


INVALID_QUERIES = [
    ([], "expected an object", "list-instead-of-object"),
    ("status", "expected an object", "string-instead-of-object"),
    (None, "expected an object", "null"),
    ({"_foo": 1}, "Unknown query operator '_foo'", "unknown-operator"),
    ({"colour": "red"}, "Unknown field 'colour' in case", "unknown-field"),
    ({"status": "Open", "tlp": 1}, "expected one operator", "two-fields"),
    (
        {"severity": "high"},
        "Invalid value 'high' for field 'severity' in case",
        "bad-number",
    ),
    ({"_gt": {"startDate": "yesterday"}}, "field 'startDate'", "bad-date"),
    ({"status": None}, "Invalid value None for field 'status'", "null-value"),
    ({"status": ["Open"]}, "expected a string, number or boolean", "list-value"),
    ({"status": "a\x00b"}, "NUL", "nul-character"),
    ({"_and": {"status": "Open"}}, "Invalid _and: expected a list", "and-not-a-list"),
    ({"_or": [{"status": "Open"}, 3]}, "expected an object", "or-with-a-number"),
    ({"_not": [{"status": "Open"}]}, "Invalid _not", "not-with-a-list"),
    ({"_gt": {"severity": 1, "tlp": 1}}, "Invalid _gt", "gt-two-fields"),
    (
        {"_between": {"_field": "severity", "_from": 1}},
        "Invalid _between",
        "between-no-to",
    ),
    (
        {"_in": {"_field": "severity", "_values": 1}},
        "_values must be a list",
        "in-not-a-list",
    ),
    ({"_like": {"_field": "title"}}, "Invalid _like", "like-no-value"),
    (
        {"_contains": "metrics"},
        "cannot be tested with _contains",
        "contains-whole-json",
    ),
    ({"customFields.score": 7}, "cannot be searched", "custom-field-without-type"),
    ({"customFields.score.colour": 7}, "Unknown field", "custom-field-unknown-type"),
    ({'metrics.a"b': 1}, "Invalid metric name", "metric-name-with-quote"),
    (
        {"_parent": {"_type": "case", "_id": "x"}},
        "not the parent of case",
        "case-has-no-parent",
    ),
    (
        {"_child": {"_type": "case_task_log", "_query": {}}},
        "not a child of case",
        "grandchild",
    ),
    ({"_child": {"_type": "case_task"}}, "Invalid _child", "child-without-query"),
    ({"_id": {"x": 1}}, "Invalid value", "id-object"),
    ({"_type": 3}, "Invalid _type", "type-not-a-string"),
    (
        {"_string": "status:"},
        "field 'status' has no value",
        "string-field-without-value",
    ),
    (
        {"_string": "(status:Open"},
        "parenthesis is not closed",
        "string-open-parenthesis",
    ),
    ({"_string": "status:Open)"}, "unexpected ')'", "string-stray-parenthesis"),
    ({"_string": "te?t"}, "not supported", "string-single-wildcard"),
    ({"_string": "title:fo*o"}, "only a trailing", "string-inner-wildcard"),
    ({"_string": '"open'}, "phrase is not closed", "string-open-phrase"),
    ({"_string": "severity:[1 TO]"}, "range must read", "string-bad-range"),
    ({"_string": "AND"}, "unexpected 'AND'", "string-lone-operator"),
    ({"_string": "severity:x*"}, "not text", "string-wildcard-on-number"),
    ({"_string": "[1 TO 2]"}, "range needs a field", "string-range-without-field"),
    ({"_string": "colour:red"}, "Unknown field 'colour'", "string-unknown-field"),
    ({"_string": 3}, "Invalid _string", "string-not-a-string"),
    (nested_not(40), "nested deeper than 32", "too-deep"),
    (
        {"_or": [{"severity": 1}] * (MAX_CLAUSES + 1)},
        f"more than {MAX_CLAUSES} clauses",
        "too-many-clauses",
    ),
    ({"_string": "NOT " * 40 + "x"}, "nested deeper than 32", "string-too-deep"),
]


@pytest.mark.parametrize(
    ("query", "message"),
    [pytest.param(query, message, id=name) for query, message, name in INVALID_QUERIES],
)
def test_invalid_query_is_refused_with_a_reason(query: object, message: str) -> None:
    with pytest.raises(InvalidQuery) as raised:
        compile_query(CASE, query)

    assert message in raised.value.message


def test_sensitive_user_attributes_cannot_be_searched() -> None:
    with pytest.raises(InvalidQuery, match="Unknown field 'password' in user"):
        compile_query(USER, {"password": "x"})


def test_parent_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidQuery, match="'case' is not the parent of case_task_log"):
        compile_query(LOG, {"_parent": {"_type": "case", "_query": {}}})


# -- sort ---------------------------------------------------------------------------


def sorted_ids(db: Database, sort: list[tuple[str, bool]]) -> list[str]:
    with db.read() as conn:
        rows, _ = search(
            conn, CASE, organisation=ORG, query={}, range_=(0, None), sort=sort
        )
    return [row["id"] for row in rows]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        pytest.param(
            [], ["case5", "case3", "case2", "case1"], id="id-descending-by-default"
        ),
        pytest.param(
            [("severity", True), ("startDate", False)],
            ["case2", "case3", "case5", "case1"],
            id="two-keys",
        ),
        pytest.param(
            [("endDate", False)],
            ["case2", "case5", "case3", "case1"],
            id="missing-last-ascending",
        ),
        pytest.param(
            [("endDate", True)],
            ["case2", "case5", "case3", "case1"],
            id="missing-last-descending",
        ),
        pytest.param(
            [("metrics.time", True)], ["case2", "case1", "case5", "case3"], id="metric"
        ),
    ],
)
def test_sort_orders_rows(
    cases: Database, sort: list[tuple[str, bool]], expected: list[str]
) -> None:
    assert sorted_ids(cases, sort) == expected


@pytest.mark.parametrize(
    "name", ["tags", "customFields", "customFields.score.number", "colour", "metrics"]
)
def test_sort_refuses_fields_without_an_order(name: str) -> None:
    with pytest.raises(InvalidQuery, match=name):
        order_by_clauses(CASE, [(name, False)])


# -- properties ---------------------------------------------------------------------

STATUSES = ["Open", "Resolved", "Deleted"]
OWNERS = ["alice", "bob", "carol"]
TAGS = ["phishing", "mail", "malware", "apt", "ioc"]
WORDS = ["phish", "mail", "login", "Ransom", "server", "x"]
DATES = [T0 + offset * DAY for offset in range(-1, 8)]

DATASET = [
    case_row(
        1,
        title="Phishing mail",
        severity=1,
        tlp=0,
        owner="alice",
        tags=["phishing", "mail"],
        start_date=DATES[1],
    ),
    case_row(
        2,
        title="Ransomware on server",
        severity=3,
        tlp=3,
        owner="bob",
        status="Resolved",
        resolution_status="TruePositive",
        tags=["malware"],
        start_date=DATES[2],
        end_date=DATES[4],
        flag=True,
    ),
    case_row(
        3,
        title="Odd login",
        severity=2,
        tlp=2,
        owner="carol",
        tags=[],
        start_date=DATES[3],
        summary="phish kit found",
    ),
    case_row(
        4,
        title="APT mail server",
        severity=3,
        tlp=1,
        owner="alice",
        tags=["apt", "mail", "ioc"],
        start_date=DATES[5],
        status="Deleted",
    ),
    case_row(
        5,
        title="Login from abroad",
        severity=1,
        tlp=2,
        owner="bob",
        tags=["ioc"],
        start_date=DATES[6],
        status="Resolved",
        resolution_status="FalsePositive",
        end_date=DATES[7],
    ),
    case_row(
        6,
        title="x",
        severity=2,
        tlp=3,
        owner="carol",
        tags=["phishing"],
        start_date=DATES[0],
        flag=True,
    ),
]

_FIELDS = {
    "status": "status",
    "owner": "owner",
    "severity": "severity",
    "tlp": "tlp",
    "startDate": "start_date",
    "endDate": "end_date",
    "flag": "flag",
    "title": "title",
    "summary": "summary",
    "resolutionStatus": "resolution_status",
    "tags": "tags",
}
_TEXT = {"title", "summary"}

_compare = st.sampled_from(["_gt", "_gte", "_lt", "_lte"])
_numbers = st.tuples(st.sampled_from(["severity", "tlp"]), st.integers(0, 4))
_leaves = st.one_of(
    st.sampled_from(STATUSES).map(lambda value: {"status": value}),
    st.sampled_from(OWNERS).map(lambda value: {"_field": "owner", "_value": value}),
    _numbers.map(lambda pair: {pair[0]: pair[1]}),
    st.tuples(_compare, _numbers).map(lambda t: {t[0]: {t[1][0]: t[1][1]}}),
    st.tuples(_compare, st.sampled_from(DATES)).map(
        lambda t: {t[0]: {"startDate": t[1]}}
    ),
    st.tuples(st.sampled_from(DATES), st.sampled_from(DATES)).map(
        lambda t: {"_between": {"_field": "startDate", "_from": t[0], "_to": t[1]}}
    ),
    st.lists(st.sampled_from(TAGS), max_size=3).map(
        lambda values: {"_in": {"_field": "tags", "_values": values}}
    ),
    st.lists(st.sampled_from(STATUSES), max_size=2).map(
        lambda values: {"_in": {"_field": "status", "_values": values}}
    ),
    st.sampled_from(["endDate", "tags", "resolutionStatus", "summary"]).map(
        lambda name: {"_contains": name}
    ),
    st.sampled_from(TAGS).map(lambda tag: {"tags": tag}),
    st.sampled_from(WORDS).map(lambda word: {"title": word}),
    st.sampled_from(WORDS).map(
        lambda word: {"_like": {"_field": "title", "_value": word}}
    ),
    st.booleans().map(lambda value: {"flag": value}),
    st.sampled_from([row["id"] for row in DATASET] + ["nope"]).map(
        lambda i: {"_id": i}
    ),
    st.sampled_from(STATUSES).map(lambda value: {"_string": f"status:{value}"}),
    st.sampled_from(WORDS).map(lambda word: {"_string": word}),
    st.just({}),
)
QUERIES = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"_and": items}),
        st.lists(children, max_size=3).map(lambda items: {"_or": items}),
        children.map(lambda query: {"_not": query}),
    ),
    max_leaves=8,
)


def reference_match(row: dict[str, Any], query: dict[str, Any]) -> bool:
    """What the query means, evaluated in plain Python: the test oracle."""
    if not query:
        return True
    if set(query) == {"_field", "_value"}:
        return reference_equals(row, query["_field"], query["_value"])
    ((key, value),) = query.items()
    if key == "_and":
        return all(reference_match(row, item) for item in value)
    if key == "_or":
        return not value or any(reference_match(row, item) for item in value)
    if key == "_not":
        return not reference_match(row, value)
    if key in ("_gt", "_gte", "_lt", "_lte"):
        ((name, bound),) = value.items()
        stored = row[_FIELDS[name]]
        return stored is not None and _OPS[key](stored, bound)
    if key == "_between":
        stored = row[_FIELDS[value["_field"]]]
        return bool(value["_from"] < stored < value["_to"])
    if key == "_in":
        return any(
            reference_equals(row, value["_field"], item) for item in value["_values"]
        )
    if key == "_contains":
        stored = row[_FIELDS[value]]
        return bool(stored) if value == "tags" else stored is not None
    if key == "_like":
        return reference_equals(row, value["_field"], value["_value"])
    if key == "_id":
        return bool(row["id"] == value)
    if key == "_string":
        return reference_string(row, value)
    return reference_equals(row, key, value)


_OPS = {
    "_gt": lambda a, b: a > b,
    "_gte": lambda a, b: a >= b,
    "_lt": lambda a, b: a < b,
    "_lte": lambda a, b: a <= b,
}


def reference_equals(row: dict[str, Any], name: str, value: Any) -> bool:
    stored = row[_FIELDS[name]]
    if name == "tags":
        return value in stored
    if name in _TEXT:
        return stored is not None and str(value).lower() in stored.lower()
    return bool(stored == value)


def reference_string(row: dict[str, Any], text: str) -> bool:
    if ":" in text:
        name, value = text.split(":")
        return reference_equals(row, name, value)
    return any(reference_equals(row, name, text) for name in ("title", "summary"))


@pytest.fixture
def dataset(db: Database) -> Database:
    with db.write() as conn:
        insert_cases(conn, DATASET)
    return db


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=QUERIES)
def test_sql_agrees_with_a_python_reference(
    dataset: Database, query: dict[str, Any]
) -> None:
    expected = sorted(row["id"] for row in DATASET if reference_match(row, query))

    assert found(dataset, CASE, query) == expected


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["Open", "phishing", "20231115T000000+0000", "case", "case_task"]),
)
_KEYS = st.one_of(
    st.sampled_from(
        [
            "_and",
            "_or",
            "_not",
            "_any",
            "_contains",
            "_gt",
            "_gte",
            "_lt",
            "_lte",
            "_between",
            "_in",
            "_like",
            "_string",
            "_id",
            "_type",
            "_parent",
            "_child",
            "_field",
            "_value",
            "_values",
            "_from",
            "_to",
            "_query",
            "status",
            "tags",
            "severity",
            "startDate",
            "title",
            "customFields.score.number",
            "metrics.time",
            "customFields.x",
            "attachment.hashes",
        ]
    ),
    st.text(max_size=8),
)
ARBITRARY_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEYS, children, max_size=3),
    ),
    max_leaves=12,
)


# Engines never connected: only their SQL compilers are used.
DIALECTS = [
    sa.create_engine("sqlite://").dialect,
    sa.create_engine("postgresql+psycopg://").dialect,
]


@settings(max_examples=300, deadline=None)
@given(query=ARBITRARY_JSON)
def test_arbitrary_json_compiles_or_raises_invalid_query(query: object) -> None:
    for model in (CASE, TASK, OBSERVABLE):
        try:
            condition = compile_query(model, query)
        except InvalidQuery:
            continue
        statement = sa.select(model.table.c.id).where(condition)
        for dialect in DIALECTS:
            statement.compile(dialect=dialect)


_LUCENE_PIECES = [
    "status:Open",
    "tags:phish*",
    'title:"odd login"',
    "(",
    ")",
    "AND",
    "OR",
    "NOT",
    "-",
    "!",
    "+",
    "*",
    "severity:[1 TO 3]",
    "severity:{* TO 2}",
    "owner:",
    "\\",
    '"',
    ":",
    "phishing",
    "endDate:*",
    "&&",
    "||",
    "title:(mail OR login)",
    "severity:x",
    "[",
    "]",
    "100%",
    "a_b",
]
STRING_QUERIES = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_LUCENE_PIECES), max_size=8).flatmap(
        lambda parts: st.sampled_from([" ".join(parts), "".join(parts)])
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=ARBITRARY_JSON | STRING_QUERIES.map(lambda text: {"_string": text}))
def test_any_query_that_compiles_also_runs(dataset: Database, query: object) -> None:
    try:
        compile_query(CASE, query)
    except InvalidQuery:
        return

    found(dataset, CASE, query)


@pytest.mark.parametrize("dense", [False, True], ids=["few-matches", "many-matches"])
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ([("startDate", True)], ["case5", "case1"]),
        ([("endDate", False), ("startDate", False)], ["case1", "case5"]),
    ],
)
def test_tag_search_sorts_alike_whichever_plan_it_takes(
    cases: Database,
    monkeypatch: pytest.MonkeyPatch,
    dense: bool,
    sort: list[tuple[str, bool]],
    expected: list[str],
) -> None:
    # Few matches: read through the tag index, sorted without an index;
    # many: walk the sort order and probe the tags per row.
    monkeypatch.setattr(query_module, "_DENSE_MATCHES", 0 if dense else 1000)
    with cases.read() as conn:
        rows, total = search(
            conn,
            CASE,
            organisation=ORG,
            query={"tags": "phishing"},
            range_=(0, None),
            sort=sort,
        )
        first, _ = search(
            conn,
            CASE,
            organisation=ORG,
            query={"tags": "phishing"},
            range_=(0, 1),
            sort=sort,
        )

    assert [row["id"] for row in rows] == expected
    assert total == 2
    assert [row["id"] for row in first] == expected[:1]
