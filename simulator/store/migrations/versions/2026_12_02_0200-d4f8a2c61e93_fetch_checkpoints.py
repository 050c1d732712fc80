"""fetch checkpoints and intake addresses: how far `intake-sim fetch` got in each IMAP
folder and POP3 mailbox, and which intake mailbox each delivery came to

Revision ID: d4f8a2c61e93
Revises: b7d2e94a1c60
Create Date: 2026-12-02 02:00:00

`fetch_checkpoints` holds an IMAP folder's UIDVALIDITY and the highest UID
stored; `fetched_uidls` the UIDL of every POP3 message stored. Deliveries get
`intake_address`, "" for the rows already there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d4f8a2c61e93"
down_revision = "b7d2e94a1c60"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fetch_checkpoints",
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("folder", sa.String(length=320), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "folder", name=op.f("pk_fetch_checkpoints")),
    )
    op.create_table(
        "fetched_uidls",
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("uidl", sa.String(length=70), nullable=False),
        sa.PrimaryKeyConstraint("account", "uidl", name=op.f("pk_fetched_uidls")),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("intake_address", sa.String(length=320), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("intake_address")
    op.drop_table("fetched_uidls")
    op.drop_table("fetch_checkpoints")
