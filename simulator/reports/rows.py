"""Read side: the rows behind the listings `users`, `issues`, `messages`, `ledger`
and `outbox`, and `read_from`, which runs a read-only query on a database by URL.

Each listing returns plain dicts whose keys are the JSON contract in DESIGN.md,
with ISO-8601 UTC times, so every renderer and the tests share them. The report
and its month-by-month view are in summary.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from simulator.domain import LicenseModel, Outcome
from simulator.errors import ConfigError
from simulator.store.db import Store
from simulator.store.models import Delivery, Issue, OutboxMessage, SeatEvent, User

Row = dict[str, Any]
T = TypeVar("T")
COUNTED = (Outcome.CREATED_ISSUE.value, Outcome.THREADED.value)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_from(url: str, query: Callable[[Session], T]) -> T:
    """`query`'s answer from the database at `url`, read without writing.

    The database must be at the schema this intake-sim needs (SchemaMismatch
    otherwise); its connections are closed, not left to the collector.
    """
    store = Store(url, writer=False)
    try:
        store.check_schema()
        with store.read() as session:
            return query(session)
    finally:
        store.dispose()


def live_version(session: Session) -> Row:
    """Newest delivery and seat event: any new mail, form or directory change moves one."""
    return {
        "deliveries": int(session.scalar(select(func.max(Delivery.id))) or 0),
        "seat_events": int(session.scalar(select(func.max(SeatEvent.seq))) or 0),
    }


def _holds(model: LicenseModel) -> Any:
    """Whether the row's user holds a seat under `model` now: its ledger rows, by index."""
    total = (
        select(func.coalesce(func.sum(SeatEvent.delta), 0))
        .where(SeatEvent.user_id == User.id, SeatEvent.model == model.value)
        .scalar_subquery()
    )
    return (total > 0).label(f"{model.value}_seat")


def users(session: Session) -> list[Row]:
    """One query: each user's columns with its seats and counted messages beside them,
    read as plain rows (no ORM object per user)."""
    messages = (
        select(func.count(Delivery.id))
        .where(Delivery.user_id == User.id, Delivery.outcome.in_(COUNTED))
        .scalar_subquery()
        .label("messages")
    )
    query = select(
        User.email,
        User.name,
        User.role,
        User.origin,
        _holds(LicenseModel.SUPPORT),
        _holds(LicenseModel.TEAM),
        User.first_seen,
        messages,
    ).order_by(User.id)
    return [
        {
            "email": row.email,
            "name": row.name,
            "role": row.role,
            "origin": row.origin,
            "support_seat": bool(row.support_seat),
            "team_seat": bool(row.team_seat),
            "first_seen": iso(row.first_seen),
            "messages": int(row.messages),
        }
        for row in session.execute(query)
    ]


def issues(session: Session) -> list[Row]:
    counts = dict(
        session.execute(
            select(Delivery.issue_number, func.count(Delivery.id))
            .where(Delivery.outcome.in_(COUNTED))
            .group_by(Delivery.issue_number)
        ).all()
    )
    rows = session.execute(
        select(Issue, User.email).join(User, User.id == Issue.submitter_id).order_by(Issue.number)
    )
    return [
        {
            "number": issue.number,
            "subject": issue.subject,
            "submitter": email,
            "messages": int(counts.get(issue.number, 0)),
            "created_at": iso(issue.created_at),
        }
        for issue, email in rows
    ]


def one_of(name: str, value: str | None, choices: type[StrEnum]) -> str | None:
    """`value` when it is one of `choices` (or None); a filter never matches nothing silently."""
    if value is None or value in {choice.value for choice in choices}:
        return value
    names = ", ".join(choice.value for choice in choices)
    raise ConfigError(f"{name} {value!r} is not one of {names}")


def messages(session: Session, outcome: str | None = None) -> list[Row]:
    outcome = one_of("outcome", outcome, Outcome)
    query = select(
        Delivery.id,
        Delivery.received_at,
        Delivery.message_id,
        Delivery.sender,
        Delivery.subject,
        Delivery.outcome,
        Delivery.reason,
        Delivery.issue_number,
        Delivery.channel,
        Delivery.intake_address,
        Delivery.sender_source,
    ).order_by(Delivery.id)
    if outcome:
        query = query.where(Delivery.outcome == outcome)
    return [
        {
            "id": row.id,
            "received_at": iso(row.received_at),
            "message_id": row.message_id,
            "sender": row.sender,
            "subject": row.subject,
            "outcome": row.outcome,
            "reason": row.reason,
            "issue": row.issue_number,
            "channel": row.channel,
            "intake_address": row.intake_address,
            "sender_source": row.sender_source,
        }
        for row in session.execute(query)
    ]


def ledger(session: Session, model: str | None = None) -> list[Row]:
    model = one_of("model", model, LicenseModel)
    query = (
        select(SeatEvent, User.email)
        .join(User, User.id == SeatEvent.user_id)
        .order_by(SeatEvent.seq)
    )
    if model:
        query = query.where(SeatEvent.model == model)
    return [
        {
            "seq": event.seq,
            "at": iso(event.at),
            "model": event.model,
            "user": email,
            "delta": event.delta,
            "reason": event.reason,
            "delivery": event.delivery_id,
        }
        for event, email in session.execute(query)
    ]


def outbox(session: Session, status: str | None = None) -> list[Row]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if status:
        query = query.where(OutboxMessage.status == status)
    return [
        {
            "id": row.id,
            "created_at": iso(row.created_at),
            "kind": row.kind,
            "issue": row.issue_number,
            "recipient": row.recipient,
            "subject": row.subject,
            "status": row.status,
            "attempts": row.attempts,
            "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
            "last_error": row.last_error or None,
            "sent_at": iso(row.sent_at),
            "message_id": row.message_id,
            "delivery": row.delivery_id,
        }
        for row in session.scalars(query)
    ]
