"""Read side: the rows behind `report`, `users`, `issues`, `messages` and `ledger`.

Each function returns plain dicts whose keys are the JSON contract in
DESIGN.md, with ISO-8601 UTC times, so every renderer and the tests share them.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from simulator.domain import LicenseModel, OutboxStatus, Outcome, Role
from simulator.errors import ConfigError
from simulator.licensing import advice, timeline
from simulator.licensing.costs import ModelCost
from simulator.licensing.prices import LicensingRules
from simulator.org import Org
from simulator.store.models import Delivery, Issue, OutboxMessage, SeatEvent, User

Row = dict[str, Any]
COUNTED = (Outcome.CREATED_ISSUE.value, Outcome.THREADED.value)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_as_of(value: str | None, flag: str = "--as-of") -> datetime | None:
    """An ISO-8601 time (a trailing Z allowed; no zone means UTC), or None for now."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} wants an ISO-8601 time such as 2026-11-28T12:00Z, not {value!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def live_version(session: Session) -> Row:
    """Newest delivery and seat event: any new mail, form or directory change moves one."""
    return {
        "deliveries": int(session.scalar(select(func.max(Delivery.id))) or 0),
        "seat_events": int(session.scalar(select(func.max(SeatEvent.seq))) or 0),
    }


def _totals(session: Session, key: Any, value: Any, where: Any, keys: list[str]) -> dict[str, int]:
    """`value` grouped by `key`, with a 0 for every expected key that has no rows."""
    totals = dict.fromkeys(keys, 0)
    rows = session.execute(select(key, value).where(where).group_by(key))
    totals.update({name: int(total or 0) for name, total in rows})
    return totals


def _seat_totals(session: Session, as_of: datetime) -> dict[str, int]:
    return _totals(
        session,
        SeatEvent.model,
        func.sum(SeatEvent.delta),
        SeatEvent.at <= as_of,
        [m.value for m in LicenseModel],
    )


def _delivery_counts(session: Session, as_of: datetime) -> dict[str, int]:
    counts = _totals(
        session,
        Delivery.outcome,
        func.count(Delivery.id),
        Delivery.received_at <= as_of,
        [o.value for o in Outcome],
    )
    return {"accepted": sum(counts.values()), **counts}


def _user_counts(session: Session, as_of: datetime) -> dict[str, int]:
    return _totals(
        session,
        User.role,
        func.count(User.id),
        User.created_at <= as_of,
        [r.value for r in Role],
    )


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


def data_end(session: Session) -> datetime | None:
    """The latest moment anything happened: a delivery or a seat event."""
    latest = [
        session.scalar(select(func.max(Delivery.received_at))),
        session.scalar(select(func.max(SeatEvent.at))),
    ]
    found = [t for t in latest if t is not None]
    return max(found) if found else None


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
            SeatEvent.model == LicenseModel.TEAM.value,
            SeatEvent.reason == "notified",
            SeatEvent.delta == 1,
            SeatEvent.at <= as_of,
        )
        .distinct()
        .subquery()
    )
    held = (
        select(SeatEvent.user_id)
        .where(SeatEvent.model == LicenseModel.TEAM.value, SeatEvent.at <= as_of)
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
    return _totals(
        session,
        OutboxMessage.status,
        func.count(OutboxMessage.id),
        OutboxMessage.created_at <= as_of,
        [s.value for s in OutboxStatus],
    )


def report(session: Session, org: Org, as_of: datetime | None = None) -> Row:
    as_of = as_of or datetime.now(UTC)
    seats = _seat_totals(session, as_of)
    if org.licensing != LicensingRules():
        # The org reads the ledger with other rules (counting start, inactivity).
        seats[LicenseModel.TEAM.value] = timeline.count_at(_team_spans(session, org, as_of), as_of)
    evidence = advice.Evidence(
        customers_submitting=customers_submitting(session, as_of),
        customers_notified=customers_notified(session, as_of),
        team_seats_from_notifications=team_seats_from_notifications(session, as_of),
    )
    comparison = advice.compare(
        seats[LicenseModel.SUPPORT.value], seats[LicenseModel.TEAM.value], org.pricing, evidence
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


def _seat_events(
    session: Session, model: LicenseModel, as_of: datetime
) -> dict[int, list[tuple[datetime, int]]]:
    """Each user's (at, delta) ledger rows under `model` up to `as_of`, in ledger order."""
    events: dict[int, list[tuple[datetime, int]]] = {}
    for user_id, at, delta in session.execute(
        select(SeatEvent.user_id, SeatEvent.at, SeatEvent.delta)
        .where(SeatEvent.model == model.value, SeatEvent.at <= as_of)
        .order_by(SeatEvent.seq)
    ):
        events.setdefault(user_id, []).append((at, delta))
    return events


def _user_facts(session: Session, as_of: datetime) -> dict[int, timeline.UserFacts]:
    events = _seat_events(session, LicenseModel.TEAM, as_of)
    activity: dict[int, list[datetime]] = {}
    for user_id, at in session.execute(
        select(Delivery.user_id, Delivery.received_at)
        .where(Delivery.outcome.in_(COUNTED), Delivery.received_at <= as_of)
        .order_by(Delivery.received_at)
    ):
        activity.setdefault(user_id, []).append(at)
    return {
        user_id: timeline.UserFacts(
            created_at=created_at,
            logs_in=logs_in,
            team_events=tuple(events.get(user_id, ())),
            activity=tuple(activity.get(user_id, ())),
        )
        for user_id, created_at, logs_in in session.execute(
            select(User.id, User.created_at, User.logs_in).where(User.created_at <= as_of)
        )
    }


def _team_spans(session: Session, org: Org, as_of: datetime) -> list[timeline.Interval]:
    return [
        span
        for facts in _user_facts(session, as_of).values()
        for span in timeline.team_intervals(facts, org.licensing)
    ]


def _support_spans(session: Session, as_of: datetime) -> list[timeline.Interval]:
    events = _seat_events(session, LicenseModel.SUPPORT, as_of)
    return [span for rows in events.values() for span in timeline.ledger_intervals(tuple(rows))]


def _per_month(
    times: list[datetime], months: list[tuple[datetime, datetime]], distinct: list[object]
) -> list[int]:
    """How many distinct keys fall in each month (`times[i]` belongs to `distinct[i]`)."""
    seen: list[set[object]] = [set() for _ in months]
    starts = [start for start, _ in months]
    for at, key in zip(times, distinct, strict=True):
        index = bisect.bisect_right(starts, at) - 1
        if 0 <= index < len(months) and at < months[index][1]:
            seen[index].add(key)
    return [len(keys) for keys in seen]


def by_month(session: Session, org: Org, as_of: datetime | None = None) -> list[Row]:
    """Seats, bills, active senders and new users per calendar month, up to `as_of`."""
    as_of = as_of or datetime.now(UTC)
    end = data_end(session)
    first = session.scalar(select(func.min(SeatEvent.at)))
    first_delivery = session.scalar(select(func.min(Delivery.received_at)))
    starts = [t for t in (first, first_delivery) if t is not None]
    if end is None or not starts:
        return []
    months = timeline.months_between(min(starts), min(end, as_of))
    senders = session.execute(
        select(Delivery.received_at, Delivery.sender).where(
            Delivery.outcome.in_(COUNTED), Delivery.received_at <= as_of
        )
    ).all()
    created = session.execute(
        select(User.created_at, User.id).where(User.created_at <= as_of)
    ).all()
    return timeline.by_month(
        org.pricing,
        org.licensing,
        _support_spans(session, as_of),
        _team_spans(session, org, as_of),
        months,
        _per_month([r[0] for r in senders], months, [r[1] for r in senders]),
        _per_month([r[0] for r in created], months, [r[1] for r in created]),
    )


def _model_row(model: ModelCost) -> Row:
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
            "support_seat": seats.get((user.id, LicenseModel.SUPPORT.value), False),
            "team_seat": seats.get((user.id, LicenseModel.TEAM.value), False),
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
        Delivery.channel,
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
