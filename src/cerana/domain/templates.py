"""Case templates: their tasks, their export format, and how one shapes a
new case (#5).

A template row keeps its tasks as a JSON list of task objects holding only
the keys that were given, so a template exported from TheHive 3 and
imported here exports again as it came. The export format is TheHive 3's
(``AdminCaseTemplatesCtrl``): the template's attributes without ``id``,
``_``-prefixed keys and the created/updated stamps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cerana.domain import attributes as attrs
from cerana.domain.custom_fields import has_value
from cerana.domain.errors import AttributeCheckingError, AttributeProblem, InvalidInput

TABLE = attrs.CASE_TEMPLATE.model
TASK_KEYS = (
    "title",
    "group",
    "description",
    "owner",
    "order",
    "status",
    "flag",
    "startDate",
    "endDate",
    "dueDate",
)
MAX_TEMPLATE_TASKS = 1000
MAX_NAME_LENGTH = 256  # the `case_template.name` column
# Keys the server sets: dropped on import, as TheHive's export drops them.
SERVER_KEYS = frozenset({"id", "createdAt", "createdBy", "updatedAt", "updatedBy"})


def check_template_tasks(raw: Any) -> list[dict[str, Any]]:
    """Returns the tasks of a template body, each value converted.

    A task keeps the keys it was given, minus null ones (thehive4py sends
    ``"id": null``). Raises AttributeCheckingError naming every task
    problem at once (``tasks[1].title``): not a list, not objects, an
    unknown key, a missing title, a value of the wrong format.
    """
    if not isinstance(raw, list):
        raise _problems([_problem("tasks", "expected a list of task objects", raw)])
    if len(raw) > MAX_TEMPLATE_TASKS:
        raise _problems([_problem("tasks", f"more than {MAX_TEMPLATE_TASKS}", None)])
    problems: list[AttributeProblem] = []
    tasks = [
        _checked_task(position, item, problems) for position, item in enumerate(raw)
    ]
    if problems:
        raise _problems(problems)
    return tasks


def _checked_task(
    position: int, raw: Any, problems: list[AttributeProblem]
) -> dict[str, Any]:
    where = f"tasks[{position}]"
    if not isinstance(raw, Mapping):
        problems.append(_problem(where, "expected a task object", raw))
        return {}
    task: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key not in TASK_KEYS:
            problems.append(
                AttributeProblem(
                    "UnknownAttributeError",
                    f"{where}.{key}",
                    f"Unknown attribute {key} for a template task: use "
                    + ", ".join(TASK_KEYS),
                )
            )
            continue
        attribute = attrs.TASK.attributes[key]
        try:
            task[key] = attrs.convert_value(attribute, value)
        except ValueError as exc:
            problems.append(_problem(f"{where}.{key}", str(exc), value, attribute))
    if "title" not in task and not any(p.name == f"{where}.title" for p in problems):
        problems.append(
            AttributeProblem(
                "MissingAttributeError", f"{where}.title", f"{where}.title is missing"
            )
        )
    _check_order(where, task, problems)
    return task


def _check_order(
    where: str, task: dict[str, Any], problems: list[AttributeProblem]
) -> None:
    low, high = attrs.INT32
    order = task.get("order")
    if order is not None and (not isinstance(order, int) or not low <= order <= high):
        problems.append(
            _problem(f"{where}.order", "expected a whole number", order, None)
        )


def task_owners(tasks: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Returns ``{login: [task titles]}`` of the tasks that have an owner."""
    owners: dict[str, list[str]] = {}
    for task in tasks:
        if task.get("owner"):
            owners.setdefault(task["owner"], []).append(str(task.get("title")))
    return owners


def check_name(name: Any) -> None:
    """Raises AttributeCheckingError unless ``name`` fits its column."""
    if isinstance(name, str) and (not name.strip() or len(name) > MAX_NAME_LENGTH):
        why = f"a template name has 1 to {MAX_NAME_LENGTH} characters"
        raise _problems([_problem("name", why, name)])


def export_template(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Returns a template row in TheHive 3's export format.

    That is the template's attributes under their wire names, without
    ``id``, the ``_``-prefixed keys and the created/updated stamps, and
    without attributes that have no value.
    """
    exported: dict[str, Any] = {}
    for attribute in attrs.CASE_TEMPLATE.attributes.values():
        value = row.get(attribute.column)
        if attribute.model_only or value is None:
            continue
        exported[attribute.name] = value
    return exported


def export_file_name(name: str) -> str:
    """TheHive 3's export file name, ``Case-Template__<name>.json``, with
    spaces (and here anything unsafe in a file name) as ``_``."""
    return "Case-Template__" + re.sub(r"[^\w.-]", "_", name, flags=re.ASCII) + ".json"


def import_body(document: Any, where: str) -> dict[str, Any]:
    """Returns the template body of one imported JSON object.

    Server-set keys (``id``, ``_id``, ``_type``, created/updated stamps)
    are dropped, as they are when TheHive exports; any other key is kept,
    so that an unknown one is refused by the template's rules rather than
    dropped silently. Raises InvalidInput naming ``where`` when the
    document is not an object.
    """
    if not isinstance(document, Mapping):
        raise InvalidInput(
            f"{where}: a case template is a JSON object, not {type(document).__name__}"
        )
    return {
        key: value
        for key, value in document.items()
        if not (isinstance(key, str) and key.startswith("_")) and key not in SERVER_KEYS
    }


def merge_into_case(
    template: Mapping[Any, Any], fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Returns the fields of a new case, ``fields`` completed by ``template``
    (a template row).

    - the title gets the template's prefix and a space (none without a
      prefix: TheHive 3 put the space there anyway);
    - description, severity, flag and TLP: the request's, else the
      template's;
    - tags: the request's, then the template's, without repeats;
    - metrics and custom fields: the template's defaults, replaced by any
      non-null value of the request (TheHive 3 let template metrics win);
    - tasks: the request's, then the template's in their order, numbered
      after the request's.
    """
    merged = dict(fields)
    prefix, title = template.get("title_prefix"), fields.get("title")
    if prefix and isinstance(title, str):
        merged["title"] = f"{prefix} {title}"
    for name, column in (
        ("description", "description"),
        ("severity", "severity"),
        ("flag", "flag"),
        ("tlp", "tlp"),
    ):
        if merged.get(name) is None and template.get(column) is not None:
            merged[name] = template[column]
    merged["tags"] = _merged_tags(fields.get("tags"), template.get("tags") or [])
    merged["metrics"] = _merged_metrics(fields.get("metrics"), template)
    merged["customFields"] = _merged_custom_fields(fields.get("customFields"), template)
    merged["tasks"] = _merged_tasks(fields.get("tasks") or [], template)
    return merged


def _merged_tags(requested: Any, defaults: list[str]) -> Any:
    if requested is None:
        return list(defaults)
    if not isinstance(requested, list):
        return requested  # refused later by the case's rules
    return list(dict.fromkeys([*requested, *defaults]))


def _merged_metrics(requested: Any, template: Mapping[Any, Any]) -> Any:
    merged = dict(template.get("metrics") or {})
    if requested is None:
        return merged
    if not isinstance(requested, Mapping):
        return requested
    for name, value in requested.items():
        if name not in merged or value is not None:
            merged[name] = value
    return merged


def _merged_custom_fields(requested: Any, template: Mapping[Any, Any]) -> Any:
    merged = dict(template.get("custom_fields") or {})
    if requested is None:
        return merged
    if not isinstance(requested, Mapping):
        return requested
    for reference, content in requested.items():
        if reference not in merged or has_value(content):
            merged[reference] = content
    return merged


def _merged_tasks(
    requested: Sequence[Mapping[str, Any]], template: Mapping[Any, Any]
) -> list[Mapping[str, Any]]:
    listed = list(template.get("tasks") or [])
    ordered = sorted(
        enumerate(listed), key=lambda item: (item[1].get("order", item[0]), item[0])
    )
    offset = len(requested)
    added = [
        {**task, "order": offset + position}
        for position, (_, task) in enumerate(ordered)
    ]
    return [*requested, *added]


def _problem(
    name: str, why: str, value: Any, attribute: attrs.Attribute | None = None
) -> AttributeProblem:
    return AttributeProblem(
        "InvalidFormatAttributeError",
        name,
        f"Invalid value for {name}: {why}",
        value=value,
        format=attribute.kind.value if attribute else "json",
    )


def _problems(problems: list[AttributeProblem]) -> AttributeCheckingError:
    return AttributeCheckingError(TABLE, problems)
