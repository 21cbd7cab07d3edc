"""An analyzer that does nothing: for benchmarks and tests of the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cerana.analyzers.base import Analyzer, Definition, Observable, Report, Taxonomy


class NoOp(Analyzer):
    """Answers at once with an `info` taxonomy echoing the datatype."""

    definition = Definition(
        name="NoOp",
        version="1.0",
        description="Does nothing and reports it; measures the engine itself",
        data_types=(
            "ip",
            "domain",
            "fqdn",
            "url",
            "hash",
            "mail",
            "filename",
            "other",
            "file",
        ),
    )

    def run(self, observable: Observable, config: Mapping[str, Any]) -> Report:
        return Report(
            full={"dataType": observable.data_type},
            taxonomies=(Taxonomy("info", "NoOp", "Seen", observable.data_type),),
        )
