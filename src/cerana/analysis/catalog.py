"""The analyzer catalog: native analyzers plus Cortex analyzer folders.

Native analyzers are `cerana.analyzers.base.Analyzer` classes registered
under the ``cerana.analyzers`` entry point group. External analyzers come
from Cortex definition files: every ``<root>/<Folder>/<Flavor>.json`` of
the folders in the ``analyzer_paths`` setting, with a ``command`` relative
to ``<root>`` (Cortex 3's process runner layout).

Both kinds are keyed by Cortex's definition id (``name_version`` with dots
as underscores); a later folder wins over an earlier one and over a native
analyzer of the same id, as Cortex's rescan does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cerana.analysis.errors import AnalyzerNotFound
from cerana.analyzers.base import Analyzer, Definition, RateLimit, definition_id

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cerana.analyzers"
_ITEM_TYPES = ("string", "text", "number", "boolean")


@dataclass(frozen=True)
class CatalogEntry:
    """One runnable analyzer, native or external."""

    id: str
    name: str
    version: str
    description: str
    data_types: tuple[str, ...]
    author: str = ""
    url: str = ""
    license: str = ""
    base_config: str = ""
    configuration_items: tuple[Mapping[str, Any], ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    max_tlp: int = 3
    max_pap: int = 3
    rate_limit: RateLimit | None = None
    concurrency: int | None = None
    timeout: int | None = None
    native: Analyzer | None = None
    command: Path | None = None
    root: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """Returns the analyzer in Cortex's JSON shape (no configuration)."""
        return {
            "id": self.id,
            "_id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "dataTypeList": list(self.data_types),
            "author": self.author,
            "url": self.url,
            "license": self.license,
            "baseConfig": self.base_config,
            "workerDefinitionId": self.id,
            "analyzerDefinitionId": self.id,
            "configurationItems": [dict(i) for i in self.configuration_items],
            "maxTlp": self.max_tlp,
            "maxPap": self.max_pap,
            "rate": self.rate_limit.count if self.rate_limit else None,
            "rateUnit": self.rate_limit.unit if self.rate_limit else None,
            "type": "analyzer",
            "kind": "native" if self.native else "external",
        }


@dataclass(frozen=True)
class Catalog:
    """Every analyzer by definition id."""

    entries: Mapping[str, CatalogEntry]

    def get(self, reference: str) -> CatalogEntry:
        """Returns the analyzer with this id, or else this name; raises
        AnalyzerNotFound."""
        entry = self.entries.get(reference)
        if entry is None:
            entry = next(
                (e for e in self.entries.values() if e.name == reference), None
            )
        if entry is None:
            raise AnalyzerNotFound(f"analyzer {reference[:128]} not found")
        return entry

    def for_data_type(self, data_type: str) -> list[CatalogEntry]:
        return [e for e in self.entries.values() if data_type in e.data_types]

    def all(self) -> list[CatalogEntry]:
        return sorted(self.entries.values(), key=lambda e: e.id)


def load_catalog(paths: Iterable[Path], *, native: bool = True) -> Catalog:
    """Returns the catalog of the native analyzers and the definitions
    found in ``paths``. Unreadable definitions are logged and skipped."""
    entries: dict[str, CatalogEntry] = {}
    if native:
        for entry in _native_entries():
            entries[entry.id] = entry
    for root in paths:
        for entry in _external_entries(root):
            entries[entry.id] = entry
    logger.info("analyzer catalog: %d analyzers", len(entries))
    return Catalog(entries)


def _native_entries() -> Iterable[CatalogEntry]:
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = point.load()
            analyzer = cls()
            definition: Definition = cls.definition
        except Exception:  # a broken plugin must not stop the engine
            logger.exception("analyzer entry point %s cannot be loaded", point.name)
            continue
        yield _from_definition(definition, analyzer)


def _from_definition(definition: Definition, analyzer: Analyzer) -> CatalogEntry:
    return CatalogEntry(
        id=definition.id,
        name=definition.name,
        version=definition.version,
        description=definition.description,
        data_types=definition.data_types,
        author=definition.author,
        url=definition.url,
        license=definition.license,
        base_config=definition.base_config or definition.name,
        configuration_items=tuple(i.to_json() for i in definition.configuration_items),
        max_tlp=definition.max_tlp,
        max_pap=definition.max_pap,
        rate_limit=definition.rate_limit,
        concurrency=definition.concurrency,
        timeout=definition.timeout,
        native=analyzer,
    )


def _external_entries(root: Path) -> Iterable[CatalogEntry]:
    if not root.is_dir():
        logger.warning("analyzer folder %s does not exist", root)
        return
    for definition_file in sorted(root.glob("*/*.json")):
        try:
            yield parse_definition(definition_file, root)
        except ValueError as exc:
            logger.warning("analyzer definition %s skipped: %s", definition_file, exc)


def parse_definition(path: Path, root: Path) -> CatalogEntry:
    """Reads one Cortex definition file; raises ValueError saying what is
    wrong (missing key, bad type, command outside ``root``)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError("a definition must be a JSON object")
    for key in ("name", "version", "description"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"'{key}' must be a non-empty string")
    command = _command_path(raw.get("command"), root)
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError("'config' must be an object")
    return CatalogEntry(
        id=definition_id(raw["name"], raw["version"]),
        name=raw["name"],
        version=raw["version"],
        description=raw["description"],
        data_types=tuple(str(t) for t in raw.get("dataTypeList") or ()),
        author=str(raw.get("author", "")),
        url=str(raw.get("url", "")),
        license=str(raw.get("license", "")),
        base_config=str(raw.get("baseConfig") or raw["name"]),
        configuration_items=_items(raw.get("configurationItems") or []),
        config=config,
        command=command,
        root=root.resolve(),
    )


def _command_path(command: Any, root: Path) -> Path:
    if not isinstance(command, str) or not command:
        # Limitation: docker-image-only definitions are not run, because the
        # engine has only the process runner (#6).
        raise ValueError("no 'command' (docker-only definitions are not supported)")
    resolved = (root / command).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"command {command} leaves the analyzers folder")
    return resolved


def _items(raw: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(raw, list):
        raise ValueError("'configurationItems' must be a list")
    items = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("each configuration item needs a 'name'")
        if item.get("type", "string") not in _ITEM_TYPES:
            raise ValueError(f"item {item['name']}: unknown type {item.get('type')!r}")
        items.append(item)
    return tuple(items)
