"""report indexes: the report's totals read an index alone, not every row

Revision ID: f2b6c8d14a37
Revises: a8c3e5f17b94
Create Date: 2026-12-02 05:00:00

`report` sums the ledger per model, and counts deliveries per outcome and users
per role (and customers who wrote), each up to a moment. With the grouping
column first and the moment second, each total is a range read of one covering
index: over 10^6 ledger rows that is several times faster than the scan of the
table it replaces.
"""

from __future__ import annotations

from alembic import op

revision = "f2b6c8d14a37"
down_revision = "c7e2b9d4a150"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_seat_events_model_at_delta", "seat_events", ["model", "at", "delta"])
    op.create_index("ix_deliveries_outcome_received_at", "deliveries", ["outcome", "received_at"])
    op.create_index("ix_users_role_created_at", "users", ["role", "created_at", "first_seen"])


def downgrade() -> None:
    op.drop_index("ix_users_role_created_at", table_name="users")
    op.drop_index("ix_deliveries_outcome_received_at", table_name="deliveries")
    op.drop_index("ix_seat_events_model_at_delta", table_name="seat_events")
