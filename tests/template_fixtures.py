"""The case template fixtures of issue #5 and the definitions they need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
THEHIVE_TEMPLATE = FIXTURES / "Case-Template__Phishing_campaign.json"


def thehive_template() -> dict[str, Any]:
    """The TheHive 3.0 export of the "Phishing campaign" template."""
    document: dict[str, Any] = json.loads(THEHIVE_TEMPLATE.read_text("utf-8"))
    return document


def definitions() -> dict[str, list[dict[str, Any]]]:
    """``{"custom_fields": [...], "case_metrics": [...]}`` list items."""
    items: dict[str, list[dict[str, Any]]] = json.loads(
        (FIXTURES / "definitions.json").read_text("utf-8")
    )
    return items


def define(admin: httpx.Client, list_name: str, value: dict[str, Any]) -> str:
    """Adds one definition through TheHive's list API; returns its id."""
    response = admin.post(f"/api/list/{list_name}", json={"value": value})
    assert response.status_code == 200, response.text
    item_id: str = response.json()
    return item_id


def define_all(admin: httpx.Client) -> None:
    """Adds every custom field and metric the fixture template names."""
    for list_name, items in definitions().items():
        for item in items:
            define(admin, list_name, item)
