"""Custom field and metric values in forms: the input each definition gets
and what was typed, read back as TheHive values (#5).

The template editor and the case page share these. A custom field's input
is named ``<prefix>-<reference>``, a metric's ``<prefix>-<name>``; an
empty input means "no value". Bad input raises InvalidInput naming the
field by the name its definition gives it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData

from cerana.domain.custom_fields import (
    FieldDefinition,
    MetricDefinition,
    typed_entry,
)
from cerana.domain.errors import InvalidInput
from cerana.web import forms

FIELD_PREFIX = "cf"
METRIC_PREFIX = "metric"
_DATE_INPUT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True)
class FieldInput:
    """One custom field as a form shows it."""

    definition: FieldDefinition
    value: str
    listed: bool

    @property
    def name(self) -> str:
        return f"{FIELD_PREFIX}-{self.definition.reference}"

    @property
    def options(self) -> list[tuple[str, str]]:
        shown = (shown_value(self.definition.type, o) for o in self.definition.options)
        return [(value, value) for value in shown]


@dataclass(frozen=True)
class MetricInput:
    """One metric as a form shows it."""

    definition: MetricDefinition
    value: str
    listed: bool

    @property
    def name(self) -> str:
        return f"{METRIC_PREFIX}-{self.definition.name}"


def shown_value(kind: str, value: Any) -> str:
    """Returns a stored value as its input shows it ("" for none)."""
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "date" and isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC).strftime(_DATE_INPUT)
    return str(value)


def field_inputs(
    definitions: Mapping[str, FieldDefinition],
    current: Mapping[str, Any],
    typed: Mapping[str, Any] | None = None,
) -> list[FieldInput]:
    """Returns the inputs of every defined field, holding the ``current``
    values (a record's ``customFields``) or, after a refused form, what was
    ``typed``."""
    inputs = []
    for definition in definitions.values():
        content = current.get(definition.reference)
        entry = typed_entry(content) if isinstance(content, Mapping) else None
        value = shown_value(definition.type, entry[1] if entry else None)
        listed = content is not None
        if typed is not None:
            name = f"{FIELD_PREFIX}-{definition.reference}"
            value = str(typed.get(name, ""))
            listed = bool(typed.get(f"{name}-listed")) or bool(value)
        inputs.append(FieldInput(definition, value, listed))
    return inputs


def metric_inputs(
    definitions: Mapping[str, MetricDefinition],
    current: Mapping[str, Any],
    typed: Mapping[str, Any] | None = None,
) -> list[MetricInput]:
    """Returns the inputs of every defined metric, as `field_inputs` does."""
    inputs = []
    for definition in definitions.values():
        value = shown_value("number", current.get(definition.name))
        listed = definition.name in current
        if typed is not None:
            name = f"{METRIC_PREFIX}-{definition.name}"
            value = str(typed.get(name, ""))
            listed = bool(typed.get(f"{name}-listed")) or bool(value)
        inputs.append(MetricInput(definition, value, listed))
    return inputs


def read_custom_fields(
    form: FormData,
    definitions: Mapping[str, FieldDefinition],
    current: Mapping[str, Any],
    listed: Collection[str],
) -> dict[str, dict[str, Any]]:
    """Returns the ``customFields`` object of a form.

    Fields without a definition keep their ``current`` content; a defined
    field with an empty input is kept, without a value, when its reference
    is in ``listed``, and left out otherwise. Raises InvalidInput for a
    value its type does not allow.
    """
    fields = {
        ref: dict(content) for ref, content in current.items() if ref not in definitions
    }
    for order, definition in enumerate(definitions.values()):
        raw = forms.text(form, f"{FIELD_PREFIX}-{definition.reference}")
        value = typed_value(definition, raw)
        if value is not None or definition.reference in listed:
            fields[definition.reference] = {definition.type: value, "order": order}
    return fields


def read_metrics(
    form: FormData,
    definitions: Mapping[str, MetricDefinition],
    current: Mapping[str, Any],
    listed: Collection[str],
) -> dict[str, int | float | None]:
    """Returns the ``metrics`` object of a form, as `read_custom_fields`
    returns custom fields."""
    metrics = {
        name: value for name, value in current.items() if name not in definitions
    }
    for definition in definitions.values():
        raw = forms.text(form, f"{METRIC_PREFIX}-{definition.name}")
        value = _number(raw, f"Metric {definition.title}", whole=False)
        if value is not None or definition.name in listed:
            metrics[definition.name] = value
    return metrics


def listed_names(form: FormData, prefix: str) -> set[str]:
    """Returns the names whose "listed" box (``<prefix>-<name>-listed``) is ticked."""
    return {
        key[len(prefix) + 1 : -len("-listed")]
        for key in form
        if key.startswith(f"{prefix}-")
        and key.endswith("-listed")
        and forms.checked(form, key)
    }


def typed_value(definition: FieldDefinition, raw: str) -> Any:
    """Returns the typed input of a field as its type's value, None when
    empty; raises InvalidInput naming the field."""
    label = f"Custom field {definition.name}"
    if raw == "":
        return None
    if definition.type == "string":
        return raw
    if definition.type == "boolean":
        if raw not in ("true", "false"):
            raise InvalidInput(f"{label}: choose yes or no")
        return raw == "true"
    if definition.type == "date":
        try:
            moment = datetime.strptime(raw, _DATE_INPUT).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidInput(
                f"{label}: '{raw[:40]}' is not a date and time such as 2024-05-31T14:30"
            ) from None
        return int(moment.timestamp() * 1000)
    return _number(raw, label, whole=definition.type == "integer")


def _number(raw: str, label: str, *, whole: bool) -> int | float | None:
    if raw == "":
        return None
    if whole:
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(f"{label}: '{raw[:40]}' is not a whole number") from None
    try:
        number = float(raw)
    except ValueError:
        raise InvalidInput(f"{label}: '{raw[:40]}' is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{label}: '{raw[:40]}' is not a number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
