"""outbox, issue participants and secrets: automatic email to customers

Revision ID: e5a1d9c04b72
Revises: c3e8b1f27a64
Create Date: 2026-11-28 05:30:00

`outbox` holds each automatic email, written in the transaction of the
delivery that caused it; `issue_participants` records who takes part in an
issue's conversation (the recipients of updates); `secrets` keeps the key that
signs our Message-IDs when the org file sets none. Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e5a1d9c04b72"
down_revision = "c3e8b1f27a64"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issue_participants",
        sa.Column("issue_number", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_issue_participants_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_number"],
            ["issues.number"],
            name=op.f("fk_issue_participants_issue_number_issues"),
        ),
        sa.PrimaryKeyConstraint("issue_number", "email", name=op.f("pk_issue_participants")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending','sent','failed','suppressed')", name=op.f("ck_outbox_status")
        ),
        sa.CheckConstraint("kind IN ('acknowledgement','update')", name=op.f("ck_outbox_kind")),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_outbox_delivery_id_deliveries")
        ),
        sa.ForeignKeyConstraint(
            ["issue_number"], ["issues.number"], name=op.f("fk_outbox_issue_number_issues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.create_index(batch.f("ix_outbox_issue_number"), ["issue_number"], unique=False)
        batch.create_index(
            "ix_outbox_recipient_created_at", ["recipient", "created_at"], unique=False
        )
        batch.create_index(
            "ix_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secrets")),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_status_next_attempt_at")
        batch.drop_index("ix_outbox_recipient_created_at")
        batch.drop_index(batch.f("ix_outbox_issue_number"))
    op.drop_table("outbox")
    op.drop_table("issue_participants")
