"""The report and its month-by-month view, with the evidence counts behind the advice.

`report` prices the seats held at a moment under both licensing models and says
which to choose and why; `by_month` gives the same per calendar month. Both
return plain dicts whose keys are the JSON contract in DESIGN.md, with ISO-8601
UTC times. `model_rows` and `month_rows` flatten them for tables and CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from simulator.domain import (
    Channel,
    LicenseModel,
    Origin,
    OutboxStatus,
    Outcome,
    Role,
    SeatReason,
)
from simulator.errors import ConfigError
from simulator.licensing import advice, costs, seats
from simulator.licensing.costs import ModelCost
from simulator.licensing.prices import LicensingRules
from simulator.org import Org, PriceBook
from simulator.reports import rows
from simulator.reports.columns import flat_month
from simulator.reports.rows import COUNTED, Row, iso
from simulator.store.models import (
    BouncedRecipient,
    Delivery,
    OutboxMessage,
    SeatEvent,
    User,
    UTCDateTime,
)

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


def _by_mail() -> Any:
    """1 for a delivery that came by mail (any channel but the web form), else 0."""
    return case((Delivery.channel != Channel.WEB_FORM.value, 1), else_=0)


def _writers(session: Session, by_mail: Any) -> tuple[int, int]:
    """Of per-user `by_mail` flags (NULL: no counted mail), how many users wrote and
    how many of them only by the web form."""
    wrote, by_form = session.execute(
        select(func.count(by_mail), func.coalesce(func.sum(case((by_mail == 0, 1), else_=0)), 0))
    ).one()
    return int(wrote), int(by_form)


# The roles that are no customer (every role is one of Role, as the pipeline writes it).
NOT_CUSTOMER_ROLES = tuple(r.value for r in Role if r is not Role.CUSTOMER)


def submitters(session: Session, org: Org, as_of: datetime) -> dict[str, Any]:
    """Who wrote counted mail by `as_of`, for the advice: customer users with a counted
    delivery (billed noise is no submission; the shared account is no customer),
    those of them who used only the web form, and the strangers behind the shared
    account.

    Every user's counts come from one pass over the deliveries' (user, outcome, time,
    channel) index in user order, grouped as it is read: no sort, no user looked up.
    The few users who are no customer (agents, employees, the shared account) are then
    read by index and taken off; the shared account's strangers are read from its own
    deliveries."""
    counted = and_(Delivery.outcome.in_(COUNTED), Delivery.received_at <= as_of)
    # No WHERE on the outcome: it would tempt the planner to the outcome index and a sort.
    everyone = (
        select(func.max(case((counted, _by_mail()))).label("by_mail"))
        .where(Delivery.user_id.is_not(None))
        .group_by(Delivery.user_id)
        .subquery()
    )
    shared_account = and_(User.role == Role.CUSTOMER.value, User.origin == Origin.SHARED.value)
    theirs = (
        select(
            select(func.max(_by_mail()))
            .where(Delivery.user_id == User.id, counted)
            .scalar_subquery()
            .label("by_mail")
        )
        .where(or_(User.role.in_(NOT_CUSTOMER_ROLES), shared_account))
        .subquery()
    )
    all_wrote, all_by_form = _writers(session, everyone.c.by_mail)
    others_wrote, others_by_form = _writers(session, theirs.c.by_mail)
    shared = (
        select(Delivery.sender, User.email)
        .select_from(Delivery)
        .join(User, Delivery.user_id == User.id)
        .where(counted, Delivery.user_id.in_(select(User.id).where(shared_account)))
        .subquery()
    )
    # A delivery without a sender is one more stranger, as a set of senders has it.
    strangers, unnamed, account = session.execute(
        select(
            func.count(func.distinct(shared.c.sender)),
            func.coalesce(_has_null(shared.c.sender), 0),
            func.min(shared.c.email),
        )
    ).one()
    return {
        "customers_submitting": all_wrote - others_wrote,
        "customers_by_web_form": all_by_form - others_by_form,
        "strangers_shared": int(strangers) + int(unnamed),
        "shared_user": account or "",
    }


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
    support_seats = held_in_ledger(session, LicenseModel.SUPPORT, as_of)
    if seats.reads_ledger_as_written(org.licensing):
        # The engine's spans are the ledger's own: read the totals in SQL, not per user.
        team_seats = held_in_ledger(session, LicenseModel.TEAM, as_of)
        notified = team_seats_from_notifications(session, as_of)
    else:
        moment = seats.stamp(as_of)
        everyone = people(session, as_of, org.licensing)
        team_seats = seats.seats_at(
            (span for p in everyone for span in seats.team_spans(p, org.licensing)), moment
        )
        notified = seats.notified_seats_at(everyone, org.licensing, moment)
    evidence = advice.Evidence(
        **submitters(session, org, as_of),
        customers_notified=customers_notified(session, as_of),
        team_seats_from_notifications=notified,
    )
    comparison = advice.compare(support_seats, team_seats, org.pricing, evidence)
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
        "pricing": pricing_facts(org),
    }


def held_in_ledger(session: Session, model: LicenseModel, as_of: datetime) -> int:
    """Seats held under `model` at `as_of`, as the ledger has them: the sum of its
    deltas (each user's rows alternate +1/-1, a check constraint holds it)."""
    total = select(func.coalesce(func.sum(SeatEvent.delta), 0)).where(
        SeatEvent.model == model.value, SeatEvent.at <= as_of
    )
    return int(session.scalar(total) or 0)


def _opens_by_notification() -> Any:
    """A Team ledger row that opened a seat because of a notification."""
    return and_(
        SeatEvent.model == LicenseModel.TEAM.value,
        SeatEvent.reason == SeatReason.NOTIFIED,
        SeatEvent.delta == 1,
    )


def _unwritten(moment: Any) -> Any:
    """The user had sent no counted email by `moment`."""
    return (User.first_seen.is_(None)) | (User.first_seen > moment)


def team_seats_from_notifications(session: Session, as_of: datetime) -> int:
    """`seats.notified_seats_at` for the ledger as written, in SQL: seats held at
    `as_of` whose user had sent no counted email by then, and whose ledger up to
    `as_of` has a seat opened with reason `notified` (as `people` reads it). Only
    users without a counted email by then are looked at, each one's rows by index."""
    opened = exists().where(
        SeatEvent.user_id == User.id,
        _opens_by_notification(),
        rows.by_user_index(SeatEvent.at <= as_of),
    )
    held = rows.holds_seat(LicenseModel.TEAM, as_of)
    query = select(func.count(User.id)).where(_unwritten(as_of), opened, held)
    return int(session.scalar(query) or 0)


def notified_seats_at_ends(session: Session, as_of: datetime, ends: list[datetime]) -> list[int]:
    """`seats.notified_seats_at` at each of `ends` for the ledger as read at `as_of`, in
    one query: the seats a notification opened (one range of the ledger's index) give
    the users, and each of their Team rows up to `as_of` counts towards every end at
    or after it; a user counts at an end where those rows sum above 0 and no counted
    email had come by then. The cost follows those users' rows, once for all ends."""
    if not ends:
        return []
    moments = union_all(
        *(
            select(literal(index).label("month"), literal(end, UTCDateTime).label("end"))
            for index, end in enumerate(ends)
        )
    ).subquery()
    opened = and_(_opens_by_notification(), SeatEvent.at <= as_of)
    notified = select(SeatEvent.user_id).where(opened).distinct().subquery()
    held = (
        select(
            moments.c.month,
            moments.c.end,
            SeatEvent.user_id,
            func.sum(SeatEvent.delta).label("held"),
        )
        .select_from(notified)
        .join(
            SeatEvent,
            and_(
                SeatEvent.user_id == notified.c.user_id,
                SeatEvent.model == LicenseModel.TEAM.value,
                SeatEvent.at <= as_of,  # the ledger as read at `as_of`
            ),
        )
        .join(moments, SeatEvent.at <= moments.c.end)
        .group_by(moments.c.month, moments.c.end, SeatEvent.user_id)
        .subquery()
    )
    query = (
        select(held.c.month, func.count())
        .select_from(held)
        .join(User, User.id == held.c.user_id)
        .where(held.c.held > 0, _unwritten(held.c.end))
        .group_by(held.c.month)
    )
    counts = [0] * len(ends)
    for index, count in session.execute(query):
        counts[int(index)] = int(count)
    return counts


def pricing_facts(org: Org) -> Row:
    """Which prices a report bills with: the price book (None: the org file's own),
    the billing term, any monthly/annual pairs, and ladders that bill less for more."""
    pricing = org.pricing
    pairs = (("support", pricing.support_pair), ("team", pricing.team_pair))
    return {
        "book": org.price_book or None,
        "term": org.licensing.billing.value,
        "pairs": {m: {"monthly": p.monthly, "annual": p.annual} for m, p in pairs if p},
        "warnings": costs.pricing_warnings(pricing),
    }


def compare_books(
    session: Session, org: Org, books: list[PriceBook], as_of: datetime | None = None
) -> Row:
    """One ledger's seats billed by each price book: the org's counting rules and the
    ledger stay; only `[pricing]` changes from book to book."""
    as_of = as_of or datetime.now(UTC)
    priced = []
    for book in books:
        data = report(session, org.with_pricing(book.pricing, book.name), as_of)
        priced.append(
            {
                "book": book.name,
                "title": book.title,
                "source": book.source,
                "read": book.read,
                "currency": data["currency"],
                "term": data["pricing"]["term"],
                "support": data["support"],
                "team": {k: data["team"][k] for k in ("seats", "unit_price", "cost")},
                "cheaper_model": data["cheaper_model"],
                "breakeven_team_seats": data["breakeven_team_seats"],
                "warnings": data["pricing"]["warnings"],
            }
        )
    return {"as_of": iso(as_of), "organization": org.name, "books": priced}


def compare_rows(data: Row) -> list[Row]:
    """`compare_books` as one row per book, for CSV."""
    return [
        {
            "book": b["book"],
            "currency": b["currency"],
            "term": b["term"],
            **{f"{m}_{k}": b[m][k] for m in MODELS for k in ("seats", "unit_price", "cost")},
            "cheaper_model": b["cheaper_model"],
            "breakeven_team_seats": b["breakeven_team_seats"],
            "source": b["source"],
            "read": b["read"],
        }
        for b in data["books"]
    ]


def _seat_events(
    session: Session, model: LicenseModel, as_of: datetime
) -> dict[int, list[tuple[float, int, str]]]:
    """Each user's (at, delta, reason) ledger rows under `model` up to `as_of`, in order."""
    events: dict[int, list[tuple[float, int, str]]] = {}
    for user_id, at, delta, reason in session.execute(
        select(SeatEvent.user_id, SeatEvent.at, SeatEvent.delta, SeatEvent.reason)
        .where(SeatEvent.model == model.value, SeatEvent.at <= as_of)
        .order_by(SeatEvent.seq)
    ):
        events.setdefault(user_id, []).append((seats.stamp(at), delta, reason))
    return events


def people(
    session: Session, as_of: datetime, rules: LicensingRules | None = None
) -> list[seats.Person]:
    """Every user's facts for the seat engine: ledger rows, counted deliveries,
    portal login (directory flag, or the first web-form submission), first email."""
    return list(people_by_id(session, as_of, rules).values())


def people_by_id(
    session: Session, as_of: datetime, rules: LicensingRules | None = None
) -> dict[int, seats.Person]:
    """`people`, keyed by user id. Given the rules they will be read under, the
    deliveries are only read when those rules look at them."""
    events = _seat_events(session, LicenseModel.TEAM, as_of)
    activity: dict[int, list[float]] = {}
    portal: dict[int, float] = {}
    wanted = rules is None or seats.reads_deliveries(rules)
    for user_id, at, channel in (
        ()
        if not wanted
        else session.execute(
            select(Delivery.user_id, Delivery.received_at, Delivery.channel)
            .where(Delivery.outcome.in_(COUNTED), Delivery.received_at <= as_of)
            .order_by(Delivery.received_at)
        )
    ):
        moment = seats.stamp(at)
        activity.setdefault(user_id, []).append(moment)
        if channel == Channel.WEB_FORM.value:
            portal.setdefault(user_id, moment)
    found: dict[int, seats.Person] = {}
    for user_id, created_at, logs_in, first_seen in session.execute(
        select(User.id, User.created_at, User.logs_in, User.first_seen)
    ):
        rows = events.get(user_id, [])
        # A user whose record is newer than a seat it holds (a directory user
        # reconciled after older mail was imported) still counts from that seat.
        if created_at > as_of and not rows:
            continue
        created = seats.stamp(created_at)
        login = created if logs_in else portal.get(user_id)
        found[user_id] = seats.Person(
            created_at=created,
            team_events=tuple((at, delta) for at, delta, _ in rows),
            activity=tuple(activity.get(user_id, ())),
            login_at=login,
            wrote_at=seats.stamp(first_seen) if first_seen is not None else None,
            notified=any(delta > 0 and reason == SeatReason.NOTIFIED for _, delta, reason in rows),
        )
    return found


def iter_users(session: Session, org: Org, as_of: datetime | None = None) -> Iterator[Row]:
    """The `users` listing with `team_seat` read under the org's licensing rules (a
    web-form submitter under `first_login` keeps the seat, an email-only user loses it),
    one row at a time as the database returns them."""
    as_of = as_of or datetime.now(UTC)
    if seats.reads_ledger_as_written(org.licensing):
        # The engine's spans are the ledger's own: a seat is held while its deltas
        # up to `as_of` sum above 0, read in the listing's one query.
        return rows.iter_users(session, team_as_of=as_of)
    moment = seats.stamp(as_of)
    held = {
        user_id
        for user_id, person in people_by_id(session, as_of, org.licensing).items()
        if seats.seats_at(seats.team_spans(person, org.licensing), moment)
    }
    return ({**row, "team_seat": user_id in held} for user_id, row in rows.user_rows(session))


def users(session: Session, org: Org, as_of: datetime | None = None) -> list[Row]:
    """`iter_users` as a list."""
    return list(iter_users(session, org, as_of))


def support_spans(session: Session, as_of: datetime) -> list[seats.Span]:
    events = _seat_events(session, LicenseModel.SUPPORT, as_of)
    return [
        span
        for rows in events.values()
        for span in seats.ledger_spans((at, delta) for at, delta, _ in rows)
    ]


def _when(month: seats.Month) -> tuple[datetime, datetime]:
    return datetime.fromtimestamp(month.start, UTC), datetime.fromtimestamp(month.end, UTC)


def _month_index(at: Any, months: list[seats.Month]) -> Any:
    """A SQL expression for the index of the month `at` falls in: -1 before the
    first, NULL after the last (one CASE, so one pass groups every month)."""
    first, _ = _when(months[0])
    limits = [(at < first, -1), *((at < _when(m)[1], i) for i, m in enumerate(months))]
    return case(*limits, else_=None)


def _has_null(key: Any) -> Any:
    """1 when a group holds a NULL `key`, else 0: COUNT(DISTINCT) leaves NULL out,
    where a Python set of keys counts it as one key more."""
    return func.max(case((key.is_(None), 1), else_=0))


def _distinct_per_month(
    session: Session, at: Any, key: Any, where: Any, months: list[seats.Month]
) -> list[int]:
    """How many distinct `key`s fall in each month, grouped in SQL. A NULL key is one
    key more, as a set of keys has it."""
    month = _month_index(at, months).label("month")
    found = session.execute(
        select(month, func.count(func.distinct(key)), _has_null(key)).where(where).group_by(month)
    )
    counts = [0] * len(months)
    for index, distinct, unnamed in found:
        if index is not None and index >= 0:
            counts[index] = int(distinct) + int(unnamed or 0)
    return counts


def ledger_month_seats(
    session: Session, model: LicenseModel, as_of: datetime, months: list[seats.Month]
) -> list[tuple[int, int]]:
    """`seats.month_seats` of the ledger as written, in SQL: each user's rows alternate
    +1/-1, so the rows are the spans' changes; a running sum in the engine's order
    (time, then a seat that ends before one that starts) gives every count reached,
    and one grouped pass takes each month's change and highest count."""
    running = func.sum(SeatEvent.delta).over(
        order_by=(SeatEvent.at, SeatEvent.delta), rows=(None, 0)
    )
    changes = (
        select(
            _month_index(SeatEvent.at, months).label("month"),
            SeatEvent.delta,
            running.label("held"),
        )
        .where(SeatEvent.model == model.value, SeatEvent.at <= as_of)
        .subquery()
    )
    found = {
        index: (int(change), int(top))
        for index, change, top in session.execute(
            select(changes.c.month, func.sum(changes.c.delta), func.max(changes.c.held))
            .where(changes.c.month.is_not(None))
            .group_by(changes.c.month)
        )
    }
    held = found.get(-1, (0, 0))[0]
    counts = []
    for index in range(len(months)):
        change, top = found.get(index, (0, held))
        peak = max(held, top)
        held += change
        counts.append((held, peak))
    return counts


def _ledger_bills(
    session: Session, org: Org, as_of: datetime, months: list[seats.Month]
) -> list[seats.MonthBill]:
    """`seats.bill` when the rules read the ledger as written: the same counts, in SQL."""
    ends = [datetime.fromtimestamp(seats.month_end(m), UTC) for m in months]
    notified = notified_seats_at_ends(session, as_of, ends)
    return seats.bill_counts(
        org.pricing,
        org.licensing,
        months,
        ledger_month_seats(session, LicenseModel.SUPPORT, as_of, months),
        ledger_month_seats(session, LicenseModel.TEAM, as_of, months),
        notified,
    )


def _engine_bills(
    session: Session, org: Org, as_of: datetime, months: list[seats.Month]
) -> list[seats.MonthBill]:
    """`seats.bill` over every user's facts, for rules that read more than the ledger."""
    people_now = people(session, as_of, org.licensing)
    support = support_spans(session, as_of)
    return seats.bill(org.pricing, org.licensing, support, people_now, months)


def month_row(bill: seats.MonthBill, active: int, new: int) -> Row:
    """The engine's month with its active senders and new users, as `by_month` has it."""
    return {**bill.as_row(), "active_senders": active, "new_users": new}


def by_month(session: Session, org: Org, as_of: datetime | None = None) -> list[Row]:
    """Seats, bills, active senders and new users per calendar month, up to `as_of`."""
    as_of = as_of or datetime.now(UTC)
    end = data_end(session)
    first = session.scalar(select(func.min(SeatEvent.at)))
    first_delivery = session.scalar(select(func.min(Delivery.received_at)))
    starts = [t for t in (first, first_delivery) if t is not None]
    if end is None or not starts:
        return []
    months = seats.months_between(seats.stamp(min(starts)), seats.stamp(min(end, as_of)))
    billing = _ledger_bills if seats.reads_ledger_as_written(org.licensing) else _engine_bills
    bills = billing(session, org, as_of, months)
    counted = and_(Delivery.outcome.in_(COUNTED), Delivery.received_at <= as_of)
    active = _distinct_per_month(session, Delivery.received_at, Delivery.sender, counted, months)
    new = _distinct_per_month(session, User.created_at, User.id, User.created_at <= as_of, months)
    return [month_row(*row) for row in zip(bills, active, new, strict=True)]


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
        {**flat_month(r), "active_senders": r["active_senders"], "new_users": r["new_users"]}
        for r in rows
    ]
