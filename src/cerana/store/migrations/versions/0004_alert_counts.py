"""alert counts per organisation and status, kept by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 08:25:00

The alert list shows how many alerts match. An exact COUNT over half a
million alerts costs tens of milliseconds on every page; the usual lists
(all alerts, or those of some statuses) read these counters instead. The
database keeps them in the same transaction as the change, whatever code
(or tool) inserts, updates or deletes alerts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER tr_alert_count_insert AFTER INSERT ON alert BEGIN
      INSERT INTO alert_count (organisation, status, total)
      VALUES (NEW.organisation, NEW.status, 1)
      ON CONFLICT (organisation, status) DO UPDATE SET total = total + 1;
    END
    """,
    """
    CREATE TRIGGER tr_alert_count_delete AFTER DELETE ON alert BEGIN
      UPDATE alert_count SET total = total - 1
      WHERE organisation = OLD.organisation AND status = OLD.status;
    END
    """,
    """
    CREATE TRIGGER tr_alert_count_update AFTER UPDATE OF status, organisation ON alert
    WHEN OLD.status IS NOT NEW.status OR OLD.organisation IS NOT NEW.organisation
    BEGIN
      UPDATE alert_count SET total = total - 1
      WHERE organisation = OLD.organisation AND status = OLD.status;
      INSERT INTO alert_count (organisation, status, total)
      VALUES (NEW.organisation, NEW.status, 1)
      ON CONFLICT (organisation, status) DO UPDATE SET total = total + 1;
    END
    """,
)

_POSTGRESQL_TRIGGERS = (
    """
    CREATE FUNCTION cerana_alert_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE alert_count SET total = total - 1
        WHERE organisation = OLD.organisation AND status = OLD.status;
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO alert_count (organisation, status, total)
        VALUES (NEW.organisation, NEW.status, 1)
        ON CONFLICT (organisation, status)
        DO UPDATE SET total = alert_count.total + 1;
      END IF;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER tr_alert_count_change AFTER INSERT OR DELETE ON alert
    FOR EACH ROW EXECUTE FUNCTION cerana_alert_count()
    """,
    """
    CREATE TRIGGER tr_alert_count_update AFTER UPDATE OF status, organisation ON alert
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.organisation IS DISTINCT FROM NEW.organisation)
    EXECUTE FUNCTION cerana_alert_count()
    """,
)


def upgrade() -> None:
    op.create_table(
        "alert_count",
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organisation", "status", name=op.f("pk_alert_count")),
    )
    op.execute(
        "INSERT INTO alert_count (organisation, status, total) "
        "SELECT organisation, status, COUNT(*) FROM alert "
        "GROUP BY organisation, status"
    )
    dialect = op.get_bind().dialect.name
    for statement in (
        _POSTGRESQL_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS
    ):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tr_alert_count_update ON alert")
        op.execute("DROP TRIGGER IF EXISTS tr_alert_count_change ON alert")
        op.execute("DROP FUNCTION IF EXISTS cerana_alert_count()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS tr_alert_count_{name}")
    op.drop_table("alert_count")
