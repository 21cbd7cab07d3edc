"""The database schema, as SQLAlchemy Core tables.

Conventions:
- every record carries ``organisation``; ids are random strings;
- dates are epoch milliseconds (BigInteger), as on TheHive's wire;
- ``version`` is bumped on every update for optimistic concurrency;
- lists that users filter on (tags, custom field values, file hashes) live
  in side tables with their own indexes, written in the same transaction as
  the row; the row keeps a JSON copy for fast output.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(40)
LOGIN = String(128)


def _record_columns() -> list[Column[object]]:
    return [
        Column("organisation", String(64), nullable=False),
        Column("created_by", LOGIN, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("updated_by", LOGIN),
        Column("updated_at", BigInteger),
        Column("version", Integer, nullable=False, default=1),
    ]


organisation = Table(
    "organisation",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

sequence = Table(
    "sequence",
    metadata,
    Column("organisation", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

user = Table(
    "user_account",
    metadata,
    Column("id", LOGIN, primary_key=True),  # the login
    Column("name", String(256), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("password_hash", String(256)),
    # SHA-256 of the API key: keys are 256-bit random, so a fast hash is
    # enough, and the unique index makes key look-up one probe.
    Column("key_hash", String(64), unique=True),
    Column("avatar", Text),
    Column("preferences", Text, nullable=False, default="{}"),
    *_record_columns(),
)

case = Table(
    "case_record",
    metadata,
    Column("id", ID, primary_key=True),
    Column("number", BigInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("severity", Integer, nullable=False),
    Column("owner", LOGIN, nullable=False),
    Column("start_date", BigInteger, nullable=False),
    Column("end_date", BigInteger),
    Column("flag", Boolean, nullable=False),
    Column("tlp", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("resolution_status", String(32)),
    Column("impact_status", String(32)),
    Column("summary", Text),
    Column("merge_into", ID),
    Column("merge_from", JSON),
    Column("metrics", JSON, nullable=False),
    Column("custom_fields", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    *_record_columns(),
    UniqueConstraint("organisation", "number", name="uq_case_number"),
    Index("ix_case_status_start", "organisation", "status", "start_date"),
    Index("ix_case_start", "organisation", "start_date"),
    Index("ix_case_owner", "owner"),
    # Covers the filters and sort of the case list, so counting the cases
    # a tag look-up found never reads the (wide) rows themselves, and the
    # liveness test of the similar look-up (resolution: duplicates).
    Index(
        "ix_case_cover",
        "id",
        "organisation",
        "status",
        "start_date",
        "resolution_status",
    ),
)

case_tag = Table(
    "case_tag",
    metadata,
    Column(
        "case_id",
        ID,
        ForeignKey("case_record.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(512), primary_key=True),
    Index("ix_case_tag_tag", "tag", "case_id"),
)

# How many cases of each organisation and status carry each tag, kept by
# triggers (migration 0007): the total of "Open cases tagged phishing".
case_tag_count = Table(
    "case_tag_count",
    metadata,
    Column("organisation", String(64), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("tag", String(512), primary_key=True),
    Column("total", BigInteger, nullable=False),
)

case_custom_field = Table(
    "case_custom_field",
    metadata,
    Column(
        "case_id",
        ID,
        ForeignKey("case_record.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("reference", String(128), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("string_value", Text),
    Column("number_value", Float),
    Column("boolean_value", Boolean),
    Column("date_value", BigInteger),
    Index("ix_ccf_string", "reference", "string_value"),
    Index("ix_ccf_number", "reference", "number_value"),
    Index("ix_ccf_date", "reference", "date_value"),
)

task = Table(
    "task",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "case_id", ID, ForeignKey("case_record.id", ondelete="CASCADE"), nullable=False
    ),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Column("owner", LOGIN),
    Column("status", String(16), nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("start_date", BigInteger),
    Column("end_date", BigInteger),
    Column("order", Integer, nullable=False),
    Column("due_date", BigInteger),
    Column("group", String(256), nullable=False),
    *_record_columns(),
    Index("ix_task_case", "case_id", "order"),
    Index("ix_task_status", "organisation", "status"),
    Index("ix_task_owner", "owner", "status"),
)

attachment = Table(
    "attachment",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the content
    Column("sha1", String(40), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

task_log = Table(
    "task_log",
    metadata,
    Column("id", ID, primary_key=True),
    Column("task_id", ID, ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", ID, nullable=False),
    Column("message", Text, nullable=False),
    Column("start_date", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("owner", LOGIN, nullable=False),
    Column("attachment_id", String(64), ForeignKey("attachment.id")),
    Column("attachment_name", String(512)),
    Column("attachment_content_type", String(256)),
    *_record_columns(),
    Index("ix_task_log_task", "task_id", "start_date"),
    Index("ix_task_log_case", "case_id"),
)

observable = Table(
    "observable",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "case_id", ID, ForeignKey("case_record.id", ondelete="CASCADE"), nullable=False
    ),
    Column("data_type", String(64), nullable=False),
    Column("data", Text),
    # SHA-1 of the value (or the file's SHA-256): an index on long values
    # would exceed PostgreSQL's b-tree entry limit, a digest never does.
    Column("data_key", String(64), nullable=False),
    Column("message", Text),
    Column("start_date", BigInteger, nullable=False),
    Column("tlp", Integer, nullable=False),
    Column("ioc", Boolean, nullable=False),
    Column("sighted", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reports", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("attachment_id", String(64), ForeignKey("attachment.id")),
    Column("attachment_name", String(512)),
    Column("attachment_content_type", String(256)),
    *_record_columns(),
    UniqueConstraint("case_id", "data_type", "data_key", name="uq_observable_in_case"),
    # Covers the similar look-up: which live observables of other cases
    # hold a value, newest first, without reading their rows.
    Index(
        "ix_observable_value",
        "data_type",
        "data_key",
        "status",
        "case_id",
        "start_date",
        "id",
    ),
    Index("ix_observable_case", "case_id", "status"),
)

observable_tag = Table(
    "observable_tag",
    metadata,
    Column(
        "observable_id",
        ID,
        ForeignKey("observable.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(512), primary_key=True),
    Index("ix_observable_tag_tag", "tag", "observable_id"),
)

# Hash values an observable stands for: a `hash` observable's value, or the
# three digests of a `file` observable. TheHive's similarity rule matches a
# hash against files and files against each other through this table. The
# observable's datatype is repeated here (it never changes) so a look-up of
# the files carrying a common hash reads the index, not every holder.
observable_hash = Table(
    "observable_hash",
    metadata,
    Column(
        "observable_id",
        ID,
        ForeignKey("observable.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("hash", String(128), primary_key=True),
    Column("data_type", String(64), nullable=False),
    Index("ix_observable_hash_hash", "hash", "data_type", "observable_id"),
)

dblist = Table(
    "dblist",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("organisation", String(64), nullable=False),
    Column("list_name", String(128), nullable=False),
    Column("value", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("organisation", "id", name="uq_dblist_item"),
    Index("ix_dblist_list", "organisation", "list_name"),
)

audit = Table(
    "audit",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("organisation", String(64), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", ID, nullable=False),
    Column("root_id", ID, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("base", Boolean, nullable=False),
    Column("details", JSON, nullable=False),
    Column("created_by", LOGIN, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_audit_root", "root_id", "id"),
    Index("ix_audit_created", "organisation", "created_at"),
    Index("ix_audit_request", "request_id"),
    Index("ix_audit_object", "object_id"),
)

alert = Table(
    "alert",
    metadata,
    Column("id", ID, primary_key=True),
    Column("type", String(128), nullable=False),
    Column("source", String(256), nullable=False),
    Column("source_ref", String(512), nullable=False),
    Column("date", BigInteger, nullable=False),
    Column("last_sync_date", BigInteger, nullable=False),
    Column("case_id", ID, ForeignKey("case_record.id", ondelete="SET NULL")),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("severity", Integer, nullable=False),
    Column("tlp", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("follow", Boolean, nullable=False),
    Column("case_template", String(256)),
    Column("tags", JSON, nullable=False),
    # Upsert mode counts repeats instead of refusing them.
    Column("occurrences", Integer, nullable=False, default=1),
    Column("last_seen", BigInteger, nullable=False),
    Column("artifact_count", Integer, nullable=False, default=0),
    *_record_columns(),
    UniqueConstraint(
        "organisation", "type", "source", "source_ref", name="uq_alert_source_ref"
    ),
    Index("ix_alert_status_date", "organisation", "status", "date"),
    Index("ix_alert_date", "organisation", "date"),
    Index("ix_alert_case", "case_id"),
)


def _status_counter(name: str) -> Table:
    """How many rows each organisation has in each status, kept by database
    triggers (migrations 0004 and 0006) so that lists need not count them."""
    return Table(
        name,
        metadata,
        Column("organisation", String(64), primary_key=True),
        Column("status", String(16), primary_key=True),
        Column("total", BigInteger, nullable=False),
    )


alert_count = _status_counter("alert_count")
case_count = _status_counter("case_count")

alert_tag = Table(
    "alert_tag",
    metadata,
    Column(
        "alert_id", ID, ForeignKey("alert.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("tag", String(512), primary_key=True),
    Index("ix_alert_tag_tag", "tag", "alert_id"),
)

alert_artifact = Table(
    "alert_artifact",
    metadata,
    Column("id", ID, primary_key=True),
    Column("alert_id", ID, ForeignKey("alert.id", ondelete="CASCADE"), nullable=False),
    Column("organisation", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("data_type", String(64), nullable=False),
    Column("data", Text),
    Column("data_key", String(64), nullable=False),
    Column("message", Text),
    Column("tags", JSON, nullable=False),
    Column("tlp", Integer, nullable=False),
    Column("ioc", Boolean, nullable=False),
    Column("start_date", BigInteger, nullable=False),
    Column("attachment_id", String(64), ForeignKey("attachment.id")),
    Column("attachment_name", String(512)),
    Column("attachment_content_type", String(256)),
    UniqueConstraint("alert_id", "data_type", "data_key", name="uq_alert_artifact"),
    Index(
        "ix_alert_artifact_value", "data_type", "data_key", "organisation", "alert_id"
    ),
)

case_template = Table(
    "case_template",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("title_prefix", Text),
    Column("description", Text),
    Column("severity", Integer),
    Column("tlp", Integer),
    Column("flag", Boolean),
    Column("status", String(16), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("custom_fields", JSON, nullable=False),
    Column("tasks", JSON, nullable=False),
    *_record_columns(),
    UniqueConstraint("organisation", "name", name="uq_case_template_name"),
)

webhook = Table(
    "webhook",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("url", Text, nullable=False),
    # Signs deliveries with HMAC-SHA256; never sent back by the API.
    Column("secret", Text),
    Column("object_types", JSON, nullable=False),
    Column("operations", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    *_record_columns(),
    UniqueConstraint("organisation", "name", name="uq_webhook_name"),
)

webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column(
        "webhook_id", ID, ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False
    ),
    Column("audit_id", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # Pending | Delivered | Failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("last_status_code", Integer),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    UniqueConstraint("webhook_id", "audit_id", name="uq_webhook_delivery"),
    Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
)

# --- Analysis engine (#6) ---------------------------------------------------

# A job of the embedded engine (Cortex's job). Artifacts stay in the row as
# JSON: they are read with their job and never searched on their own.
analysis_job = Table(
    "analysis_job",
    metadata,
    Column("id", ID, primary_key=True),
    Column("organisation", String(64), nullable=False),
    Column("analyzer_id", String(256), nullable=False),
    Column("analyzer_name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("data_type", String(64), nullable=False),
    Column("data", Text),
    Column("attachment_id", String(64), ForeignKey("attachment.id")),
    Column("attachment_name", String(512)),
    Column("attachment_content_type", String(256)),
    Column("tlp", Integer, nullable=False),
    Column("pap", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("label", String(256)),
    Column("cache_tag", String(64), nullable=False),
    Column("error_message", Text),
    Column("input", JSON),  # redacted: secrets replaced before storing
    Column("report", JSON),  # {full, summary, operations}
    Column("artifacts", JSON),
    Column("attempts", Integer, nullable=False),
    Column("worker", String(128)),  # host:pid running it, for crash recovery
    Column("not_before", BigInteger),  # held back by a rate limit until then
    Column("start_date", BigInteger),
    Column("end_date", BigInteger),
    Column("created_by", LOGIN, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger),
    Index("ix_analysis_job_cache", "analyzer_id", "cache_tag", "start_date"),
    Index("ix_analysis_job_analyzer", "analyzer_id", "status", "start_date"),
    Index("ix_analysis_job_status", "status", "not_before"),
    Index("ix_analysis_job_created", "organisation", "created_at"),
)

# Analyzer configuration edited by administrators through the API; it
# overrides the configuration file. Secret values are encrypted.
analyzer_config = Table(
    "analyzer_config",
    metadata,
    Column("organisation", String(64), primary_key=True),
    Column("name", String(256), primary_key=True),  # analyzer or base config
    Column("configuration", JSON, nullable=False),
    Column("updated_by", LOGIN, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# One row per analyzer, locked while a job is admitted so that concurrency
# and rate limits hold across worker processes.
analyzer_gate = Table(
    "analyzer_gate",
    metadata,
    Column("analyzer_id", String(256), primary_key=True),
    Column("admitted_at", BigInteger, nullable=False),
)

# Health of each Cortex instance as last probed by the periodic check.
cortex_instance = Table(
    "cortex_instance",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("status", String(16), nullable=False),  # OK | ERROR
    Column("version", String(64), nullable=False),
    Column("message", Text),
    Column("checked_at", BigInteger, nullable=False),
)

# The platform's job (TheHive's case_artifact_job): an analyzer run on an
# observable through one Cortex instance, embedded or remote.
cortex_job = Table(
    "cortex_job",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "observable_id",
        ID,
        ForeignKey("observable.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("case_id", ID, nullable=False),
    Column("analyzer_id", String(256), nullable=False),
    Column("analyzer_name", String(256), nullable=False),
    Column("analyzer_definition", String(256), nullable=False),
    Column("cortex_id", String(128), nullable=False),
    Column("cortex_job_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("report", JSON),
    Column("start_date", BigInteger, nullable=False),
    Column("end_date", BigInteger),
    *_record_columns(),
    Index("ix_cortex_job_observable", "observable_id", "created_at"),
    Index("ix_cortex_job_status", "status"),
    Index("ix_cortex_job_remote", "cortex_id", "cortex_job_id"),
)

# Auto-run rule: run these analyzers on every new observable of a datatype.
analyzer_autorun = Table(
    "analyzer_autorun",
    metadata,
    Column("id", ID, primary_key=True),
    Column("data_type", String(64), nullable=False),
    Column("analyzers", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    *_record_columns(),
    Index("ix_analyzer_autorun_type", "organisation", "data_type"),
)
