"""How each entity type maps onto tables: the registry the query compiler,
the repositories and the stats share."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from cerana.domain import attributes as attrs
from cerana.domain.attributes import EntitySpec
from cerana.store import tables


@dataclass(frozen=True)
class Model:
    """An entity type: its attribute spec, its table and its side tables."""

    spec: EntitySpec
    table: Table
    tag_table: Table | None = None
    tag_column: str | None = None  # foreign key column in tag_table
    custom_field_table: Table | None = None
    parent: str | None = None  # model name of the parent
    parent_column: str | None = None  # column of `table` pointing at it
    has_organisation: bool = True
    # Per-(organisation, status) counts kept by triggers, and the statuses:
    # searches on the status alone read their totals there.
    status_counter: Table | None = None
    statuses: tuple[str, ...] = ()
    # The same per status and tag: searches on the status and one tag.
    tag_counter: Table | None = None

    @property
    def name(self) -> str:
        return self.spec.model


CASE = Model(
    attrs.CASE,
    tables.case,
    tag_table=tables.case_tag,
    tag_column="case_id",
    custom_field_table=tables.case_custom_field,
    status_counter=tables.case_count,
    statuses=attrs.CASE_STATUSES,
    tag_counter=tables.case_tag_count,
)
TASK = Model(attrs.TASK, tables.task, parent="case", parent_column="case_id")
LOG = Model(attrs.LOG, tables.task_log, parent="case_task", parent_column="task_id")
OBSERVABLE = Model(
    attrs.OBSERVABLE,
    tables.observable,
    tag_table=tables.observable_tag,
    tag_column="observable_id",
    parent="case",
    parent_column="case_id",
)
USER = Model(attrs.USER, tables.user)
ALERT = Model(
    attrs.ALERT,
    tables.alert,
    tag_table=tables.alert_tag,
    tag_column="alert_id",
    status_counter=tables.alert_count,
    statuses=attrs.ALERT_STATUSES,
)
CASE_TEMPLATE = Model(attrs.CASE_TEMPLATE, tables.case_template)

MODELS: dict[str, Model] = {
    m.name: m for m in (CASE, TASK, LOG, OBSERVABLE, USER, ALERT, CASE_TEMPLATE)
}


def model_named(name: str) -> Model | None:
    """Returns the model registered under TheHive's model name, if any."""
    return MODELS.get(name)
