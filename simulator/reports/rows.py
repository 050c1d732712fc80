"""Read side: the rows behind the listings `users`, `issues`, `messages`, `ledger`
and `outbox`, and `read_from`, which runs a read-only query on a database by URL.

Each listing returns plain dicts whose keys are the JSON contract in DESIGN.md,
with ISO-8601 UTC times, so every renderer and the tests share them. The report
and its month-by-month view are in summary.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from simulator.domain import DELIVERY_REASONS, LicenseModel, Outcome
from simulator.errors import ConfigError
from simulator.store.db import Store
from simulator.store.models import Delivery, Issue, OutboxMessage, SeatEvent, User

Row = dict[str, Any]
T = TypeVar("T")
COUNTED = (Outcome.CREATED_ISSUE.value, Outcome.THREADED.value)
# One page of a listing in the web view and the JSON API. The CLI lists in full: it
# writes to a pipe at its own pace, where a web answer is held in memory whole.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Window:
    """A page of a listing: `limit` rows from `offset`, oldest first or newest first."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    newest_first: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ConfigError(f"limit {self.limit} is not between 1 and {MAX_LIMIT}")
        if self.offset < 0:
            raise ConfigError(f"offset {self.offset} is not 0 or more")


def window_from(limit: str | None, offset: str | None, newest_first: bool = False) -> Window:
    """A Window from query-string text; a bad number is a ConfigError naming it."""
    numbers = {}
    for name, text, default in (("limit", limit, DEFAULT_LIMIT), ("offset", offset, 0)):
        if text is None or text == "":
            numbers[name] = default
        elif text.isdigit():
            numbers[name] = int(text)
        else:
            raise ConfigError(f"{name} {text!r} is not a whole number")
    return Window(numbers["limit"], numbers["offset"], newest_first)


def _in_window(
    query: Select[Any], order: InstrumentedAttribute[Any], window: Window | None
) -> Select[Any]:
    if window is None:
        return query.order_by(order)
    ordered = query.order_by(order.desc() if window.newest_first else order)
    return ordered.limit(window.limit).offset(window.offset)


def _count(session: Session, query: Select[Any]) -> int:
    return int(
        session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    )


def moment(value: str | None, name: str, end_of_day: bool = False) -> datetime | None:
    """An ISO-8601 date or time as UTC (no zone means UTC); a date alone is its first
    moment, or with `end_of_day` the first moment of the next day (an inclusive `until`)."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{name} {value!r} is not an ISO-8601 date or time such as 2026-11-28 "
            "or 2026-11-28T12:00Z"
        ) from None
    if end_of_day and len(value) == len("2026-11-28"):
        parsed += timedelta(days=1)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


def by_user_index(condition: Any) -> Any:
    """`condition` on a user's ledger rows, written so that the database finds those rows
    by the (user, model) index alone. A time range tested in WHERE tempts the planner
    to scan the ledger's time index once per user instead; tested as a value, it is
    checked on the user's own rows."""
    return case((condition, 1), else_=0) == 1


def holds_seat(model: LicenseModel, as_of: datetime | None = None) -> Any:
    """Whether the row's user holds a seat under `model` now (or at `as_of`): its
    ledger rows, by index."""
    # The moment is tested inside the sum, not in WHERE (see `by_user_index`).
    delta = SeatEvent.delta if as_of is None else case((SeatEvent.at <= as_of, SeatEvent.delta))
    total = (
        select(func.coalesce(func.sum(delta), 0))
        .where(SeatEvent.user_id == User.id, SeatEvent.model == model.value)
        .scalar_subquery()
    )
    return (total > 0).label(f"{model.value}_seat")


# Rows fetched at a time by a streamed listing: a server-side cursor on PostgreSQL,
# so memory holds one batch, not the listing.
STREAM_BATCH = 1000


def user_rows(
    session: Session, window: Window | None = None, team_as_of: datetime | None = None
) -> Iterator[tuple[int, Row]]:
    """Each user's id and `users` row, streamed in id order (see `users`)."""
    messages = (
        select(func.count(Delivery.id))
        .where(Delivery.user_id == User.id, Delivery.outcome.in_(COUNTED))
        .scalar_subquery()
        .label("messages")
    )
    query = select(
        User.id,
        User.email,
        User.name,
        User.role,
        User.origin,
        holds_seat(LicenseModel.SUPPORT),
        holds_seat(LicenseModel.TEAM, team_as_of),
        User.first_seen,
        messages,
    )
    query = _in_window(query, User.id, window)
    for row in session.execute(query, execution_options={"yield_per": STREAM_BATCH}):
        yield (
            row.id,
            {
                "email": row.email,
                "name": row.name,
                "role": row.role,
                "origin": row.origin,
                "support_seat": bool(row.support_seat),
                "team_seat": bool(row.team_seat),
                "first_seen": iso(row.first_seen),
                "messages": int(row.messages),
            },
        )


def iter_users(
    session: Session, window: Window | None = None, team_as_of: datetime | None = None
) -> Iterator[Row]:
    """`users`, one row at a time as the database returns them."""
    return (row for _, row in user_rows(session, window, team_as_of))


def users(
    session: Session, window: Window | None = None, team_as_of: datetime | None = None
) -> list[Row]:
    """One query: each user's columns with its seats and counted messages beside them,
    read as plain rows (no ORM object per user). `team_as_of`: the Team seat as the
    ledger has it at that moment rather than with every row."""
    return list(iter_users(session, window, team_as_of))


def users_total(session: Session) -> int:
    return _count(session, select(User))


def issues(session: Session, window: Window | None = None) -> list[Row]:
    counts = dict(
        session.execute(
            select(Delivery.issue_number, func.count(Delivery.id))
            .where(Delivery.outcome.in_(COUNTED))
            .group_by(Delivery.issue_number)
        ).all()
    )
    rows = session.execute(
        _in_window(
            select(Issue, User.email).join(User, User.id == Issue.submitter_id),
            Issue.number,
            window,
        )
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


def issues_total(session: Session) -> int:
    return _count(session, select(Issue))


def one_of(name: str, value: str | None, choices: type[StrEnum]) -> str | None:
    """`value` when it is one of `choices` (or None); a filter never matches nothing silently."""
    if value is None or value in {choice.value for choice in choices}:
        return value
    names = ", ".join(choice.value for choice in choices)
    raise ConfigError(f"{name} {value!r} is not one of {names}")


@dataclass(frozen=True)
class MessageFilter:
    """Which deliveries a `messages` listing shows; None (or empty) means any.

    `sender` and `intake_address` match whole addresses, ignoring case; `since` and
    `until` bound the receive time (since inclusive, until exclusive); `search` is a
    case-insensitive substring of the subject or the sender.
    """

    outcome: str | None = None
    reason: str | None = None
    sender: str | None = None
    intake_address: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    issues: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        one_of("outcome", self.outcome, Outcome)
        if self.reason is not None and self.reason not in DELIVERY_REASONS:
            names = ", ".join(DELIVERY_REASONS)
            raise ConfigError(f"reason {self.reason!r} is not one of {names}")


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _messages_query(where: MessageFilter) -> Select[Any]:
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
        Delivery.peer,
        Delivery.sender_trust,
    )
    if where.outcome:
        query = query.where(Delivery.outcome == where.outcome)
    if where.reason:
        query = query.where(Delivery.reason == where.reason)
    if where.sender:
        query = query.where(func.lower(Delivery.sender) == where.sender.strip().lower())
    if where.intake_address:
        address = where.intake_address.strip().lower()
        query = query.where(func.lower(Delivery.intake_address) == address)
    if where.since:
        query = query.where(Delivery.received_at >= where.since)
    if where.until:
        query = query.where(Delivery.received_at < where.until)
    if where.search:
        pattern = _like(where.search.strip().lower())
        query = query.where(
            or_(
                func.lower(Delivery.subject).like(pattern, escape="\\"),
                func.lower(Delivery.sender).like(pattern, escape="\\"),
            )
        )
    if where.issues is not None:
        query = query.where(Delivery.issue_number.in_(where.issues))
    return query


def messages(
    session: Session,
    outcome: str | None = None,
    *,
    where: MessageFilter | None = None,
    window: Window | None = None,
) -> list[Row]:
    where = where or MessageFilter(outcome=outcome)
    query = _in_window(_messages_query(where), Delivery.id, window)
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
            "peer": row.peer,
            "sender_trust": row.sender_trust,
        }
        for row in session.execute(query)
    ]


def messages_total(session: Session, where: MessageFilter) -> int:
    return _count(session, _messages_query(where))


def intake_addresses(session: Session) -> list[str]:
    """Every intake address some delivery came in by, for a filter's choices."""
    query = select(Delivery.intake_address).where(Delivery.intake_address.is_not(None))
    return sorted(session.scalars(query.distinct()))


def _ledger_query(model: str | None) -> Select[Any]:
    model = one_of("model", model, LicenseModel)
    query = select(SeatEvent, User.email).join(User, User.id == SeatEvent.user_id)
    return query.where(SeatEvent.model == model) if model else query


def ledger_total(session: Session, model: str | None = None) -> int:
    return _count(session, _ledger_query(model))


def ledger(session: Session, model: str | None = None, window: Window | None = None) -> list[Row]:
    return _ledger_rows(session, _in_window(_ledger_query(model), SeatEvent.seq, window))


def _ledger_rows(session: Session, query: Select[Any]) -> list[Row]:
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


def ledger_changes(session: Session) -> Iterator[Row]:
    """Every ledger row's model and delta in ledger order, streamed: what a chart of
    seats over the ledger reads, without a whole `ledger` listing in memory (and
    without a time per row: `ledger_span` has the first and the last)."""
    query = select(SeatEvent.model, SeatEvent.delta).order_by(SeatEvent.seq)
    for model, delta in session.execute(query, execution_options={"yield_per": STREAM_BATCH}):
        yield {"model": model, "delta": delta}


def ledger_size(session: Session) -> int:
    """How many rows `ledger_changes` gives: the ledger's rows, counted without a join."""
    return int(session.scalar(select(func.count()).select_from(SeatEvent)) or 0)


def ledger_span(session: Session) -> tuple[str | None, str | None]:
    """The times of the ledger's first and last rows, in ledger order."""
    first, last = session.execute(select(func.min(SeatEvent.seq), func.max(SeatEvent.seq))).one()
    if first is None:
        return None, None
    ends = select(SeatEvent.seq, SeatEvent.at).where(SeatEvent.seq.in_([first, last]))
    times = {seq: at for seq, at in session.execute(ends)}
    return iso(times[first]), iso(times[last])


def _newest_per_seat() -> Any:
    """Each (user, model)'s newest ledger row, by seq: the one that put the seat in the
    state it is in."""
    return (
        select(func.max(SeatEvent.seq).label("seq"))
        .group_by(SeatEvent.user_id, SeatEvent.model)
        .subquery()
    )


def seat_reasons(session: Session, emails: list[str]) -> dict[tuple[str, str], Row]:
    """For the users with these addresses, per (email, model), the `ledger` row that put
    the seat in its current state: found by index, one user at a time."""
    if not emails:
        return {}
    newest = (
        select(func.max(SeatEvent.seq))
        .join(User, User.id == SeatEvent.user_id)
        .where(User.email.in_(emails))
        .group_by(SeatEvent.user_id, SeatEvent.model)
    )
    query = _ledger_query(None).where(SeatEvent.seq.in_(newest))
    return {(row["user"], row["model"]): row for row in _ledger_rows(session, query)}


def seats_by_reason(session: Session) -> list[tuple[tuple[str, str], int]]:
    """Seats held now per (model, reason): each (user, model)'s newest ledger row, where
    it opened the seat, counted by its reason in one grouped query."""
    newest = _newest_per_seat()
    query = (
        select(SeatEvent.model, SeatEvent.reason, func.count())
        .join(newest, newest.c.seq == SeatEvent.seq)
        .where(SeatEvent.delta > 0)
        .group_by(SeatEvent.model, SeatEvent.reason)
    )
    # Sorted here, not by the database, whose collation may order words otherwise.
    return sorted(((model, reason), int(count)) for model, reason, count in session.execute(query))


def _outbox_query(status: str | None) -> Select[Any]:
    query = select(OutboxMessage)
    return query.where(OutboxMessage.status == status) if status else query


def outbox_total(session: Session, status: str | None = None) -> int:
    return _count(session, _outbox_query(status))


def outbox(session: Session, status: str | None = None, window: Window | None = None) -> list[Row]:
    query = _in_window(_outbox_query(status), OutboxMessage.id, window)
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
