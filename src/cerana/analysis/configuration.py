"""Analyzer configuration: the file's tables, admin edits, and limits.

The configuration an analyzer receives is merged, later wins, from:

1. its configuration items' ``defaultValue``;
2. the ``config`` block of its definition (``{"service": "get"}``);
3. ``[analyzers.global]``, then ``[analyzers.<baseConfig>]``, then
   ``[analyzers.<name>]`` / ``[analyzers.<definition id>]`` of the file;
4. what administrators saved through the API for the base config, then
   for the analyzer (stored with secrets encrypted).

Besides the analyzer's own items, every section may hold the engine's
keys (`ENGINE_KEYS`): limits, TLP/PAP policy, proxies, cache and timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select

from cerana.analysis.catalog import Catalog, CatalogEntry
from cerana.analysis.errors import AnalyzerNotFound, ConfigurationRejected
from cerana.analysis.secrets import MASK, SecretBox
from cerana.analyzers.base import RateLimit
from cerana.config import Settings
from cerana.domain.dates import now_ms
from cerana.store import tables

ENGINE_KEYS: dict[str, str] = {
    "rate": "number",
    "rate_unit": "string",
    "concurrency": "number",
    "job_cache": "number",
    "job_timeout": "number",
    "check_tlp": "boolean",
    "max_tlp": "number",
    "check_pap": "boolean",
    "max_pap": "number",
    "auto_extract_artifacts": "boolean",
    "auto_extract": "boolean",
    "proxy_http": "string",
    "proxy_https": "string",
    "cacerts": "text",
}
_RATE_UNITS = ("Second", "Minute", "Hour", "Day", "Month")


@dataclass(frozen=True)
class Limits:
    """How the engine runs one analyzer's jobs."""

    rate: RateLimit | None
    concurrency: int
    cache_minutes: int
    timeout_seconds: float
    max_tlp: int
    max_pap: int


def file_sections(
    entry: CatalogEntry, tables_: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """Returns the file's tables that apply to ``entry``, in merge order."""
    names = ["global", entry.base_config, entry.name, entry.id]
    sections = []
    for name in dict.fromkeys(names):
        section = tables_.get(name)
        if isinstance(section, Mapping):
            sections.append(section)
    return sections


def merged_configuration(
    entry: CatalogEntry,
    file_tables: Mapping[str, Any],
    stored: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Returns the configuration ``entry`` runs with (secrets in clear);
    ``stored`` maps a base config or analyzer name to saved values."""
    values: dict[str, Any] = {}
    for item in entry.configuration_items:
        values[item["name"]] = item.get(
            "defaultValue", [] if item.get("multi") else None
        )
    values.update(entry.config)
    for section in file_sections(entry, file_tables):
        values.update(section)
    for name in dict.fromkeys([entry.base_config, entry.name, entry.id]):
        values.update(stored.get(name, {}))
    return values


def check_configuration(
    items: Iterable[Mapping[str, Any]],
    values: Mapping[str, Any],
    *,
    where: str,
    partial: bool = False,
) -> None:
    """Checks ``values`` against configuration ``items`` and the engine keys.

    Raises ConfigurationRejected naming every wrong key: unknown names,
    wrong types, missing required items (unless ``partial``).
    """
    declared = {item["name"]: item for item in items}
    problems: list[str] = []
    for name, value in values.items():
        item = declared.get(name)
        kind = item.get("type", "string") if item else ENGINE_KEYS.get(name)
        if kind is None:
            problems.append(f"unknown configuration item '{name}'")
        elif value is not None and not _has_type(
            value, kind, bool(item and item.get("multi"))
        ):
            problems.append(f"'{name}' must be a {kind}")
    if not partial:
        for name, item in declared.items():
            if item.get("required") and values.get(name) in (None, "", []):
                problems.append(f"'{name}' is required")
    rate_unit = values.get("rate_unit")
    if rate_unit is not None and rate_unit not in _RATE_UNITS:
        problems.append(f"'rate_unit' must be one of {', '.join(_RATE_UNITS)}")
    if problems:
        raise ConfigurationRejected(f"configuration of {where}: " + "; ".join(problems))


def _has_type(value: Any, kind: str, multi: bool) -> bool:
    if multi:
        return isinstance(value, list) and all(_has_type(v, kind, False) for v in value)
    if kind in ("string", "text"):
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, bool)


def limits_for(
    entry: CatalogEntry, config: Mapping[str, Any], settings: Settings
) -> Limits:
    """Returns the limits of ``entry``: configuration, then definition,
    then the engine settings."""
    rate = entry.rate_limit
    if config.get("rate"):
        rate = RateLimit(int(config["rate"]), config.get("rate_unit") or "Minute")
    timeout = config.get("job_timeout") or entry.timeout or settings.analyzer_timeout
    cache = config.get("job_cache")
    max_tlp = entry.max_tlp
    if config.get("check_tlp") and config.get("max_tlp") is not None:
        max_tlp = min(max_tlp, int(config["max_tlp"]))
    max_pap = entry.max_pap
    if config.get("check_pap") and config.get("max_pap") is not None:
        max_pap = min(max_pap, int(config["max_pap"]))
    return Limits(
        rate=rate,
        concurrency=int(
            config.get("concurrency")
            or entry.concurrency
            or settings.analyzer_concurrency
        ),
        cache_minutes=int(settings.analyzer_cache if cache is None else cache),
        timeout_seconds=float(timeout) * 60,
        max_tlp=max_tlp,
        max_pap=max_pap,
    )


def load_stored(
    conn: Connection, organisation: str, box: SecretBox
) -> dict[str, dict[str, Any]]:
    """Returns every saved configuration by name, secrets decrypted."""
    rows = conn.execute(_STORED, {"organisation": organisation})
    return {name: box.open(configuration) for name, configuration in rows}


# Built once: every job reads the stored configuration twice (submission
# and admission), so that an administrator's change reaches every worker.
_STORED = select(
    tables.analyzer_config.c.name, tables.analyzer_config.c.configuration
).where(tables.analyzer_config.c.organisation == bindparam("organisation"))


def configuration_items(catalog: Catalog, name: str) -> list[dict[str, Any]]:
    """Returns the items an administrator may set for ``name``: an
    analyzer (by name or id), a base configuration or ``global`` (engine
    keys only); none is required, as values merge. Raises AnalyzerNotFound.
    """
    matching = [
        e
        for e in catalog.all()
        if name in (e.id, e.name, e.base_config) or name == "global"
    ]
    if not matching:
        raise AnalyzerNotFound(f"analyzer or base configuration {name[:128]} not found")
    if name == "global":
        return []
    items: dict[str, dict[str, Any]] = {}
    for entry in matching:
        for item in entry.configuration_items:
            items.setdefault(item["name"], {**item, "required": False})
    return list(items.values())


def update_configuration(
    conn: Connection,
    catalog: Catalog,
    box: SecretBox,
    organisation: str,
    login: str,
    name: str,
    values: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Checks and stores an administrator's values for ``name``, as
    `save_configuration` does; returns (its items, the values in clear).

    Raises AnalyzerNotFound, or ConfigurationRejected before any write.
    """
    items = configuration_items(catalog, name)
    check_configuration(items, values, where=name, partial=True)
    saved = save_configuration(conn, organisation, login, name, values, box)
    return items, saved


def save_configuration(
    conn: Connection,
    organisation: str,
    login: str,
    name: str,
    values: Mapping[str, Any],
    box: SecretBox,
) -> dict[str, Any]:
    """Stores admin-edited values for ``name`` (secrets encrypted); a
    secret sent back as the mask keeps its stored value. Returns the
    values in clear."""
    current = load_stored(conn, organisation, box).get(name, {})
    merged = {
        key: current.get(key) if value == MASK else value
        for key, value in values.items()
    }
    table = tables.analyzer_config
    conn.execute(
        table.delete().where(table.c.organisation == organisation, table.c.name == name)
    )
    conn.execute(
        table.insert().values(
            organisation=organisation,
            name=name,
            configuration=box.seal(merged),
            updated_by=login,
            updated_at=now_ms(),
        )
    )
    return merged
