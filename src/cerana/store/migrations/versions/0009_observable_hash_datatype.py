"""observable_hash says whether its observable is a file or a hash

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:05:00

A hash is similar to the other observables of that value and to the files
carrying it. The files were found through observable_hash, whose rows did
not say which observables are files: a hash held by 2,600 observables read
each of them by primary key to find the few files among them. The
observable's datatype, which never changes, now sits in the row and in the
hash index, so those files come from the index alone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("observable_hash") as batch_op:
        batch_op.add_column(sa.Column("data_type", sa.String(64), nullable=True))
    op.execute(
        "UPDATE observable_hash SET data_type = (SELECT observable.data_type"
        " FROM observable WHERE observable.id = observable_hash.observable_id)"
    )
    with op.batch_alter_table("observable_hash") as batch_op:
        batch_op.alter_column("data_type", existing_type=sa.String(64), nullable=False)
        batch_op.drop_index("ix_observable_hash_hash")
        batch_op.create_index(
            "ix_observable_hash_hash", ["hash", "data_type", "observable_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("observable_hash") as batch_op:
        batch_op.drop_index("ix_observable_hash_hash")
        batch_op.create_index("ix_observable_hash_hash", ["hash", "observable_id"])
        batch_op.drop_column("data_type")
