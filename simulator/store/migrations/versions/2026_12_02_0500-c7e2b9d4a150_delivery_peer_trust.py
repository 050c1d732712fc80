"""delivery peer and sender_trust, spool peer

Revision ID: c7e2b9d4a150
Revises: a8c3e5f17b94
Create Date: 2026-12-02 05:00:00

Deliveries keep the SMTP client's address, which per-client acknowledgement
limits count, and the reason their sender's role was believed (`[identity]`).
The spool carries the address to intake under `--ack spool`, and each outbox
row the mailbox and client it counts against. Older rows get "": not recorded.
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
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("mailbox", sa.String(length=320), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("peer", sa.String(length=64), server_default="", nullable=False))
        batch.create_index("ix_outbox_mailbox_created_at", ["mailbox", "created_at"])
        batch.create_index("ix_outbox_peer_kind_created_at", ["peer", "kind", "created_at"])
        batch.create_index("ix_outbox_kind_created_at", ["kind", "created_at"])
    # Older rows: their recipient as it stands (a +tag is not taken off them).
    op.execute("UPDATE outbox SET mailbox = recipient")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_kind_created_at")
        batch.drop_index("ix_outbox_peer_kind_created_at")
        batch.drop_index("ix_outbox_mailbox_created_at")
        batch.drop_column("peer")
        batch.drop_column("mailbox")
    with op.batch_alter_table("spool") as batch:
        batch.drop_column("peer")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_peer")
        batch.drop_column("sender_trust")
        batch.drop_column("peer")
