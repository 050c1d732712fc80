"""delivery sender_source: which header gave a delivery's sender

Revision ID: d4f2a7c9e813
Revises: d4f8a2c61e93
Create Date: 2026-12-02 01:00:00

Intake now tries From, then Sender, then Reply-To, then the envelope, and keeps
which one it used. Rows stored before that did not record it; the server
default "" says so rather than guessing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d4f2a7c9e813"
down_revision = "d4f8a2c61e93"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("sender_source", sa.String(length=16), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("sender_source")
