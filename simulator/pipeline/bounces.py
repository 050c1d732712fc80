"""Bounces act on what they concern: the recipient that failed, and the mail returned.

A delivery filtered as `bounce` records each recipient its delivery-status part
names, with the status code, the Message-ID of the mail it returns and that
mail's issue when we know it (one of our automatic emails, or a message we
stored). A permanent failure (5.x.x) makes the address undeliverable, and no
more automatic email is queued to it; a soft one (4.x.x) is recorded only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, insert, select
from sqlalchemy.orm import Session

from simulator.pipeline.parse import InboundMail
from simulator.store.models import BouncedRecipient, KnownMessage, OutboxMessage

T = TypeVar("T")
INSERT_BOUNCED = insert(BouncedRecipient.__table__)


def record(session: Session, mail: InboundMail, delivery_id: int, at: datetime) -> int:
    """Write one row per failed recipient of this bounce; returns how many were permanent."""
    returned, issue = _returned(session, mail.returned_ids)
    rows = [
        {
            "email": address,
            "status": status,
            "permanent": status.startswith("5"),
            "delivery_id": delivery_id,
            "returned_message_id": returned[:255],
            "issue_number": issue,
            "at": at,
        }
        for address, status in mail.failed_recipients
    ]
    if rows:
        # Core inserts, like every row intake writes: the undeliverable check of the
        # next email in the batch (a Core read, no autoflush) sees them at once.
        session.connection().execute(INSERT_BOUNCED, rows)
    return sum(row["permanent"] for row in rows)


def _returned(session: Session, ids: tuple[str, ...]) -> tuple[str, int | None]:
    """The first returned id we know, with its issue; else the first id, no issue."""
    for message_id in ids:
        ours = session.scalar(
            select(OutboxMessage.issue_number).where(OutboxMessage.message_id == message_id)
        )
        if ours is not None:
            return message_id, ours
        known = session.scalar(
            select(KnownMessage.issue_number).where(KnownMessage.message_id == message_id)
        )
        if known is not None:
            return message_id, known
    return (ids[0] if ids else ""), None


BOUNCED = BouncedRecipient.__table__.c


def latest_permanent(column: ColumnElement[T]) -> ScalarSelect[T]:
    """`column` of the latest permanent failure reported for the address bound as
    :address (NULL when there is none): a permanent bounce makes it undeliverable.
    A subquery, so that the caller asks it with its other questions in one statement."""
    return (
        select(column)
        .where(BOUNCED.email == bindparam("address"), BOUNCED.permanent.is_(True))
        .order_by(BOUNCED.id.desc())
        .limit(1)
        .scalar_subquery()
    )
