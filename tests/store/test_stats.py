"""TheHive ``_stats`` aggregations computed in SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cerana.domain.errors import InvalidQuery
from cerana.store import tables
from cerana.store.db import Database
from cerana.store.models import CASE, TASK, Model
from cerana.store.stats import MAX_BUCKETS, compute_stats

ORG = "acme"
HOUR = 3_600_000
DAY = 24 * HOUR
WEEK = 7 * DAY
MONDAY = 1_704_067_200_000  # 2024-01-01T00:00Z, a Monday
FEBRUARY = MONDAY + 31 * DAY
MARCH = FEBRUARY + 29 * DAY
APRIL = MONDAY + 91 * DAY


def case_row(number: int, created: int, **values: Any) -> dict[str, Any]:
    """A complete case row created at ``created``; ``values`` override."""
    row: dict[str, Any] = {
        "id": f"case{number}",
        "number": number,
        "title": f"Case {number}",
        "description": "",
        "severity": 2,
        "owner": "alice",
        "start_date": created,
        "end_date": None,
        "flag": False,
        "tlp": 2,
        "status": "Open",
        "metrics": {},
        "custom_fields": {},
        "tags": [],
        "organisation": ORG,
        "created_by": "alice",
        "created_at": created,
        "version": 1,
    }
    row.update(values)
    return row


def resolved(number: int, created: int, duration: int, **values: Any) -> dict[str, Any]:
    return case_row(
        number, created, status="Resolved", end_date=created + duration, **values
    )


CASES = [
    case_row(1, MONDAY + 10 * HOUR, severity=1, tags=["phishing"], custom={"HR"}),
    # Sunday night still belongs to the week that began on Monday the 1st.
    case_row(2, MONDAY + 6 * DAY + 23 * HOUR, tags=["phishing", "mail"], custom={"HR"}),
    case_row(3, MONDAY + WEEK, severity=3, owner="bob"),
    resolved(
        4,
        MONDAY + 9 * DAY,
        2 * HOUR,
        owner="bob",
        tags=["malware"],
        flag=True,
        metrics={"hours": 4},
    ),
    resolved(
        5,
        FEBRUARY,
        10 * HOUR,
        severity=3,
        tags=["malware", "phishing"],
        metrics={"hours": 6},
        custom={"IT"},
    ),
    resolved(6, APRIL, 30 * HOUR, severity=1, owner="carol", metrics={"hours": None}),
    resolved(7, APRIL + DAY + 8 * HOUR, 90 * 60_000),
    resolved(8, APRIL + 2 * DAY + 13 * HOUR, 3 * DAY, owner="bob"),
    case_row(9, MONDAY, organisation="other", tags=["phishing"]),
]


@pytest.fixture
def cases(db: Database) -> Database:
    with db.write() as conn:
        for case in CASES:
            row = dict(case)
            units = row.pop("custom", set())
            conn.execute(tables.case.insert(), [row])
            for tag in row["tags"]:
                conn.execute(
                    tables.case_tag.insert(), [{"case_id": row["id"], "tag": tag}]
                )
            for unit in units:
                conn.execute(
                    tables.case_custom_field.insert(),
                    [
                        {
                            "case_id": row["id"],
                            "reference": "businessUnit",
                            "type": "string",
                            "string_value": unit,
                        }
                    ],
                )
    return db


def stats(
    db: Database,
    aggregations: object,
    query: object = None,
    model: Model = CASE,
    scope: sa.ColumnElement[bool] | None = None,
) -> dict[str, Any]:
    with db.read() as conn:
        return compute_stats(
            conn,
            model,
            organisation=ORG,
            query=query,
            aggregations=aggregations,
            scope=scope,
        )


COUNT = {"_agg": "count"}


# -- metrics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        pytest.param(COUNT, {"count": 8}, id="count"),
        pytest.param({"_agg": "count", "_name": "n"}, {"n": 8}, id="count-named"),
        pytest.param(
            {"_agg": "count", "_query": {"status": "Open"}},
            {"count": 3},
            id="count-filtered",
        ),
        pytest.param(
            {"_agg": "avg", "_field": "severity"}, {"avg_severity": 2.0}, id="avg"
        ),
        pytest.param(
            {"_agg": "min", "_field": "severity"}, {"min_severity": 1.0}, id="min"
        ),
        pytest.param(
            {"_agg": "max", "_field": "severity"}, {"max_severity": 3.0}, id="max"
        ),
        pytest.param(
            {"_agg": "sum", "_field": "severity"}, {"sum_severity": 16.0}, id="sum"
        ),
        pytest.param(
            {"_agg": "max", "_field": "createdAt"},
            {"max_createdAt": float(APRIL + 2 * DAY + 13 * HOUR)},
            id="max-date",
        ),
        pytest.param(
            {"_agg": "avg", "_field": "severity", "_query": {"owner": "bob"}},
            {"avg_severity": pytest.approx(7 / 3)},
            id="avg-filtered",
        ),
        pytest.param(
            {"_agg": "avg", "_field": "severity", "_query": {"owner": "nobody"}},
            {"avg_severity": 0},
            id="avg-of-nothing-is-zero",
        ),
        pytest.param(
            {"_agg": "sum", "_field": "metrics.hours"},
            {"sum_metrics.hours": 10.0},
            id="metric",
        ),
        pytest.param(
            {"_agg": "avg", "_field": "computed.handlingDurationInSeconds"},
            {"avg_computed.handlingDurationInSeconds": 83160.0},
            id="handling-seconds",
        ),
        pytest.param(
            {"_agg": "avg", "_field": "computed.handlingDurationInHours"},
            {"avg_computed.handlingDurationInHours": 23.0},
            id="handling-hours-truncated-per-case",
        ),
        pytest.param(
            {"_agg": "max", "_field": "computed.handlingDurationInDays"},
            {"max_computed.handlingDurationInDays": 3.0},
            id="handling-days",
        ),
    ],
)
def test_metric_aggregation(
    cases: Database, aggregation: object, expected: object
) -> None:
    assert stats(cases, [aggregation]) == expected


def test_line_chart_series_from_the_ui(cases: Database) -> None:
    series = {
        "_agg": "avg",
        "_name": "agg_1",
        "_field": "computed.handlingDurationInHours",
        "_query": {"_field": "status", "_value": "Resolved"},
    }

    assert stats(cases, [series]) == {"agg_1": 23.0}


def test_query_and_scope_restrict_every_aggregation(cases: Database) -> None:
    scope = tables.case.c.severity > 1

    result = stats(cases, [COUNT], query={"owner": "alice"}, scope=scope)

    assert result == {"count": 3}


# -- field buckets ---------------------------------------------------------------


def test_donut_example_from_the_reference(cases: Database) -> None:
    body = [
        {
            "_agg": "field",
            "_field": "status",
            "_select": [COUNT],
            "_order": ["-_count"],
            "_size": 10,
        },
        COUNT,
    ]

    result = stats(cases, body)

    assert result == {"Open": {"count": 3}, "Resolved": {"count": 5}, "count": 8}
    assert list(result) == ["Resolved", "Open", "count"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        pytest.param("owner", {"alice": 4, "bob": 3, "carol": 1}, id="user"),
        pytest.param(
            "severity", {"2": 4, "1": 2, "3": 2}, id="number-keys-are-strings"
        ),
        pytest.param("flag", {"false": 7, "true": 1}, id="boolean-keys"),
        pytest.param("tags", {"phishing": 3, "malware": 2, "mail": 1}, id="tags"),
        pytest.param(
            "customFields.businessUnit.string", {"HR": 2, "IT": 1}, id="custom-field"
        ),
        pytest.param("metrics.hours", {"4": 1, "6": 1}, id="metric"),
        pytest.param(
            "endDate",
            {
                str(FEBRUARY + 10 * HOUR): 1,
                str(MONDAY + 9 * DAY + 2 * HOUR): 1,
                str(APRIL + 30 * HOUR): 1,
                str(APRIL + DAY + 8 * HOUR + 90 * 60_000): 1,
                str(APRIL + 5 * DAY + 13 * HOUR): 1,
            },
            id="date",
        ),
    ],
)
def test_field_buckets_count_each_value(
    cases: Database, field: str, expected: dict[str, int]
) -> None:
    body = [{"_agg": "field", "_field": field, "_select": [COUNT]}]

    result = stats(cases, body)

    assert {key: bucket["count"] for key, bucket in result.items()} == expected
    # Most frequent first, ties by value.
    assert list(result) == sorted(expected, key=lambda key: (-expected[key], key))


@pytest.mark.parametrize(
    ("order", "size", "expected"),
    [
        pytest.param(
            ["_count"], 10, ["carol", "bob", "alice"], id="bare-count-is-ascending"
        ),
        pytest.param(["-_term"], 10, ["carol", "bob", "alice"], id="term-descending"),
        pytest.param(["+_term"], 10, ["alice", "bob", "carol"], id="term-ascending"),
        pytest.param(["-avg_severity"], 10, ["bob", "alice", "carol"], id="sub-metric"),
        pytest.param(["-_count"], 2, ["alice", "bob"], id="size-limits-buckets"),
    ],
)
def test_field_bucket_order(
    cases: Database, order: list[str], size: int, expected: list[str]
) -> None:
    body = [
        {
            "_agg": "field",
            "_field": "owner",
            "_order": order,
            "_size": size,
            "_select": [COUNT, {"_agg": "avg", "_field": "severity"}],
        }
    ]

    assert list(stats(cases, body)) == expected


def test_field_buckets_nest_with_their_own_filter(cases: Database) -> None:
    body = [
        {
            "_agg": "field",
            "_field": "status",
            "_select": [
                {"_agg": "field", "_field": "owner", "_select": [COUNT]},
                {"_agg": "count", "_name": "severe", "_query": {"severity": 3}},
            ],
        }
    ]

    result = stats(cases, body)

    assert result == {
        "Resolved": {
            "alice": {"count": 2},
            "bob": {"count": 2},
            "carol": {"count": 1},
            "severe": 1,
        },
        "Open": {"alice": {"count": 2}, "bob": {"count": 1}, "severe": 1},
    }


def test_tag_buckets_nest_a_field_aggregation(cases: Database) -> None:
    body = [
        {
            "_agg": "field",
            "_field": "tags",
            "_select": [{"_agg": "field", "_field": "status", "_select": [COUNT]}],
        }
    ]

    result = stats(cases, body)

    assert result["phishing"] == {"Open": {"count": 2}, "Resolved": {"count": 1}}
    assert result["malware"] == {"Resolved": {"count": 2}}


# -- time buckets ---------------------------------------------------------------


def histogram(
    interval: str, select: list[Any], fields: list[str] | None = None
) -> list[Any]:
    return [
        {
            "_agg": "time",
            "_fields": fields or ["createdAt"],
            "_interval": interval,
            "_select": select,
        }
    ]


def test_weekly_buckets_start_on_monday_and_fill_gaps(cases: Database) -> None:
    result = stats(cases, histogram("1w", [COUNT]))

    counts = {int(key): value["createdAt"]["count"] for key, value in result.items()}
    assert counts == {
        MONDAY: 2,
        MONDAY + WEEK: 2,
        **{MONDAY + week * WEEK: 0 for week in range(2, 4)},
        MONDAY + 4 * WEEK: 1,
        **{MONDAY + week * WEEK: 0 for week in range(5, 13)},
        APRIL: 3,
    }
    assert list(result) == [str(key) for key in sorted(counts)]


def test_monthly_buckets_follow_the_calendar(cases: Database) -> None:
    result = stats(cases, histogram("1M", [COUNT]))

    assert result == {
        str(MONDAY): {"createdAt": {"count": 4}},
        str(FEBRUARY): {"createdAt": {"count": 1}},
        str(MARCH): {"createdAt": {"count": 0}},
        str(APRIL): {"createdAt": {"count": 3}},
    }


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        pytest.param("1q", {MONDAY: 5, APRIL: 3}, id="quarter"),
        pytest.param("quarter", {MONDAY: 5, APRIL: 3}, id="named-quarter"),
        pytest.param("1y", {MONDAY: 8}, id="year"),
        pytest.param(
            "1d",
            {MONDAY + 91 * DAY: 1, MONDAY + 92 * DAY: 1, MONDAY + 93 * DAY: 1},
            id="day",
        ),
        pytest.param(
            "12h",
            {
                APRIL: 1,
                APRIL + 12 * HOUR: 0,
                APRIL + 36 * HOUR: 0,
                APRIL + DAY: 1,
                APRIL + 48 * HOUR: 0,
                APRIL + 60 * HOUR: 1,
            },
            id="hours",
        ),
    ],
)
def test_histogram_intervals(
    cases: Database, interval: str, expected: dict[int, int]
) -> None:
    query = {"_gte": {"createdAt": APRIL}} if interval in ("1d", "12h") else None
    with cases.read() as conn:
        result = compute_stats(
            conn,
            CASE,
            organisation=ORG,
            query=query,
            aggregations=histogram(interval, [COUNT]),
        )

    counts = {int(key): value["createdAt"]["count"] for key, value in result.items()}
    assert counts == expected


def test_bar_chart_example_from_the_reference(cases: Database) -> None:
    body = histogram("1w", [{"_agg": "field", "_field": "owner", "_select": [COUNT]}])

    result = stats(cases, body, query={"_lt": {"createdAt": MONDAY + 3 * WEEK}})

    assert result == {
        str(MONDAY): {"createdAt": {"alice": {"count": 2}}},
        str(MONDAY + WEEK): {"createdAt": {"bob": {"count": 2}}},
    }


def test_histogram_of_two_dates_merges_by_bucket(cases: Database) -> None:
    body = histogram("1y", [COUNT], fields=["createdAt", "endDate"])

    assert stats(cases, body) == {
        str(MONDAY): {"createdAt": {"count": 8}, "endDate": {"count": 5}}
    }


def test_histogram_leaves_a_date_without_that_bucket_empty(cases: Database) -> None:
    body = histogram("1w", [COUNT], fields=["createdAt", "endDate"])

    result = stats(cases, body)

    assert result[str(MONDAY)] == {"createdAt": {"count": 2}, "endDate": {}}
    assert result[str(MONDAY + WEEK)] == {
        "createdAt": {"count": 2},
        "endDate": {"count": 1},
    }


def test_gap_buckets_hold_empty_sub_results(cases: Database) -> None:
    select = [
        {"_agg": "avg", "_field": "severity"},
        {"_agg": "field", "_field": "owner", "_select": [COUNT]},
        {"_agg": "top", "_size": 1},
    ]

    result = stats(cases, histogram("1M", select))

    assert result[str(MARCH)] == {"createdAt": {"avg_severity": 0, "top": []}}
    assert result[str(FEBRUARY)]["createdAt"]["alice"] == {"count": 1}
    assert [row["id"] for row in result[str(FEBRUARY)]["createdAt"]["top"]] == ["case5"]


# -- top and category -------------------------------------------------------------


def test_top_returns_the_first_rows_in_order(cases: Database) -> None:
    body = [{"_agg": "top", "_size": 2, "_order": ["-severity", "+createdAt"]}]

    result = stats(cases, body)

    assert [row["id"] for row in result["top"]] == ["case3", "case5"]
    assert result["top"][0]["owner"] == "bob"


def test_categories_count_overlapping_subsets(cases: Database) -> None:
    body = [
        {
            "_agg": "category",
            "_categories": {
                "open": {"status": "Open"},
                "severe": {"_gte": {"severity": 3}},
            },
            "_select": [
                COUNT,
                {"_agg": "field", "_field": "owner", "_select": [COUNT]},
            ],
        }
    ]

    assert stats(cases, body) == {
        "open": {"count": 3, "alice": {"count": 2}, "bob": {"count": 1}},
        "severe": {"count": 2, "bob": {"count": 1}, "alice": {"count": 1}},
    }


def test_results_of_every_aggregation_are_merged(cases: Database) -> None:
    body = [
        COUNT,
        {"_agg": "max", "_field": "severity"},
        {"_agg": "field", "_field": "flag", "_select": [COUNT]},
        {"_agg": "top", "_size": 0},
    ]

    assert stats(cases, body) == {
        "count": 8,
        "max_severity": 3.0,
        "false": {"count": 7},
        "true": {"count": 1},
        "top": [],
    }


def test_stats_on_an_empty_table(db: Database) -> None:
    body = [COUNT, {"_agg": "avg", "_field": "order"}, *histogram("1w", [COUNT])]

    assert stats(db, body, model=TASK) == {"count": 0, "avg_order": 0}


# -- errors ---------------------------------------------------------------------


INVALID_BODIES = [
    ({"_agg": "count"}, "expected a list", "not-a-list"),
    (["count"], "expected an object", "item-not-an-object"),
    ([{"_field": "severity"}], "_agg is missing", "missing-agg"),
    ([{"_agg": "median"}], "Unknown aggregation 'median'", "unknown-agg"),
    ([{"_agg": "field", "_field": "status"}], "needs _select", "field-without-select"),
    ([{"_agg": "field", "_select": [COUNT]}], "needs _field", "field-without-field"),
    (
        [{"_agg": "field", "_field": "colour", "_select": []}],
        "Unknown field 'colour' in case",
        "field-unknown",
    ),
    (
        [{"_agg": "field", "_field": "metrics", "_select": []}],
        "Cannot group by",
        "field-json",
    ),
    (
        [{"_agg": "field", "_field": "status", "_select": [], "_order": ["-avg"]}],
        "Invalid _order '-avg'",
        "order-unknown-metric",
    ),
    (
        [{"_agg": "field", "_field": "status", "_select": [], "_size": 0}],
        "Invalid _size",
        "size-zero",
    ),
    (
        [{"_agg": "field", "_field": "status", "_select": [], "_size": "ten"}],
        "Invalid _size",
        "size-not-a-number",
    ),
    ([{"_agg": "avg"}], "needs _field", "avg-without-field"),
    ([{"_agg": "avg", "_field": "title"}], "not a number or a date", "avg-of-text"),
    (
        [{"_agg": "sum", "_field": "computed.rating"}],
        "Field computed.rating is unknown in case",
        "unknown-computed",
    ),
    (
        [{"_agg": "count", "_query": {"colour": 1}}],
        "Unknown field 'colour'",
        "bad-metric-query",
    ),
    ([{"_agg": "count", "_name": 3}], "Invalid aggregation name", "name-not-a-string"),
    (
        [{"_agg": "time", "_fields": ["createdAt"], "_interval": "1w"}],
        "needs _select",
        "time-without-select",
    ),
    (
        [{"_agg": "time", "_fields": ["title"], "_interval": "1w", "_select": []}],
        "'title' in case is not a date",
        "time-on-text",
    ),
    (
        [{"_agg": "time", "_fields": [], "_interval": "1w", "_select": []}],
        "needs _fields",
        "time-without-fields",
    ),
    (
        [{"_agg": "time", "_fields": ["createdAt"], "_interval": "2M", "_select": []}],
        "one at a time",
        "two-months",
    ),
    (
        [{"_agg": "time", "_fields": ["createdAt"], "_interval": "1x", "_select": []}],
        "Invalid _interval '1x'",
        "unknown-unit",
    ),
    (
        [{"_agg": "top", "_order": ["tags"]}],
        "Cannot sort on field 'tags'",
        "top-bad-order",
    ),
    (
        [{"_agg": "category", "_categories": [], "_select": []}],
        "needs _categories",
        "categories-not-an-object",
    ),
    (
        [{"_agg": "category", "_categories": {"a": {"_foo": 1}}, "_select": []}],
        "Unknown query operator '_foo'",
        "category-bad-query",
    ),
    ([COUNT] * 101, "more than 100 aggregations", "too-many-aggregations"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [pytest.param(body, message, id=name) for body, message, name in INVALID_BODIES],
)
def test_bad_stats_body_is_refused_with_a_reason(
    db: Database, body: object, message: str
) -> None:
    with pytest.raises(InvalidQuery) as raised:
        stats(db, body)

    assert message in raised.value.message


def test_computed_metrics_exist_only_for_cases(db: Database) -> None:
    body = [{"_agg": "avg", "_field": "computed.handlingDurationInHours"}]

    with pytest.raises(InvalidQuery, match="unknown in case_task"):
        stats(db, body, model=TASK)


def test_too_many_buckets_are_refused(cases: Database) -> None:
    body = histogram("1s", [COUNT])

    with pytest.raises(InvalidQuery, match=f"more than {MAX_BUCKETS} buckets"):
        stats(cases, body)
