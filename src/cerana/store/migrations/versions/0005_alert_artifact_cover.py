"""alert artifact value index covers organisation and alert

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:10:00

"Seen in N other alerts" counts, per artifact of an alert preview, the
alerts holding the same value. With the index on (data_type, data_key)
alone, each match cost a read of its table row for the organisation and
the alert id; with both in the index the count reads the index only.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_alert_artifact_value", table_name="alert_artifact")
    op.create_index(
        "ix_alert_artifact_value",
        "alert_artifact",
        ["data_type", "data_key", "organisation", "alert_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_alert_artifact_value", table_name="alert_artifact")
    op.create_index(
        "ix_alert_artifact_value", "alert_artifact", ["data_type", "data_key"]
    )
