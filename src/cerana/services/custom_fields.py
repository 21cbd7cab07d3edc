"""Custom field and metric values checked against their definitions (#5).

The definitions are the ``custom_fields`` and ``case_metrics`` DB lists
(`cerana.services.lists`); their shape is checked when an item is added
(`cerana.domain.custom_fields`). Here they are read back to check the values
of cases and templates, and to decide whether a case may close.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from cerana.domain import custom_fields as definitions
from cerana.domain.custom_fields import FieldDefinition, MetricDefinition
from cerana.domain.errors import AttributeCheckingError, AttributeProblem, InvalidInput
from cerana.services import lists
from cerana.services.context import Actor
from cerana.store.rows import Row

logger = logging.getLogger(__name__)


def field_definitions(
    conn: Connection, organisation: str
) -> dict[str, FieldDefinition]:
    """Returns the custom field definitions, by reference.

    An item that is not a valid definition (written before definitions
    were checked) is skipped with a warning, so one bad item does not
    block every case.
    """
    found: dict[str, FieldDefinition] = {}
    for item in lists.list_items(conn, organisation, definitions.FIELD_LIST).values():
        try:
            definition = definitions.parse_field_definition(item)
        except InvalidInput as exc:
            logger.warning("custom field definition skipped: %s", exc.message)
            continue
        found[definition.reference] = definition
    return found


def metric_definitions(
    conn: Connection, organisation: str
) -> dict[str, MetricDefinition]:
    """Returns the metric definitions, by name (invalid items skipped)."""
    found: dict[str, MetricDefinition] = {}
    for item in lists.list_items(conn, organisation, definitions.METRIC_LIST).values():
        try:
            definition = definitions.parse_metric_definition(item)
        except InvalidInput as exc:
            logger.warning("metric definition skipped: %s", exc.message)
            continue
        found[definition.name] = definition
    return found


def check_values(
    conn: Connection,
    organisation: str,
    table: str,
    custom_fields: Mapping[str, Mapping[str, Any]] | None,
    metrics: Mapping[str, Any] | None,
) -> None:
    """Checks converted custom field values and metric names against the
    definitions.

    Raises AttributeCheckingError for ``table`` naming every field that is
    not defined, has a value of another type or outside its options, and
    every metric that is not defined.
    """
    problems: list[AttributeProblem] = []
    if custom_fields:
        known = field_definitions(conn, organisation)
        for reference, content in custom_fields.items():
            problem = _field_problem(known.get(reference), reference, content)
            if problem is not None:
                problems.append(problem)
    if metrics:
        defined = metric_definitions(conn, organisation)
        problems.extend(
            AttributeProblem(
                "UnknownAttributeError",
                f"metrics.{name}",
                f"Unknown metric {name}: define it in the case_metrics list first",
            )
            for name in metrics
            if name not in defined
        )
    if problems:
        raise AttributeCheckingError(table, problems)


def _field_problem(
    definition: FieldDefinition | None, reference: str, content: Mapping[str, Any]
) -> AttributeProblem | None:
    name = f"customFields.{reference}"
    if definition is None:
        return AttributeProblem(
            "UnknownAttributeError",
            name,
            f"Unknown custom field {reference}: define it in the custom_fields "
            "list first",
        )
    kinds = [key for key in content if key != "order"]
    try:
        if len(kinds) > 1:
            raise ValueError(f"has values of several types ({', '.join(kinds)})")
        if kinds:
            definitions.check_field_value(definition, kinds[0], content[kinds[0]])
    except ValueError as exc:
        return AttributeProblem(
            "InvalidFormatAttributeError",
            name,
            f"Invalid value for custom field {reference}: {exc}",
            value=dict(content),
            format=definition.type,
        )
    return None


def check_case_values(conn: Connection, organisation: str, values: Row) -> None:
    """Checks the custom fields and metrics of a new case (column values)."""
    check_values(
        conn, organisation, "case", values.get("custom_fields"), values.get("metrics")
    )


def check_case_update(
    conn: Connection,
    organisation: str,
    current: Row,
    changes: Row,
    *,
    require_metrics: bool,
) -> None:
    """Checks a case update (column values) against the definitions.

    Only values that change are checked, so a case keeps a value whose
    definition was removed since. When the update resolves the case, every
    mandatory custom field must have a value and, with ``require_metrics``
    (the ``metrics_required_to_close`` setting), every metric of the case
    too; a case closed as a duplicate by a merge is exempt, as its values
    live on in the merged case. Raises AttributeCheckingError naming them.
    """
    # Limitation: TheHive's dotted updates (`customFields.<ref>`) are refused
    # by the attribute rules, so clients send the whole object (#5).
    check_values(
        conn,
        organisation,
        "case",
        _changed(changes.get("custom_fields"), current["custom_fields"]),
        _changed(changes.get("metrics"), current["metrics"]),
    )
    if _closes(current, changes):
        after = {**current, **changes}
        check_case_closing(
            conn,
            organisation,
            after["custom_fields"] or {},
            after["metrics"] or {},
            require_metrics=require_metrics,
        )


def check_case_closing(
    conn: Connection,
    organisation: str,
    custom_fields: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    require_metrics: bool,
) -> None:
    """Raises AttributeCheckingError naming the mandatory custom fields
    without a value and, with ``require_metrics``, the metrics without one."""
    problems = [
        AttributeProblem(
            "MissingAttributeError",
            f"customFields.{definition.reference}",
            f"Mandatory custom field {definition.reference} ({definition.name}) "
            "must be set before the case is closed",
        )
        for definition in field_definitions(conn, organisation).values()
        if definition.mandatory
        and not definitions.has_value(custom_fields.get(definition.reference))
    ]
    if require_metrics:
        problems.extend(
            AttributeProblem(
                "MissingAttributeError",
                f"metrics.{name}",
                f"Metric {name} must be set before the case is closed",
            )
            for name, value in metrics.items()
            if value is None
        )
    if problems:
        raise AttributeCheckingError("case", problems)


def _changed(new: Any, old: Any) -> dict[str, Any] | None:
    if not new:
        return None
    previous = old or {}
    return {key: value for key, value in new.items() if previous.get(key) != value}


def _closes(current: Row, changes: Row) -> bool:
    if changes.get("status") != "Resolved" or current["status"] == "Resolved":
        return False
    resolution = changes.get("resolution_status", current["resolution_status"])
    return bool(resolution != "Duplicated")


def undefined_names(
    conn: Connection, organisation: str, body: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Returns the custom fields (reference → value) and metric names that a
    raw template body names but nobody defined."""
    raw_fields = body.get("customFields")
    raw_metrics = body.get("metrics")
    fields: dict[str, Any] = {}
    if isinstance(raw_fields, Mapping):
        known = field_definitions(conn, organisation)
        fields = {ref: v for ref, v in raw_fields.items() if ref not in known}
    metrics: list[str] = []
    if isinstance(raw_metrics, Mapping):
        defined = metric_definitions(conn, organisation)
        metrics = [str(name) for name in raw_metrics if name not in defined]
    return fields, metrics


def define_missing(
    conn: Connection,
    actor: Actor,
    fields: Mapping[str, Any],
    metrics: list[str],
    template: str,
) -> None:
    """Adds definitions for the custom fields and metrics an imported
    template names: a field's type is the key of its value, a metric's
    title its name. Raises InvalidInput when a type cannot be told."""
    # Limitation: a created field has no options and is not mandatory,
    # because a template's default value cannot tell them (#5).
    for reference, content in fields.items():
        item = definitions.inferred_field(str(reference), content, template)
        lists.add_item(conn, actor, definitions.FIELD_LIST, item)
        logger.info(
            "custom field %s (%s) defined for template %s",
            reference,
            item["type"],
            template,
        )
    for name in metrics:
        item = definitions.inferred_metric(name, template)
        lists.add_item(conn, actor, definitions.METRIC_LIST, item)
        logger.info("metric %s defined for template %s", name, template)
