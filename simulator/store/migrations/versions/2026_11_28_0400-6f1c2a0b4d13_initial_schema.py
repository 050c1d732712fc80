"""initial schema: users, issues, deliveries, known Message-IDs, seat events (0.1.0)

Revision ID: 6f1c2a0b4d13
Revises:
Create Date: 2026-11-28 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "6f1c2a0b4d13"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("in_directory", sa.Boolean(), nullable=False),
        sa.Column("logs_in", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "issues",
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("submitter_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submitter_id"], ["users.id"], name=op.f("fk_issues_submitter_id_users")
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_issues")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("envelope_from", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("sender_name", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("attachments", sa.Text(), nullable=False),
        sa.Column("in_reply_to", sa.Text(), nullable=False),
        sa.Column("references", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("issue_number", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('created_issue','threaded','duplicate','filtered','quarantined')",
            name=op.f("ck_deliveries_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_number"], ["issues.number"], name=op.f("fk_deliveries_issue_number_issues")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_deliveries_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deliveries_issue_number"), ["issue_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deliveries_message_id"), ["message_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deliveries_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(
            "ix_deliveries_sender_received_at", ["sender", "received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deliveries_user_id"), ["user_id"], unique=False)

    op.create_table(
        "known_messages",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_known_messages_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_number"], ["issues.number"], name=op.f("fk_known_messages_issue_number_issues")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_known_messages")),
    )
    op.create_table(
        "seat_events",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("model IN ('support','team')", name=op.f("ck_seat_events_model")),
        sa.CheckConstraint("delta IN (-1, 1)", name=op.f("ck_seat_events_delta")),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_seat_events_delivery_id_deliveries")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_seat_events_user_id_users")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_seat_events")),
    )
    with op.batch_alter_table("seat_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seat_events_at"), ["at"], unique=False)
        batch_op.create_index("ix_seat_events_user_model", ["user_id", "model"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seat_events", schema=None) as batch_op:
        batch_op.drop_index("ix_seat_events_user_model")
        batch_op.drop_index(batch_op.f("ix_seat_events_at"))

    op.drop_table("seat_events")
    op.drop_table("known_messages")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_user_id"))
        batch_op.drop_index("ix_deliveries_sender_received_at")
        batch_op.drop_index(batch_op.f("ix_deliveries_received_at"))
        batch_op.drop_index(batch_op.f("ix_deliveries_message_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_issue_number"))

    op.drop_table("deliveries")
    op.drop_table("issues")
    op.drop_table("users")
