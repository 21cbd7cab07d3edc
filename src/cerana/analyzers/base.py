"""The public API for writing analyzers that ship with Cerana (or a plugin).

An analyzer is a class deriving from `Analyzer`, registered under the
``cerana.analyzers`` entry point group::

    [project.entry-points."cerana.analyzers"]
    MyLookup = "my_package.lookup:MyLookup"

It declares a `Definition` (what Cortex calls a worker definition) and
implements `Analyzer.run`, which receives the `Observable` and the merged
configuration and returns a `Report`: the full report, summary
`Taxonomy` labels and extracted `Artifact` observables. Raising
`AnalyzerError` fails the job with its message; any other exception fails
it with a generic message (the traceback goes to the worker's log).

Only the names in ``__all__`` are public; a test keeps the list stable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

__all__ = [
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

Level = Literal["info", "safe", "suspicious", "malicious"]

_LEVELS = ("info", "safe", "suspicious", "malicious")
_RATE_UNITS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400, "Month": 2592000}


class AnalyzerError(Exception):
    """The analyzer cannot produce a report; the message is shown to users."""


@dataclass(frozen=True)
class ConfigurationItem:
    """One configuration value an analyzer reads, as Cortex declares it."""

    name: str
    description: str
    type: Literal["string", "text", "number", "boolean"] = "string"
    multi: bool = False
    required: bool = False
    default: Any = None

    def to_json(self) -> dict[str, Any]:
        """Returns the item in Cortex's ``configurationItems`` shape."""
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "type": self.type,
            "multi": self.multi,
            "required": self.required,
        }
        if self.default is not None:
            body["defaultValue"] = self.default
        return body


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` jobs started per ``unit`` (Cortex's rate/rateUnit)."""

    count: int
    unit: Literal["Second", "Minute", "Hour", "Day", "Month"] = "Minute"

    @property
    def window_seconds(self) -> int:
        return _RATE_UNITS[self.unit]


@dataclass(frozen=True)
class Definition:
    """What an analyzer is and what it accepts.

    ``max_tlp`` and ``max_pap`` are the highest TLP and PAP (0 white ...
    3 red) of an observable the analyzer may receive; the engine refuses
    the job before running it otherwise. ``timeout`` (minutes),
    ``concurrency`` and ``rate_limit`` default to the engine settings.
    """

    name: str
    version: str
    description: str
    data_types: tuple[str, ...]
    author: str = "Cerana"
    url: str = ""
    license: str = "AGPL-3.0-or-later"
    base_config: str | None = None
    configuration_items: tuple[ConfigurationItem, ...] = ()
    max_tlp: int = 3
    max_pap: int = 3
    rate_limit: RateLimit | None = None
    concurrency: int | None = None
    timeout: int | None = None

    @property
    def id(self) -> str:
        return definition_id(self.name, self.version)


@dataclass(frozen=True)
class Observable:
    """What an analyzer looks at: a value, or a file for ``dataType`` file."""

    data_type: str
    data: str | None = None
    file: Path | None = None
    filename: str | None = None
    content_type: str | None = None
    tlp: int = 2
    pap: int = 2
    message: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Taxonomy:
    """A summary label: ``namespace:predicate="value"`` with a level."""

    level: Level
    namespace: str
    predicate: str
    value: str | int | float | bool | None

    def __post_init__(self) -> None:
        if self.level not in _LEVELS:  # cortexutils turns unknown levels to info
            object.__setattr__(self, "level", "info")

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "namespace": self.namespace,
            "predicate": self.predicate,
            "value": self.value,
        }


@dataclass(frozen=True)
class Artifact:
    """An observable found by the analyzer, offered for import."""

    data_type: str
    data: str
    message: str = ""
    tags: tuple[str, ...] = ()
    tlp: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dataType": self.data_type,
            "data": self.data,
            "message": self.message,
            "tags": list(self.tags),
        }
        if self.tlp is not None:
            body["tlp"] = self.tlp
        return body


@dataclass(frozen=True)
class Report:
    """What `Analyzer.run` returns: Cortex's ``full``, ``summary`` and
    ``artifacts``."""

    full: Mapping[str, Any]
    taxonomies: tuple[Taxonomy, ...] = ()
    artifacts: tuple[Artifact, ...] = ()


class Analyzer:
    """Base class of native analyzers.

    One instance serves many jobs, possibly at once from several worker
    threads: keep per-job state in `run`'s locals. Heavy set-up (loading a
    list) belongs in a cache keyed by the configuration.
    """

    definition: ClassVar[Definition]

    def run(self, observable: Observable, config: Mapping[str, Any]) -> Report:
        """Analyses ``observable`` with ``config`` (the configuration items,
        defaults applied); returns the report or raises AnalyzerError."""
        raise NotImplementedError


def definition_id(name: str, version: str) -> str:
    """Returns Cortex's definition id: ``name_version``, dots as underscores."""
    return re.sub(r"\.", "_", f"{name}_{version}")
