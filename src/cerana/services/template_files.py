"""Case template files, as `cerana templates export/import` reads and writes
them (#5): TheHive 3's export format, one template per file named
``Case-Template__<name>.json``, or a list of templates in one file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cerana.domain import templates as shapes
from cerana.domain.errors import InvalidInput


def dump_templates(document: Any) -> str:
    """Returns the JSON text of an export, indented, ending with a newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_template_files(folder: Path, exported: Sequence[dict[str, Any]]) -> int:
    """Writes each exported template to its own file in ``folder`` (created
    when missing); returns how many files were written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    for document in exported:
        path = folder / shapes.export_file_name(document["name"])
        if path in written:  # two names that differ only in unsafe characters
            path = path.with_name(f"{path.stem}__{len(written)}.json")
        path.write_text(dump_templates(document), encoding="utf-8")
        written.add(path)
    return len(written)


def template_paths(given: Sequence[Path]) -> list[Path]:
    """Returns the files to import: each file given, and the ``*.json``
    files of each folder given, in name order."""
    paths: list[Path] = []
    for path in given:
        paths += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return paths


def read_template_file(path: Path) -> list[Any]:
    """Returns the template documents in one file (an object or a list).

    Raises InvalidInput naming the file when it cannot be read or is not
    JSON.
    """
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    return document if isinstance(document, list) else [document]
