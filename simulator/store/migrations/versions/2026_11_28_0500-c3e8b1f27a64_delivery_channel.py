"""delivery channel: how each delivery reached intake (smtp, web_form, ingest)

Revision ID: c3e8b1f27a64
Revises: a9d47e3c5b21
Create Date: 2026-11-28 05:00:00

Every delivery stored before the web form and `ingest` recorded their channel
came through the SMTP listener or files, which intake treated alike; the
server default "smtp" gives those rows that value.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c3e8b1f27a64"
down_revision = "a9d47e3c5b21"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("channel", sa.String(length=16), server_default="smtp", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("channel")
