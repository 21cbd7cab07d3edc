"""Taxonomies: the short verdicts analyzers put in a report's summary.

Each is ``{"level", "namespace", "predicate", "value"}`` and is shown as a
label ``namespace:predicate="value"`` coloured by its level. Reports come
from analyzers, local or remote, so nothing in them is trusted: entries
that are not objects are skipped and an unknown level shows as ``info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LEVELS = ("info", "safe", "suspicious", "malicious")
MAX_LABEL_PART = 80


@dataclass(frozen=True)
class Taxonomy:
    """One verdict of one report."""

    level: str
    namespace: str
    predicate: str
    value: str

    @property
    def label(self) -> str:
        return f'{self.namespace}:{self.predicate}="{self.value}"'


def taxonomies_of_summary(summary: Any) -> list[Taxonomy]:
    """Returns the taxonomies of one report summary, in report order."""
    if not isinstance(summary, Mapping):
        return []
    raw = summary.get("taxonomies")
    if not isinstance(raw, list):
        return []
    found = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        level = str(entry.get("level", "")).lower()
        found.append(
            Taxonomy(
                level=level if level in LEVELS else "info",
                namespace=_part(entry.get("namespace")),
                predicate=_part(entry.get("predicate")),
                value=_part(entry.get("value")),
            )
        )
    return found


def taxonomies_of_reports(reports: Any) -> list[Taxonomy]:
    """Returns the taxonomies of an observable's ``reports`` (summaries by
    analyzer definition), ordered by analyzer."""
    if not isinstance(reports, Mapping):
        return []
    found: list[Taxonomy] = []
    for definition in sorted(reports):
        found.extend(taxonomies_of_summary(reports[definition]))
    return found


def _part(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_LABEL_PART else text[: MAX_LABEL_PART - 1] + "…"
