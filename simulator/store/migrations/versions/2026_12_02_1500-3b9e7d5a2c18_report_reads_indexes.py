"""report reads indexes: customers who wrote, counted per user without a sort

Revision ID: 3b9e7d5a2c18
Revises: 3e9a6c2d8b51
Create Date: 2026-12-02 15:00:00

`report` counts the customers who wrote counted mail, and those who wrote only by
the web form, grouped per user. The deliveries' index on `user_id` alone made
that a table read and a sort of every counted delivery; widened to (user_id,
outcome, received_at, channel), it is read in user order and grouped as it is
read, and it still serves every lookup of a user's deliveries. The users' index
by role gains the origin second, so the few users who are no customer (the
directory's roles, the shared account) are found in it without reading the
table.
"""

from __future__ import annotations

from alembic import op

revision = "3b9e7d5a2c18"
down_revision = "3e9a6c2d8b51"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_user_outcome_received_channel",
        "deliveries",
        ["user_id", "outcome", "received_at", "channel"],
    )
    op.drop_index("ix_deliveries_user_id", table_name="deliveries")
    op.create_index(
        "ix_users_role_origin_created_at", "users", ["role", "origin", "created_at", "first_seen"]
    )
    op.drop_index("ix_users_role_created_at", table_name="users")


def downgrade() -> None:
    op.create_index("ix_users_role_created_at", "users", ["role", "created_at", "first_seen"])
    op.drop_index("ix_users_role_origin_created_at", table_name="users")
    op.create_index("ix_deliveries_user_id", "deliveries", ["user_id"])
    op.drop_index("ix_deliveries_user_outcome_received_channel", table_name="deliveries")
