"""Taxonomies read from analyzer reports, which are never trusted."""

from __future__ import annotations

from typing import Any

import pytest

from cerana.domain.taxonomies import (
    Taxonomy,
    taxonomies_of_reports,
    taxonomies_of_summary,
)


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        pytest.param(
            {
                "taxonomies": [
                    {
                        "level": "malicious",
                        "namespace": "VT",
                        "predicate": "GetReport",
                        "value": "12/70",
                    }
                ]
            },
            [Taxonomy("malicious", "VT", "GetReport", "12/70")],
            id="well-formed",
        ),
        pytest.param(
            {
                "taxonomies": [
                    {
                        "level": "Suspicious",
                        "namespace": "A",
                        "predicate": "B",
                        "value": 3,
                    }
                ]
            },
            [Taxonomy("suspicious", "A", "B", "3")],
            id="level-in-capitals-and-a-number-value",
        ),
        pytest.param(
            {
                "taxonomies": [
                    {"level": "<b>bad</b>", "namespace": "A", "predicate": "B"}
                ]
            },
            [Taxonomy("info", "A", "B", "")],
            id="unknown-level-is-info",
        ),
        pytest.param(
            {"taxonomies": ["not an object", None, {"level": "safe"}]},
            [Taxonomy("safe", "", "", "")],
            id="non-objects-skipped",
        ),
        pytest.param({"taxonomies": "nope"}, [], id="not-a-list"),
        pytest.param("Running", [], id="not-a-summary"),
    ],
)
def test_a_summary_gives_its_taxonomies(summary: Any, expected: list[Taxonomy]) -> None:
    assert taxonomies_of_summary(summary) == expected


def test_a_label_reads_namespace_predicate_and_quoted_value() -> None:
    taxonomy = Taxonomy("safe", "Remote", "Lookup", "remote-a")

    assert taxonomy.label == 'Remote:Lookup="remote-a"'


def test_a_long_part_is_cut_to_keep_the_label_readable() -> None:
    found = taxonomies_of_summary(
        {
            "taxonomies": [
                {
                    "level": "info",
                    "namespace": "N",
                    "predicate": "P",
                    "value": "x" * 500,
                }
            ]
        }
    )

    assert len(found[0].value) == 80 and found[0].value.endswith("…")


def test_an_observables_reports_give_taxonomies_ordered_by_analyzer() -> None:
    reports = {
        "Zeta_1_0": {
            "taxonomies": [
                {"level": "safe", "namespace": "Z", "predicate": "p", "value": "1"}
            ]
        },
        "Alpha_2_0": {
            "taxonomies": [
                {"level": "malicious", "namespace": "A", "predicate": "p", "value": "2"}
            ]
        },
    }

    found = taxonomies_of_reports(reports)

    assert [t.namespace for t in found] == ["A", "Z"]
    assert taxonomies_of_reports(None) == []
