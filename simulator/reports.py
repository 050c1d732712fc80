"""Read side: the rows behind `report`, `users`, `issues`, `messages` and `ledger`.

Each function returns plain dicts whose keys are the JSON contract in
DESIGN.md, with ISO-8601 UTC times, so every renderer and the tests share them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from simulator import licensing
from simulator.org import Org
from simulator.store.models import (
    Delivery,
    Issue,
    Model,
    OutboxMessage,
    OutboxStatus,
    Outcome,
    Role,
    SeatEvent,
    User,
)

Row = dict[str, Any]
COUNTED = (Outcome.CREATED_ISSUE.value, Outcome.THREADED.value)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _seat_totals(session: Session, as_of: datetime) -> dict[str, int]:
    rows = session.execute(
        select(SeatEvent.model, func.sum(SeatEvent.delta))
        .where(SeatEvent.at <= as_of)
        .group_by(SeatEvent.model)
    )
    totals = {m.value: 0 for m in Model}
    totals.update({model: int(total or 0) for model, total in rows})
    return totals


def _delivery_counts(session: Session, as_of: datetime) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.outcome, func.count(Delivery.id))
        .where(Delivery.received_at <= as_of)
        .group_by(Delivery.outcome)
    )
    counts = {o.value: 0 for o in Outcome}
    counts.update({outcome: int(n) for outcome, n in rows})
    return {"accepted": sum(counts.values()), **counts}


def _user_counts(session: Session, as_of: datetime) -> dict[str, int]:
    rows = session.execute(
        select(User.role, func.count(User.id)).where(User.created_at <= as_of).group_by(User.role)
    )
    counts = {r.value: 0 for r in Role}
    counts.update({role: int(n) for role, n in rows})
    return counts


def noise_senders_filtered(session: Session, as_of: datetime) -> int:
    """Distinct senders all of whose deliveries were filtered and who are no user:
    the Team seats an unfiltered system would have added."""
    per_sender = (
        select(
            Delivery.sender.label("sender"),
            func.sum(case((Delivery.outcome == Outcome.FILTERED.value, 0), else_=1)).label("kept"),
        )
        .where(
            Delivery.sender.is_not(None),
            Delivery.received_at <= as_of,
            Delivery.outcome.in_((Outcome.FILTERED.value, *COUNTED)),
        )
        .group_by(Delivery.sender)
        .subquery()
    )
    query = (
        select(func.count())
        .select_from(per_sender)
        .outerjoin(User, and_(User.email == per_sender.c.sender, User.created_at <= as_of))
        .where(per_sender.c.kept == 0, User.id.is_(None))
    )
    return int(session.scalar(query) or 0)


def customers_submitting(session: Session, as_of: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(User.id)).where(
                User.role == Role.CUSTOMER.value,
                User.first_seen.is_not(None),
                User.first_seen <= as_of,
            )
        )
        or 0
    )


def customers_notified(session: Session, as_of: datetime) -> int:
    """Customers the system sent (or is sending) automatic email to by `as_of`."""
    return int(
        session.scalar(
            select(func.count(func.distinct(OutboxMessage.recipient)))
            .join(User, User.email == OutboxMessage.recipient)
            .where(
                User.role == Role.CUSTOMER.value,
                OutboxMessage.created_at <= as_of,
                OutboxMessage.status != OutboxStatus.SUPPRESSED.value,
            )
        )
        or 0
    )


def team_seats_from_notifications(session: Session, as_of: datetime) -> int:
    """Team seats that exist only because the system sent automatic email.

    A seat opened with reason `notified`, still held, whose user has not sent a
    counted email by `as_of` (one who has would be a seat anyway).
    """
    notified = (
        select(SeatEvent.user_id)
        .where(
            SeatEvent.model == Model.TEAM.value,
            SeatEvent.reason == "notified",
            SeatEvent.delta == 1,
            SeatEvent.at <= as_of,
        )
        .distinct()
        .subquery()
    )
    held = (
        select(SeatEvent.user_id)
        .where(SeatEvent.model == Model.TEAM.value, SeatEvent.at <= as_of)
        .group_by(SeatEvent.user_id)
        .having(func.sum(SeatEvent.delta) > 0)
        .subquery()
    )
    query = (
        select(func.count(User.id))
        .join(notified, notified.c.user_id == User.id)
        .join(held, held.c.user_id == User.id)
        .where((User.first_seen.is_(None)) | (User.first_seen > as_of))
    )
    return int(session.scalar(query) or 0)


def _outbox_counts(session: Session, as_of: datetime) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count(OutboxMessage.id))
        .where(OutboxMessage.created_at <= as_of)
        .group_by(OutboxMessage.status)
    )
    counts = {s.value: 0 for s in OutboxStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts


def report(session: Session, org: Org, as_of: datetime | None = None) -> Row:
    as_of = as_of or datetime.now(UTC)
    seats = _seat_totals(session, as_of)
    evidence = licensing.Evidence(
        customers_submitting=customers_submitting(session, as_of),
        customers_notified=customers_notified(session, as_of),
        team_seats_from_notifications=team_seats_from_notifications(session, as_of),
    )
    comparison = licensing.compare(
        seats[Model.SUPPORT.value], seats[Model.TEAM.value], org.pricing, evidence
    )
    without = comparison.team_without_notifications
    return {
        "as_of": iso(as_of),
        "organization": org.name,
        "currency": org.pricing.currency,
        "period": org.pricing.period,
        "deliveries": _delivery_counts(session, as_of),
        "users": _user_counts(session, as_of),
        "support": _model_row(comparison.support),
        "team": {
            **_model_row(comparison.team),
            "noise_senders_filtered": noise_senders_filtered(session, as_of),
            "seats_from_notifications": evidence.team_seats_from_notifications,
            "seats_without_notifications": without.seats,
            "cost_without_notifications": without.cost,
        },
        "breakeven_team_seats": comparison.breakeven_team_seats,
        "cheaper_model": comparison.cheaper_model,
        "recommended_model": comparison.recommended_model,
        "reasons": comparison.reasons,
        "notifications": {
            "customers_notified": evidence.customers_notified,
            **_outbox_counts(session, as_of),
        },
    }


def _model_row(model: licensing.ModelCost) -> Row:
    return {"seats": model.seats, "unit_price": model.unit_price, "cost": model.cost}


def _seat_flags(session: Session) -> dict[tuple[int, str], bool]:
    rows = session.execute(
        select(SeatEvent.user_id, SeatEvent.model, func.sum(SeatEvent.delta)).group_by(
            SeatEvent.user_id, SeatEvent.model
        )
    )
    return {(user_id, model): bool(total and total > 0) for user_id, model, total in rows}


def users(session: Session) -> list[Row]:
    seats = _seat_flags(session)
    message_counts = dict(
        session.execute(
            select(Delivery.user_id, func.count(Delivery.id))
            .where(Delivery.outcome.in_(COUNTED))
            .group_by(Delivery.user_id)
        ).all()
    )
    return [
        {
            "email": user.email,
            "name": user.name,
            "role": user.role,
            "origin": user.origin,
            "support_seat": seats.get((user.id, Model.SUPPORT.value), False),
            "team_seat": seats.get((user.id, Model.TEAM.value), False),
            "first_seen": iso(user.first_seen),
            "messages": int(message_counts.get(user.id, 0)),
        }
        for user in session.scalars(select(User).order_by(User.id))
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


def messages(session: Session, outcome: str | None = None) -> list[Row]:
    query = select(
        Delivery.id,
        Delivery.received_at,
        Delivery.message_id,
        Delivery.sender,
        Delivery.subject,
        Delivery.outcome,
        Delivery.reason,
        Delivery.issue_number,
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
        }
        for row in session.execute(query)
    ]


def ledger(session: Session, model: str | None = None) -> list[Row]:
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
