"""Attribute rules of the entities, as TheHive 3 defines them.

Each entity is described once by an `EntitySpec`: its wire attribute names
(``startDate``), the column each maps to (``start_date``), the kind of value,
and the rules (required, default, read-only, server-set, enum values). The
same description drives input checking here, the query DSL compiler in
`cerana.store.query`, and the JSON output in `cerana.api`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cerana.domain.dates import now_ms, parse_date
from cerana.domain.errors import AttributeCheckingError, AttributeProblem
from cerana.domain.errors import clip_value as _clip

# A single text value above this size is refused: descriptions of real
# incidents stay far below, and the limit keeps a request from filling the disk.
MAX_TEXT_LENGTH = 1_000_000
MAX_STRING_LENGTH = 8192
MAX_TAGS = 500


class Kind(StrEnum):
    STRING = "string"  # exact-match keyword
    TEXT = "text"  # free text, searched with _like
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    ENUM = "enumeration"
    USER = "user"  # a login
    TAGS = "tags"  # list of strings, searchable one by one
    STRINGS = "strings"  # list of strings, not searchable
    METRICS = "metrics"  # {name: number | null}
    CUSTOM_FIELDS = "customFields"  # {ref: {type: value, order: n}}
    JSON = "json"  # opaque object kept as given


@dataclass(frozen=True)
class Attribute:
    """One attribute of an entity, with its wire name and its rules."""

    name: str
    column: str
    kind: Kind
    required: bool = False
    default: Callable[[], Any] | None = None
    values: tuple[Any, ...] = ()
    readonly: bool = False
    model_only: bool = False
    audited: bool = True
    sensitive: bool = False
    nullable_on_update: bool = True
    # Whole-number range of the column a stored value must fit (None: any).
    stored_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class EntitySpec:
    """The attributes of one entity type (TheHive model)."""

    model: str
    label: str
    path: str
    attributes: Mapping[str, Attribute]
    parent: str | None = None
    parent_column: str | None = None
    extra_searchable: Mapping[str, Attribute] = field(default_factory=dict)

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name) or self.extra_searchable.get(name)


def _meta_attributes() -> list[Attribute]:
    return [
        Attribute("createdBy", "created_by", Kind.USER, model_only=True),
        Attribute("createdAt", "created_at", Kind.DATE, model_only=True),
        Attribute("updatedBy", "updated_by", Kind.USER, model_only=True),
        Attribute("updatedAt", "updated_at", Kind.DATE, model_only=True),
    ]


def _spec(
    model: str,
    label: str,
    path: str,
    attributes: list[Attribute],
    parent: str | None = None,
    parent_column: str | None = None,
) -> EntitySpec:
    every = attributes + _meta_attributes()
    return EntitySpec(
        model=model,
        label=label,
        path=path,
        attributes={a.name: a for a in every},
        parent=parent,
        parent_column=parent_column,
        extra_searchable={
            "_id": Attribute("_id", "id", Kind.STRING, model_only=True),
            "id": Attribute("id", "id", Kind.STRING, model_only=True),
        },
    )


INT32 = (-(2**31), 2**31 - 1)
SEVERITIES = (1, 2, 3)
TLPS = (0, 1, 2, 3)
CASE_STATUSES = ("Open", "Resolved", "Deleted")
RESOLUTION_STATUSES = (
    "Indeterminate",
    "FalsePositive",
    "TruePositive",
    "Other",
    "Duplicated",
)
IMPACT_STATUSES = ("NoImpact", "WithImpact", "NotApplicable")
TASK_STATUSES = ("Waiting", "InProgress", "Completed", "Cancel")
OK_DELETED = ("Ok", "Deleted")
USER_STATUSES = ("Ok", "Locked")
ROLES = ("read", "write", "admin", "alert")


def _empty_dict() -> dict[str, Any]:
    return {}


def _two() -> int:
    return 2


CASE = _spec(
    "case",
    "Case",
    "/case",
    [
        Attribute("caseId", "number", Kind.NUMBER, model_only=True),
        Attribute("title", "title", Kind.TEXT, required=True),
        Attribute("description", "description", Kind.TEXT, required=True),
        Attribute("severity", "severity", Kind.NUMBER, default=_two, values=SEVERITIES),
        Attribute("owner", "owner", Kind.USER, required=True),
        Attribute("startDate", "start_date", Kind.DATE, default=now_ms),
        Attribute("endDate", "end_date", Kind.DATE),
        Attribute("tags", "tags", Kind.TAGS),
        Attribute("flag", "flag", Kind.BOOLEAN, default=lambda: False),
        Attribute("tlp", "tlp", Kind.NUMBER, default=_two, values=TLPS),
        Attribute(
            "status", "status", Kind.ENUM, default=lambda: "Open", values=CASE_STATUSES
        ),
        Attribute("metrics", "metrics", Kind.METRICS, default=_empty_dict),
        Attribute(
            "resolutionStatus",
            "resolution_status",
            Kind.ENUM,
            values=RESOLUTION_STATUSES,
        ),
        Attribute("impactStatus", "impact_status", Kind.ENUM, values=IMPACT_STATUSES),
        Attribute("summary", "summary", Kind.TEXT),
        Attribute("mergeInto", "merge_into", Kind.STRING, model_only=True),
        Attribute("mergeFrom", "merge_from", Kind.STRINGS, model_only=True),
        Attribute(
            "customFields", "custom_fields", Kind.CUSTOM_FIELDS, default=_empty_dict
        ),
    ],
)

TASK = _spec(
    "case_task",
    "Task",
    "/case/task",
    [
        Attribute("title", "title", Kind.TEXT, required=True),
        Attribute("description", "description", Kind.TEXT),
        Attribute("owner", "owner", Kind.USER),
        Attribute(
            "status",
            "status",
            Kind.ENUM,
            default=lambda: "Waiting",
            values=TASK_STATUSES,
        ),
        Attribute("flag", "flag", Kind.BOOLEAN, default=lambda: False),
        Attribute("startDate", "start_date", Kind.DATE),
        Attribute("endDate", "end_date", Kind.DATE),
        Attribute("order", "order", Kind.NUMBER, default=lambda: 0, stored_range=INT32),
        Attribute("dueDate", "due_date", Kind.DATE),
        Attribute("group", "group", Kind.STRING, default=lambda: "default"),
    ],
    parent="case",
    parent_column="case_id",
)

LOG = _spec(
    "case_task_log",
    "Log",
    "/case/task/log",
    [
        Attribute("message", "message", Kind.TEXT, required=True),
        Attribute("startDate", "start_date", Kind.DATE, default=now_ms),
        Attribute(
            "status", "status", Kind.ENUM, default=lambda: "Ok", values=OK_DELETED
        ),
        Attribute("owner", "owner", Kind.USER, required=True),
        Attribute("attachment.name", "attachment_name", Kind.STRING, model_only=True),
        Attribute("attachment.id", "attachment_id", Kind.STRING, model_only=True),
        Attribute(
            "attachment.contentType",
            "attachment_content_type",
            Kind.STRING,
            model_only=True,
        ),
    ],
    parent="case_task",
    parent_column="task_id",
)

OBSERVABLE = _spec(
    "case_artifact",
    "Observable",
    "/case/artifact",
    [
        Attribute("data", "data", Kind.STRING, readonly=True),
        Attribute("dataType", "data_type", Kind.STRING, required=True, readonly=True),
        Attribute("message", "message", Kind.TEXT),
        Attribute("startDate", "start_date", Kind.DATE, default=now_ms),
        Attribute("tlp", "tlp", Kind.NUMBER, default=_two, values=TLPS),
        Attribute("tags", "tags", Kind.TAGS),
        Attribute("ioc", "ioc", Kind.BOOLEAN, default=lambda: False),
        Attribute("sighted", "sighted", Kind.BOOLEAN, default=lambda: False),
        Attribute(
            "status", "status", Kind.ENUM, default=lambda: "Ok", values=OK_DELETED
        ),
        Attribute("reports", "reports", Kind.JSON, model_only=True, audited=False),
        Attribute("attachment.name", "attachment_name", Kind.STRING, model_only=True),
        Attribute("attachment.id", "attachment_id", Kind.STRING, model_only=True),
        Attribute(
            "attachment.contentType",
            "attachment_content_type",
            Kind.STRING,
            model_only=True,
        ),
    ],
    parent="case",
    parent_column="case_id",
)

USER = _spec(
    "user",
    "User",
    "/user",
    [
        Attribute("login", "id", Kind.STRING, required=True, readonly=True),
        Attribute("name", "name", Kind.STRING, required=True),
        Attribute("roles", "roles", Kind.STRINGS, default=lambda: [], values=ROLES),
        Attribute(
            "status", "status", Kind.ENUM, default=lambda: "Ok", values=USER_STATUSES
        ),
        Attribute("password", "password", Kind.STRING, sensitive=True, audited=False),
        Attribute("avatar", "avatar", Kind.TEXT, audited=False),
        Attribute("preferences", "preferences", Kind.TEXT, sensitive=True),
    ],
)

ALERT_STATUSES = ("New", "Updated", "Ignored", "Imported")

ALERT = _spec(
    "alert",
    "Alert",
    "/alert",
    [
        Attribute("type", "type", Kind.STRING, required=True, readonly=True),
        Attribute("source", "source", Kind.STRING, required=True, readonly=True),
        Attribute("sourceRef", "source_ref", Kind.STRING, required=True, readonly=True),
        Attribute("date", "date", Kind.DATE, default=now_ms, readonly=True),
        Attribute("lastSyncDate", "last_sync_date", Kind.DATE, model_only=True),
        Attribute("case", "case_id", Kind.STRING, model_only=True),
        Attribute("title", "title", Kind.TEXT, required=True),
        Attribute("description", "description", Kind.TEXT, required=True),
        Attribute("severity", "severity", Kind.NUMBER, default=_two, values=SEVERITIES),
        Attribute("tags", "tags", Kind.TAGS),
        Attribute("tlp", "tlp", Kind.NUMBER, default=_two, values=TLPS),
        Attribute(
            "status", "status", Kind.ENUM, model_only=True, values=ALERT_STATUSES
        ),
        Attribute("follow", "follow", Kind.BOOLEAN, model_only=True),
        Attribute("caseTemplate", "case_template", Kind.STRING),
        Attribute("occurrences", "occurrences", Kind.NUMBER, model_only=True),
        Attribute("lastSeen", "last_seen", Kind.DATE, model_only=True),
        Attribute("observableCount", "artifact_count", Kind.NUMBER, model_only=True),
    ],
)

TEMPLATE_STATUSES = ("Ok", "Deleted")

CASE_TEMPLATE = _spec(
    "caseTemplate",
    "Case template",
    "/case/template",
    [
        Attribute("name", "name", Kind.STRING, required=True),
        Attribute("titlePrefix", "title_prefix", Kind.TEXT),
        Attribute("description", "description", Kind.TEXT),
        Attribute("severity", "severity", Kind.NUMBER, values=SEVERITIES),
        Attribute("tlp", "tlp", Kind.NUMBER, values=TLPS),
        Attribute("flag", "flag", Kind.BOOLEAN),
        Attribute(
            "status",
            "status",
            Kind.ENUM,
            default=lambda: "Ok",
            values=TEMPLATE_STATUSES,
        ),
        Attribute("tags", "tags", Kind.TAGS),
        Attribute("metrics", "metrics", Kind.METRICS, default=_empty_dict),
        Attribute(
            "customFields", "custom_fields", Kind.CUSTOM_FIELDS, default=_empty_dict
        ),
        Attribute("tasks", "tasks", Kind.JSON, default=lambda: []),
    ],
)

ENTITIES: dict[str, EntitySpec] = {
    spec.model: spec
    for spec in (CASE, TASK, LOG, OBSERVABLE, USER, ALERT, CASE_TEMPLATE)
}


def check_create(spec: EntitySpec, body: Mapping[str, Any]) -> dict[str, Any]:
    """Checks a creation body and returns column values, defaults applied.

    Accepts wire names; ``null`` or ``[]`` take the default, as in TheHive.
    Raises AttributeCheckingError listing every problem at once: unknown or
    server-set attributes, missing required ones, values of the wrong format.
    """
    problems: list[AttributeProblem] = []
    values: dict[str, Any] = {}
    for name, raw in body.items():
        attribute = _writable(spec, name, problems)
        if attribute is None or raw is None or raw == []:
            continue
        _convert_into(spec, attribute, raw, values, problems)
    for attribute in spec.attributes.values():
        if attribute.model_only or attribute.column in values:
            continue
        if attribute.default is not None:
            values[attribute.column] = attribute.default()
        elif attribute.required:
            problems.append(_missing(attribute))
    if problems:
        raise AttributeCheckingError(spec.model, problems)
    return values


def check_update(spec: EntitySpec, body: Mapping[str, Any]) -> dict[str, Any]:
    """Checks a PATCH body and returns the column values to change.

    ``null`` or ``[]`` clear an optional attribute; both are refused for a
    required one. Read-only attributes are refused. Raises
    AttributeCheckingError listing every problem.
    """
    problems: list[AttributeProblem] = []
    values: dict[str, Any] = {}
    for name, raw in body.items():
        attribute = _writable(spec, name, problems)
        if attribute is None:
            continue
        if attribute.readonly:
            problems.append(
                AttributeProblem(
                    "UpdateReadOnlyAttributeError",
                    name,
                    f"Attribute {name} is read-only",
                )
            )
        elif raw is None or raw == []:
            if attribute.required:
                problems.append(_missing(attribute))
            else:
                values[attribute.column] = _cleared(attribute)
        else:
            _convert_into(spec, attribute, raw, values, problems)
    if problems:
        raise AttributeCheckingError(spec.model, problems)
    return values


def _cleared(attribute: Attribute) -> Any:
    if attribute.kind in (Kind.TAGS, Kind.STRINGS):
        return []
    if attribute.kind in (Kind.METRICS, Kind.CUSTOM_FIELDS):
        return {}
    return None


def _writable(
    spec: EntitySpec, name: str, problems: list[AttributeProblem]
) -> Attribute | None:
    attribute = spec.attributes.get(name)
    if attribute is None or attribute.model_only:
        problems.append(
            AttributeProblem(
                "UnknownAttributeError",
                name,
                f"Unknown attribute {name} for {spec.label.lower()}",
            )
        )
        return None
    return attribute


def _missing(attribute: Attribute) -> AttributeProblem:
    return AttributeProblem(
        "MissingAttributeError",
        attribute.name,
        f"Attribute {attribute.name} is missing",
    )


def _convert_into(
    spec: EntitySpec,
    attribute: Attribute,
    raw: Any,
    values: dict[str, Any],
    problems: list[AttributeProblem],
) -> None:
    try:
        values[attribute.column] = _check_stored_range(
            attribute, convert_value(attribute, raw)
        )
    except ValueError as exc:
        problems.append(
            AttributeProblem(
                "InvalidFormatAttributeError",
                attribute.name,
                f"Invalid value for {attribute.name}: {exc}",
                value=_clip(raw),
                format=attribute.kind.value,
            )
        )


def _check_stored_range(attribute: Attribute, value: Any) -> Any:
    # Searches may compare with any number; only stored values must fit.
    if attribute.stored_range is None:
        return value
    low, high = attribute.stored_range
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}")
    return value


def convert_value(attribute: Attribute, raw: Any) -> Any:
    """Returns ``raw`` converted to the attribute's kind.

    Raises ValueError with a short reason when it does not fit.
    """
    converter = _CONVERTERS[attribute.kind]
    value = converter(raw)
    enumerated = attribute.kind in (Kind.NUMBER, Kind.ENUM)
    if attribute.values and enumerated and value not in attribute.values:
        allowed = ", ".join(str(v) for v in attribute.values)
        raise ValueError(f"{raw!r} is not one of {allowed}")
    if attribute.values and attribute.kind == Kind.STRINGS:
        lowered = [v.lower() for v in value]
        unknown = [v for v in lowered if v not in attribute.values]
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not one of {', '.join(attribute.values)}"
            )
        value = list(dict.fromkeys(lowered))
    return value


def _to_string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__}")
    if len(raw) > MAX_STRING_LENGTH:
        raise ValueError(f"longer than {MAX_STRING_LENGTH} characters")
    if "\x00" in raw:
        raise ValueError("contains a NUL character")
    return raw


def _to_text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__}")
    if len(raw) > MAX_TEXT_LENGTH:
        raise ValueError(f"longer than {MAX_TEXT_LENGTH} characters")
    if "\x00" in raw:
        raise ValueError("contains a NUL character")
    return raw


def _to_number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(raw, int):
        if abs(raw) >= 2**63:
            raise ValueError("number out of range")
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError("number must be finite")
        return int(raw) if raw.is_integer() and abs(raw) < 2**63 else raw
    if isinstance(raw, str):
        try:
            return _to_number(float(raw) if "." in raw else int(raw))
        except ValueError:
            raise ValueError(f"'{raw[:40]}' is not a number") from None
    raise ValueError(f"expected a number, got {type(raw).__name__}")


def _to_boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw in ("true", "1", 1):
        return True
    if raw in ("false", "0", 0):
        return False
    raise ValueError(f"expected true or false, got {_clip(raw)!r}")


def _to_tags(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > MAX_TAGS:
        raise ValueError(f"more than {MAX_TAGS} tags")
    tags = []
    for item in items:
        tag = _to_string(item).strip()
        if not tag:
            raise ValueError("a tag is empty")
        if len(tag) > 512:
            raise ValueError("a tag is longer than 512 characters")
        tags.append(tag)
    return list(dict.fromkeys(tags))


def _to_strings(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    return [_to_string(item) for item in items]


def _to_metrics(raw: Any) -> dict[str, int | float | None]:
    if not isinstance(raw, dict):
        raise ValueError("expected an object of metric names to numbers")
    metrics: dict[str, int | float | None] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or len(name) > 128:
            raise ValueError(f"metric name {_clip(name)!r} is invalid")
        metrics[name] = None if value is None else _to_number(value)
    return metrics


CUSTOM_FIELD_TYPES = ("string", "number", "integer", "float", "boolean", "date")


def _to_custom_fields(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ValueError("expected an object of field references")
    fields: dict[str, dict[str, Any]] = {}
    for reference, content in raw.items():
        if not isinstance(reference, str) or not reference or len(reference) > 128:
            raise ValueError(f"custom field reference {_clip(reference)!r} is invalid")
        fields[reference] = _to_custom_value(reference, content)
    return fields


def _to_custom_value(reference: str, content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise ValueError(
            f"custom field {reference} must be an object like {{'string': 'x'}}"
        )
    value: dict[str, Any] = {}
    for key, item in content.items():
        if key == "order":
            value["order"] = None if item is None else _to_number(item)
        elif key in CUSTOM_FIELD_TYPES:
            value[key] = None if item is None else _custom_typed(reference, key, item)
        else:
            raise ValueError(f"custom field {reference} has an unknown type {key!r}")
    return value


def _custom_typed(reference: str, kind: str, item: Any) -> Any:
    try:
        if kind == "string":
            return _to_string(item)
        if kind == "boolean":
            return _to_boolean(item)
        if kind == "date":
            return parse_date(item)
        number = _to_number(item)
        if kind == "integer" and not isinstance(number, int):
            raise ValueError("expected a whole number")
        return number
    except ValueError as exc:
        raise ValueError(f"custom field {reference}.{kind}: {exc}") from None


def _to_json(raw: Any) -> Any:
    return raw


def _to_date(raw: Any) -> int:
    return parse_date(raw)


_CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.STRING: _to_string,
    Kind.TEXT: _to_text,
    Kind.NUMBER: _to_number,
    Kind.BOOLEAN: _to_boolean,
    Kind.DATE: _to_date,
    Kind.ENUM: _to_string,
    Kind.USER: _to_string,
    Kind.TAGS: _to_tags,
    Kind.STRINGS: _to_strings,
    Kind.METRICS: _to_metrics,
    Kind.CUSTOM_FIELDS: _to_custom_fields,
    Kind.JSON: _to_json,
}
