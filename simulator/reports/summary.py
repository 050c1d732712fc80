"""The report and its month-by-month view, with the evidence counts behind the advice.

`report` prices the seats held at a moment under both licensing models and says
which to choose and why; `by_month` gives the same per calendar month. Both
return plain dicts whose keys are the JSON contract in DESIGN.md, with ISO-8601
UTC times. `model_rows` and `month_rows` flatten them for tables and CSV.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session, aliased

from simulator.domain import LicenseModel, OutboxStatus, Outcome, Role
from simulator.errors import ConfigError
from simulator.licensing import advice, timeline
from simulator.licensing.costs import ModelCost
from simulator.licensing.prices import LicensingRules
from simulator.org import Org
from simulator.reports.rows import COUNTED, Row, iso
from simulator.store.models import BouncedRecipient, Delivery, OutboxMessage, SeatEvent, User

MODELS = (LicenseModel.SUPPORT.value, LicenseModel.TEAM.value)


def parse_as_of(value: str | None, name: str = "as_of") -> datetime | None:
    """An ISO-8601 time (a trailing Z allowed; no zone means UTC), or None for now.

    A bad value is a ConfigError that calls it by `name`, the caller's word for it.
    """
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{name} {value!r} is not an ISO-8601 time such as 2026-11-28T12:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


def undeliverable_addresses(session: Session, as_of: datetime) -> int:
    """Distinct addresses a permanent bounce marked undeliverable by `as_of`."""
    query = select(func.count(func.distinct(BouncedRecipient.email))).where(
        BouncedRecipient.permanent.is_(True), BouncedRecipient.at <= as_of
    )
    return session.scalar(query) or 0


def noise_senders_filtered(session: Session, as_of: datetime) -> int:
    """Distinct senders all of whose deliveries were filtered and who are no user:
    the Team seats an unfiltered system would have added.

    Driven from the filtered deliveries (a range of the outcome index), each sender
    checked for a counted delivery and a user by index: the cost follows the
    filtered mail, not every delivery.
    """
    counted = aliased(Delivery)
    query = select(func.count(func.distinct(Delivery.sender))).where(
        Delivery.outcome == Outcome.FILTERED.value,
        Delivery.received_at <= as_of,
        Delivery.sender.is_not(None),
        ~exists().where(
            counted.sender == Delivery.sender,
            counted.received_at <= as_of,
            counted.outcome.in_(COUNTED),
        ),
        ~exists().where(User.email == Delivery.sender, User.created_at <= as_of),
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
    """Customers the system sent (or is sending) automatic email to by `as_of`.

    Driven from the outbox, each recipient looked up by its unique address."""
    customer = exists().where(
        User.email == OutboxMessage.recipient, User.role == Role.CUSTOMER.value
    )
    return int(
        session.scalar(
            select(func.count(func.distinct(OutboxMessage.recipient))).where(
                OutboxMessage.created_at <= as_of,
                OutboxMessage.status != OutboxStatus.SUPPRESSED.value,
                customer,
            )
        )
        or 0
    )


def team_seats_from_notifications(session: Session, as_of: datetime) -> int:
    """Team seats that exist only because the system sent automatic email.

    A seat opened with reason `notified`, still held, whose user has not sent a
    counted email by `as_of` (one who has would be a seat anyway). Only users
    without a counted email by then are looked at, each by index.
    """
    team = and_(
        SeatEvent.user_id == User.id,
        SeatEvent.model == LicenseModel.TEAM.value,
        SeatEvent.at <= as_of,
    )
    notified = exists().where(team, SeatEvent.reason == "notified", SeatEvent.delta == 1)
    held = select(func.coalesce(func.sum(SeatEvent.delta), 0)).where(team).scalar_subquery()
    query = select(func.count(User.id)).where(
        (User.first_seen.is_(None)) | (User.first_seen > as_of), notified, held > 0
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
            "undeliverable": undeliverable_addresses(session, as_of),
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
            select(User.id, User.created_at, User.logs_in)
        )
        # A user whose record is newer than a seat it holds (a directory user
        # reconciled after older mail was imported) still counts from that seat.
        if created_at <= as_of or user_id in events
    }


def _team_spans(session: Session, org: Org, as_of: datetime) -> list[timeline.Interval]:
    return [
        span
        for facts in _user_facts(session, as_of).values()
        for span in timeline.team_intervals(facts, org.licensing)
    ]


def _month_of(session: Session, column: Any) -> Any:
    """SQL for the UTC calendar month ("YYYY-MM") of a UTCDateTime column. Both
    backends hold UTC without a zone; SQLite as ISO text, whose first 7 characters
    are the month."""
    if session.get_bind().dialect.name == "sqlite":
        return func.substr(column, 1, 7)
    return func.to_char(column, "YYYY-MM")


def _ledger_months(
    session: Session, model: LicenseModel, as_of: datetime, months: list[tuple[datetime, datetime]]
) -> timeline.SeatCounts:
    """`timeline.monthly_seats` of the ledger's own spans under `model`, in one SQL pass.

    The ledger alternates +1 and -1 per user and model (a check constraint holds
    it), so its spans start and end exactly at its rows, and the seats held are a
    running sum of the deltas in time order, a seat that ends first at a tie (as
    `monthly_seats` orders them). Per month the database returns the net change and
    the highest running sum; nothing per row reaches Python.
    """
    running = (
        func.sum(SeatEvent.delta)
        .over(order_by=(SeatEvent.at, SeatEvent.delta), rows=(None, 0))
        .label("running")
    )
    ordered = (
        select(_month_of(session, SeatEvent.at).label("month"), SeatEvent.delta, running)
        .where(SeatEvent.model == model.value, SeatEvent.at <= as_of)
        .subquery()
    )
    per_month = session.execute(
        select(ordered.c.month, func.sum(ordered.c.delta), func.max(ordered.c.running))
        .group_by(ordered.c.month)
        .order_by(ordered.c.month)
    ).all()
    keys = [start.strftime("%Y-%m") for start, _ in months]
    held = sum(int(net) for month, net, _ in per_month if month < keys[0])
    found = {month: (int(net), int(peak)) for month, net, peak in per_month}
    counts: timeline.SeatCounts = []
    for key in keys:
        net, peak = found.get(key, (0, held))
        counts.append((held + net, max(held, peak)))
        held += net
    return counts


def _distinct_per_month(
    session: Session, column: Any, key: Any, where: Any, months: list[tuple[datetime, datetime]]
) -> list[int]:
    """How many distinct `key` values have rows in each month (NULL counts as one value,
    as a Python set would count None)."""
    month = _month_of(session, column)
    nulls = func.max(case((key.is_(None), 1), else_=0))
    found = dict(
        session.execute(
            select(month, func.count(func.distinct(key)) + nulls).where(where).group_by(month)
        ).all()
    )
    return [int(found.get(start.strftime("%Y-%m"), 0)) for start, _ in months]


def by_month(session: Session, org: Org, as_of: datetime | None = None) -> list[Row]:
    """Seats, bills, active senders and new users per calendar month, up to `as_of`.

    Computed in SQL (grouped per month) whenever the org reads the ledger as
    written; other licensing rules need each user's spans (timeline.team_intervals).
    """
    as_of = as_of or datetime.now(UTC)
    end = data_end(session)
    first = session.scalar(select(func.min(SeatEvent.at)))
    first_delivery = session.scalar(select(func.min(Delivery.received_at)))
    starts = [t for t in (first, first_delivery) if t is not None]
    if end is None or not starts:
        return []
    months = timeline.months_between(min(starts), min(end, as_of))
    if timeline.reads_ledger_as_written(org.licensing):
        team = _ledger_months(session, LicenseModel.TEAM, as_of, months)
    else:
        team = timeline.monthly_seats(_team_spans(session, org, as_of), months)
    counted = and_(Delivery.outcome.in_(COUNTED), Delivery.received_at <= as_of)
    return timeline.by_month(
        org.pricing,
        org.licensing,
        _ledger_months(session, LicenseModel.SUPPORT, as_of, months),
        team,
        months,
        _distinct_per_month(session, Delivery.received_at, Delivery.sender, counted, months),
        _distinct_per_month(session, User.created_at, User.id, User.created_at <= as_of, months),
    )


def _model_row(model: ModelCost) -> Row:
    return {"seats": model.seats, "unit_price": model.unit_price, "cost": model.cost}


def model_rows(data: Row) -> list[Row]:
    """A report as one row per model, for CSV: seats, price, cost, cheaper, recommended."""
    return [
        {
            "model": model,
            **{key: data[model][key] for key in ("seats", "unit_price", "cost")},
            "cheaper": data["cheaper_model"] == model,
            "recommended": data["recommended_model"] == model,
        }
        for model in MODELS
    ]


def month_rows(rows: list[Row]) -> list[Row]:
    """`by_month` rows with one level of keys, for tables and CSV."""
    return [
        {
            "month": r["month"],
            **{f"{m}_seats": r[m]["seats"] for m in MODELS},
            **{f"{m}_billed": r[m]["billed_seats"] for m in MODELS},
            **{f"{m}_cost": r[m]["cost"] for m in MODELS},
            "cheaper_model": r["cheaper_model"],
            "active_senders": r["active_senders"],
            "new_users": r["new_users"],
        }
        for r in rows
    ]
