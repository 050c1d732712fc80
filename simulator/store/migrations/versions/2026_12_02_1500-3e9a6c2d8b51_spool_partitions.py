"""spool partitions: what orders a spooled message, read when it is spooled

Revision ID: 3e9a6c2d8b51
Revises: f2b6c8d14a37
Create Date: 2026-12-02 15:00:00

Several PostgreSQL spool processors work at once, each on whole partitions of
the spool: a row's partition is its sender's hash, so one sender's mail is run
in order. A reply whose original is still spooled in a partition another
processor holds waits for it; for that, each row keeps its own Message-ID and
the ids it answers. Rows spooled before this revision get partition 0 and no
ids: among themselves they keep spool order, but against newer rows nothing
orders them, so drain the spool (`intake-sim drain`) before upgrading.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3e9a6c2d8b51"
down_revision = "f2b6c8d14a37"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spool") as batch:
        batch.add_column(
            sa.Column("partition_key", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("message_id", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("answers", sa.Text(), server_default="", nullable=False))
        batch.create_index("ix_spool_partition_key_id", ["partition_key", "id"])
        batch.create_index("ix_spool_message_id", ["message_id"])


def downgrade() -> None:
    with op.batch_alter_table("spool") as batch:
        batch.drop_index("ix_spool_message_id")
        batch.drop_index("ix_spool_partition_key_id")
        batch.drop_column("answers")
        batch.drop_column("message_id")
        batch.drop_column("partition_key")
