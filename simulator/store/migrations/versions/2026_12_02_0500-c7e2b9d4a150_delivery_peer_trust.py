"""delivery peer and sender_trust, spool peer

Revision ID: c7e2b9d4a150
Revises: a8c3e5f17b94
Create Date: 2026-12-02 05:00:00

Deliveries keep the SMTP client's address, which per-client acknowledgement
limits count, and the reason their sender's role was believed (`[identity]`).
The spool carries the address to intake under `--ack spool`. Older rows get
"": not recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c7e2b9d4a150"
down_revision = "a8c3e5f17b94"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("peer", sa.String(length=64), server_default="", nullable=False))
        batch.add_column(
            sa.Column("sender_trust", sa.String(length=16), server_default="", nullable=False)
        )
        batch.create_index("ix_deliveries_peer", ["peer"])
    with op.batch_alter_table("spool") as batch:
        batch.add_column(sa.Column("peer", sa.String(length=64), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("spool") as batch:
        batch.drop_column("peer")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_peer")
        batch.drop_column("sender_trust")
        batch.drop_column("peer")
