"""The analyzer-writing API is small and stable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cerana.analyzers.base as base
from cerana.analysis.catalog import load_catalog
from cerana.analysis.runner import run_native


def test_the_public_names_are_exactly_these() -> None:
    assert base.__all__ == [
        "Analyzer",
        "AnalyzerError",
        "Artifact",
        "ConfigurationItem",
        "Definition",
        "Level",
        "Observable",
        "RateLimit",
        "Report",
        "Taxonomy",
        "definition_id",
    ]
    assert all(hasattr(base, name) for name in base.__all__)


def test_shipped_analyzers_are_registered_through_the_entry_point() -> None:
    catalog = load_catalog([])

    assert {"NoOp_1_0", "FireHOLBlocklists_2_0"} <= set(catalog.entries)
    assert catalog.get("FireHOLBlocklists").data_types == ("ip",)


def test_a_native_analyzer_is_a_class_with_a_definition_and_run(tmp_path: Path) -> None:
    class Reverse(base.Analyzer):
        definition = base.Definition("Reverse", "1.0", "reverses", ("other",))

        def run(
            self, observable: base.Observable, config: Mapping[str, Any]
        ) -> base.Report:
            if observable.data == "boom":
                raise base.AnalyzerError("cannot reverse boom")
            value = (observable.data or "")[::-1]
            return base.Report(
                full={"reversed": value},
                taxonomies=(base.Taxonomy("bogus", "Rev", "Value", value),),  # type: ignore[arg-type]
                artifacts=(base.Artifact("other", value),),
            )

    entry = load_catalog([], native=False).entries.get("x")
    assert entry is None
    from cerana.analysis.catalog import _from_definition

    entry = _from_definition(Reverse.definition, Reverse())

    done = run_native(entry, base.Observable("other", "abc"), {}, timeout=5)
    failed = run_native(entry, base.Observable("other", "boom"), {}, timeout=5)

    assert done.full == {"reversed": "cba"}
    assert (
        done.summary["taxonomies"][0]["level"] == "info"
    )  # unknown levels become info
    assert done.artifacts == [
        {"dataType": "other", "data": "cba", "message": "", "tags": []}
    ]
    assert (failed.success, failed.error) == (False, "cannot reverse boom")
    assert (
        base.definition_id("VirusTotal_GetReport", "3.1") == "VirusTotal_GetReport_3_1"
    )
