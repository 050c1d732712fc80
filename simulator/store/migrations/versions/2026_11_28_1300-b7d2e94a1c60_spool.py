"""spool and spool marks: messages acknowledged before intake ran (`serve --ack spool`)

Revision ID: b7d2e94a1c60
Revises: e5a1d9c04b72
Create Date: 2026-11-28 13:00:00

New tables only; nothing existing changes. `spool` rows (PostgreSQL) live
from the 250 until the spool processor has stored their delivery;
`spool_marks` records how far it got in a SQLite database's spool file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b7d2e94a1c60"
down_revision = "e5a1d9c04b72"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("envelope_from", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spool")),
    )
    op.create_table(
        "spool_marks",
        sa.Column("spool_file", sa.String(length=36), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("spool_file", name=op.f("pk_spool_marks")),
    )


def downgrade() -> None:
    op.drop_table("spool_marks")
    op.drop_table("spool")
