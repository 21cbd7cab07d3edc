"""The user documentation keeps up with the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cerana.config import Settings

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("setting", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_is_documented(setting: str) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")

    assert f"`{setting}`" in text
    assert f"`CERANA_{setting.upper()}`" in text


def test_readme_gives_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")

    assert "scripts/serve" in readme
    assert "scripts/test" in readme
    assert "scripts/test" in (DOCS.parent / ".ci" / "run").read_text(encoding="utf-8")
