"""seat transition number: one row per change of a seat, enforced by a unique key

Revision ID: a9d47e3c5b21
Revises: 6f1c2a0b4d13
Create Date: 2026-11-28 04:30:00

Numbers each user's seat changes per model (1, 2, 3, ... in ledger order) so
that (user_id, model, transition) can be unique: two listeners on one
database that append the same change at once collide on it, and one retries.
Existing rows are numbered from their ledger order.

Issue numbers are now drawn by the database. intake-sim 0.1.0 chose them
itself (highest + 1), so on PostgreSQL the column's sequence never moved:
it is set past the highest existing number here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a9d47e3c5b21"
down_revision = "6f1c2a0b4d13"
branch_labels = None
depends_on = None

NUMBER_EXISTING = """
UPDATE seat_events SET transition = (
    SELECT numbered.n FROM (
        SELECT seq, ROW_NUMBER() OVER (PARTITION BY user_id, model ORDER BY seq) AS n
        FROM seat_events
    ) AS numbered
    WHERE numbered.seq = seat_events.seq
)
"""

ISSUE_SEQUENCE_PAST_MAX = """
SELECT setval(pg_get_serial_sequence('issues', 'number'), COALESCE(MAX(number), 0) + 1, false)
FROM issues
"""


def upgrade() -> None:
    with op.batch_alter_table("seat_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transition", sa.Integer(), nullable=True))
    op.execute(NUMBER_EXISTING)
    with op.batch_alter_table("seat_events", schema=None) as batch_op:
        batch_op.alter_column("transition", existing_type=sa.Integer(), nullable=False)
        # The unique key's index starts with (user_id, model): the old index is redundant.
        batch_op.drop_index("ix_seat_events_user_model")
        batch_op.create_unique_constraint(
            "uq_seat_events_user_model_transition", ["user_id", "model", "transition"]
        )
        batch_op.create_check_constraint(
            op.f("ck_seat_events_alternates"),
            "transition >= 1 AND (transition % 2 = 1) = (delta = 1)",
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ISSUE_SEQUENCE_PAST_MAX)


def downgrade() -> None:
    with op.batch_alter_table("seat_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_seat_events_alternates"), type_="check")
        batch_op.drop_constraint("uq_seat_events_user_model_transition", type_="unique")
        batch_op.create_index("ix_seat_events_user_model", ["user_id", "model"], unique=False)
        batch_op.drop_column("transition")
