"""The embedded engine of one platform: its catalog, configuration and keys.

Built once per platform on first use (the catalog scan reads every
definition file); `reload_engine` rebuilds it after the folders change.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from cerana.analysis import configuration
from cerana.analysis.catalog import Catalog, CatalogEntry, load_catalog
from cerana.analysis.configuration import Limits
from cerana.analysis.errors import ConfigurationRejected
from cerana.analysis.secrets import SecretBox
from cerana.config import Settings
from cerana.platform import Platform

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engine:
    """What running jobs needs besides the database."""

    settings: Settings
    catalog: Catalog
    box: SecretBox

    @property
    def file_tables(self) -> Mapping[str, Any]:
        return self.settings.analyzers

    def configuration(self, conn: Connection, entry: CatalogEntry) -> dict[str, Any]:
        """Returns the merged configuration of ``entry`` (secrets in clear)."""
        stored = configuration.load_stored(conn, self.settings.organisation, self.box)
        return configuration.merged_configuration(entry, self.file_tables, stored)

    def limits(self, entry: CatalogEntry, config: Mapping[str, Any]) -> Limits:
        return configuration.limits_for(entry, config, self.settings)

    @property
    def jobs_dir(self) -> Path:
        return self.settings.data_dir / "jobs"


_ENGINES: dict[int, tuple[Platform, Engine]] = {}
_LOCK = threading.Lock()


def engine_for(platform: Platform) -> Engine:
    """Returns the engine of ``platform``, building it on first use."""
    with _LOCK:
        known = _ENGINES.get(id(platform))
        if known is not None and known[0] is platform:
            return known[1]
        engine = build_engine(platform.settings)
        _ENGINES[id(platform)] = (platform, engine)
        return engine


def reload_engine(platform: Platform) -> Engine:
    """Rescans the analyzer folders of ``platform``."""
    with _LOCK:
        _ENGINES.pop(id(platform), None)
    return engine_for(platform)


def build_engine(settings: Settings) -> Engine:
    """Loads the catalog and checks the file's analyzer sections."""
    paths = [Path(p) for p in settings.analyzer_paths.split(os.pathsep) if p]
    catalog = load_catalog(paths)
    engine = Engine(
        settings, catalog, SecretBox(settings.analyzer_key or settings.secret_key)
    )
    _check_file_sections(engine)
    return engine


def _check_file_sections(engine: Engine) -> None:
    """Logs (without values) every file section that breaks its definition."""
    for entry in engine.catalog.all():
        for name in (entry.name, entry.id):
            section = engine.file_tables.get(name)
            if not isinstance(section, Mapping):
                continue
            try:
                configuration.check_configuration(
                    entry.configuration_items, section, where=name, partial=True
                )
            except ConfigurationRejected as exc:
                logger.warning("analyzer configuration file section: %s", exc.message)
