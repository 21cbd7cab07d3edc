"""Fixtures of the analysis engine tests: a folder of real analyzers."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerana.analysis.catalog import Catalog, load_catalog
from tests.analysis.analyzer_programs import write_analyzers


@pytest.fixture(scope="session")
def analyzers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_analyzers(tmp_path_factory.mktemp("analyzers"))


@pytest.fixture(scope="session")
def catalog(analyzers_dir: Path) -> Catalog:
    return load_catalog([analyzers_dir])
