"""Custom field and metric definitions, and the values they allow (#5).

Definitions are DB-list items, as TheHive 3 keeps them:

- ``custom_fields`` items ``{"reference", "name", "description", "type",
  "options", "mandatory"}``;
- ``case_metrics`` items ``{"name", "title", "description"}``.

A custom field value, on a case or a template, is ``{"<type>": value,
"order": n}``. Types are ``string``, ``integer``, ``float``, ``boolean`` and
``date``, plus ``number``: TheHive 3's only numeric type, kept as sent (so a
TheHive 3 client reads back what it wrote) and treated as ``float``. A
numeric field takes its value under any numeric key (``number``,
``integer``, ``float``), so TheHive 3 clients and thehive4py's
``add_integer``/``add_float`` both work; an ``integer`` field takes whole
numbers only. Everything here is pure: the lists are read by
`cerana.services.custom_fields`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cerana.domain.dates import parse_date
from cerana.domain.errors import Conflict, InvalidInput

FIELD_LIST = "custom_fields"
METRIC_LIST = "case_metrics"
DEFINITION_LISTS = (FIELD_LIST, METRIC_LIST)

FIELD_TYPES = ("string", "integer", "float", "number", "boolean", "date")
NUMERIC_TYPES = frozenset({"integer", "float", "number"})
MAX_OPTIONS = 1000
MAX_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 8192

# TheHive's UI rule for references, anchored at both ends here; the length
# is the one of the indexed `case_custom_field.reference` column.
_REFERENCE = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]{0,127}")
# The characters the query compiler accepts in `metrics.<name>`, so that
# every defined metric can be searched.
_METRIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FIELD_KEYS = ("reference", "name", "description", "type", "options", "mandatory")
_METRIC_KEYS = ("name", "title", "description")


@dataclass(frozen=True)
class FieldDefinition:
    """One custom field an administrator defined."""

    reference: str
    name: str
    description: str
    type: str
    options: tuple[Any, ...] = ()
    mandatory: bool = False

    @property
    def value_kinds(self) -> frozenset[str]:
        """The keys a value of this field may be given under."""
        return NUMERIC_TYPES if self.type in NUMERIC_TYPES else frozenset({self.type})


@dataclass(frozen=True)
class MetricDefinition:
    """One case metric an administrator defined."""

    name: str
    title: str
    description: str = ""


def parse_field_definition(raw: Any) -> FieldDefinition:
    """Returns the definition in a ``custom_fields`` list item.

    Raises InvalidInput naming the key at fault: a reference that is not an
    identifier, a missing name, an unknown type, options of another type,
    an unknown key.
    """
    item = _object(raw, "a custom field", _FIELD_KEYS)
    reference = item.get("reference")
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        raise InvalidInput(
            f"custom field reference {_show(reference)} is invalid: start with a "
            "letter, then letters, digits, '_' or '-' (at most 128)"
        )
    kind = item.get("type")
    if kind not in FIELD_TYPES:
        raise InvalidInput(
            f"custom field {reference} has type {_show(kind)}: use one of "
            + ", ".join(FIELD_TYPES)
        )
    mandatory = item.get("mandatory") or False
    if not isinstance(mandatory, bool):
        raise InvalidInput(f"custom field {reference}: mandatory must be true or false")
    return FieldDefinition(
        reference=reference,
        name=_text(item.get("name"), f"custom field {reference}", "name"),
        description=_optional_text(
            item.get("description"), f"custom field {reference}"
        ),
        type=kind,
        options=_options(reference, kind, item.get("options")),
        mandatory=mandatory,
    )


def parse_metric_definition(raw: Any) -> MetricDefinition:
    """Returns the definition in a ``case_metrics`` list item.

    Raises InvalidInput naming the key at fault.
    """
    item = _object(raw, "a metric", _METRIC_KEYS)
    name = item.get("name")
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise InvalidInput(
            f"metric name {_show(name)} is invalid: use 1 to 128 letters, digits, "
            "'_' or '-'"
        )
    return MetricDefinition(
        name=name,
        title=_text(item.get("title"), f"metric {name}", "title"),
        description=_optional_text(item.get("description"), f"metric {name}"),
    )


def check_definition(list_name: str, value: Any, existing: Iterable[Any]) -> None:
    """Checks a new item of a definition list against its shape and the
    items already listed.

    Raises InvalidInput for a malformed item and Conflict when its reference
    (custom field) or name (metric) is taken.
    """
    if list_name == FIELD_LIST:
        key, taken = "reference", parse_field_definition(value).reference
    else:
        key, taken = "name", parse_metric_definition(value).name
    if any(isinstance(item, dict) and item.get(key) == taken for item in existing):
        what = "custom field" if list_name == FIELD_LIST else "metric"
        raise Conflict(f"a {what} with {key} {taken} exists already")


def check_field_value(definition: FieldDefinition, kind: str, value: Any) -> None:
    """Checks one custom field value, already converted to its kind.

    Raises ValueError with the reason when the kind does not fit the
    field's type, an integer field gets a fraction, or the value is not
    one of the field's options. A null value always fits.
    """
    if kind not in definition.value_kinds:
        raise ValueError(f"is a {definition.type} field, not {kind}")
    if value is None:
        return
    if definition.type == "integer" and not isinstance(value, int):
        raise ValueError(f"takes whole numbers, not {value!r}")
    if definition.options and value not in definition.options:
        allowed = ", ".join(str(o) for o in definition.options[:20])
        raise ValueError(f"value {_show(value)} is not one of its options: {allowed}")


def typed_entry(content: Mapping[str, Any]) -> tuple[str, Any] | None:
    """Returns ``(kind, value)`` of a custom field entry, None when the
    entry holds only an ``order``."""
    for key, value in content.items():
        if key != "order":
            return key, value
    return None


def has_value(content: Any) -> bool:
    """True when a custom field entry holds a non-null value."""
    if not isinstance(content, Mapping):
        return False
    entry = typed_entry(content)
    return entry is not None and entry[1] is not None


def inferred_field(reference: str, content: Any, template: str) -> dict[str, Any]:
    """Returns a ``custom_fields`` item for a field an imported template
    names, its type taken from the key of the template's value.

    Raises InvalidInput when the value names no known type.
    """
    entry = typed_entry(content) if isinstance(content, Mapping) else None
    if entry is None or entry[0] not in FIELD_TYPES:
        raise InvalidInput(
            f"cannot create custom field {reference} for template {template}: "
            'its value names no type (expected {"<type>": value})'
        )
    return {
        "reference": reference,
        "name": reference,
        "description": f"Created by the import of case template {template}",
        "type": entry[0],
        "options": [],
        "mandatory": False,
    }


def inferred_metric(name: str, template: str) -> dict[str, Any]:
    """Returns a ``case_metrics`` item for a metric an imported template names."""
    return {
        "name": name,
        "title": name,
        "description": f"Created by the import of case template {template}",
    }


def _object(raw: Any, what: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{what} is defined by a JSON object")
    unknown = [str(k) for k in raw if k not in keys]
    if unknown:
        raise InvalidInput(
            f"{what} has unknown key {_show(unknown[0])}: use " + ", ".join(keys)
        )
    return raw


def _text(raw: Any, owner: str, key: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f"{owner} needs a {key}")
    if len(raw) > MAX_NAME_LENGTH or "\x00" in raw:
        raise InvalidInput(f"{owner}: {key} is limited to {MAX_NAME_LENGTH} characters")
    return raw


def _optional_text(raw: Any, owner: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION_LENGTH or "\x00" in raw:
        raise InvalidInput(
            f"{owner}: description must be text of at most "
            f"{MAX_DESCRIPTION_LENGTH} characters"
        )
    return raw


def _options(reference: str, kind: str, raw: Any) -> tuple[Any, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_OPTIONS:
        raise InvalidInput(
            f"custom field {reference}: options must be a list of at most "
            f"{MAX_OPTIONS} values"
        )
    options = []
    for option in raw:
        try:
            options.append(option_value(kind, option))
        except ValueError as exc:
            raise InvalidInput(
                f"custom field {reference}: option {_show(option)} {exc}"
            ) from None
    return tuple(options)


def option_value(kind: str, raw: Any) -> Any:
    """Returns ``raw`` as a value of ``kind``; raises ValueError if not one."""
    if kind == "string" and isinstance(raw, str) and "\x00" not in raw:
        return raw
    if kind == "boolean" and isinstance(raw, bool):
        return raw
    if kind == "date":
        return parse_date(raw)
    numeric = isinstance(raw, int | float) and not isinstance(raw, bool)
    if kind in NUMERIC_TYPES and numeric:
        if kind == "integer" and not float(raw).is_integer():
            raise ValueError("is not a whole number")
        return int(raw) if kind == "integer" else raw
    raise ValueError(f"is not a {kind}")


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."
