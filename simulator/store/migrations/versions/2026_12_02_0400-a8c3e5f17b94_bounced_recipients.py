"""bounced recipients: who a delivery report says could not be reached

Revision ID: a8c3e5f17b94
Revises: d4f2a7c9e813
Create Date: 2026-12-02 02:00:00

A bounce is linked to what it concerns: each Final-Recipient with its status,
the Message-ID of the mail it returns, and that mail's issue when known. A
permanent failure stops further automatic email to the address.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a8c3e5f17b94"
down_revision = "d4f2a7c9e813"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounced_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("returned_message_id", sa.String(length=255), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_bounced_recipients_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_number"],
            ["issues.number"],
            name=op.f("fk_bounced_recipients_issue_number_issues"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounced_recipients")),
    )
    with op.batch_alter_table("bounced_recipients") as batch:
        batch.create_index(batch.f("ix_bounced_recipients_email"), ["email"], unique=False)
        batch.create_index(
            batch.f("ix_bounced_recipients_delivery_id"), ["delivery_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("bounced_recipients")
