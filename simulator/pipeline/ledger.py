"""The seat ledger: append-only events that say who is a paid seat, and why.

Support bills agents; Team bills every user who logs in or sends an email.
Nothing here updates or deletes an event: a seat ends with a -1 row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, event, func, insert, literal, select
from sqlalchemy.orm import Session, SessionTransaction

from simulator.domain import LicenseModel, Origin, Role
from simulator.licensing import seats
from simulator.org import Org
from simulator.store.models import SeatEvent, User
from simulator.store.prepared import Prepared


@dataclass(frozen=True)
class SeatChange:
    user: str
    model: str
    delta: int
    reason: str

    def __str__(self) -> str:
        sign = "+" if self.delta > 0 else "-"
        return f"{self.model}{sign}1({self.reason})"


# Seat states this transaction has written (or created the user of), by (user id, model).
STATES_KEY = "ledger.seat_states"
SEAT_EVENTS = SeatEvent.__table__
INSERT_SEAT_EVENT = Prepared(insert(SEAT_EVENTS))
# A seat's state: how many changes it has had, and their sum (held when above 0).
_CHANGES = func.count(SEAT_EVENTS.c.seq)
_TOTAL = func.coalesce(func.sum(SEAT_EVENTS.c.delta), 0)


def _of_seat(user_id: ColumnElement[int], model: ColumnElement[str]) -> tuple[Any, ...]:
    return (SEAT_EVENTS.c.user_id == user_id, SEAT_EVENTS.c.model == model)


SEAT_STATE = Prepared(
    select(_CHANGES, _TOTAL).where(*_of_seat(bindparam("user_id"), bindparam("model")))
)
SeatKey = tuple[int, str]
SeatState = tuple[bool, int]  # held, changes so far


def state_columns(user_id: ColumnElement[int], model: LicenseModel) -> tuple[Any, Any]:
    """SEAT_STATE's two columns for the user in `user_id`, for a statement that reads
    them beside others; `as_state` makes them a SeatState."""
    where = _of_seat(user_id, literal(model.value, SEAT_EVENTS.c.model.type))
    return (
        select(_CHANGES).where(*where).scalar_subquery(),
        select(_TOTAL).where(*where).scalar_subquery(),
    )


def as_state(changes: int, total: int | None) -> SeatState:
    return bool(total and total > 0), int(changes)


def _states(session: Session) -> dict[SeatKey, tuple[bool, int]]:
    states: dict[SeatKey, tuple[bool, int]] = session.info.setdefault(STATES_KEY, {})
    return states


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _previous: SessionTransaction) -> None:
    # A rolled-back SAVEPOINT takes its seat events with it: what was remembered may be gone.
    session.info.pop(STATES_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    # The next transaction (a rerun after a lost race, say) must read what is committed.
    if transaction.parent is None:
        session.info.pop(STATES_KEY, None)


def new_user(session: Session, user: User) -> None:
    """Remember that a user created in this transaction holds no seat yet: no
    event can name a row that no other transaction sees."""
    states = _states(session)
    for model in LicenseModel:
        states[(user.id, model.value)] = (False, 0)


def seat_state(
    session: Session, user_id: int, model: LicenseModel, read: SeatState | None = None
) -> SeatState:
    """Whether the user holds a seat under `model`, and how many changes it has had.

    `set_seat` is the only writer of seat events and remembers what it appends,
    so a seat this transaction changed is answered from memory. Any other seat
    is read from the database each time (another listener may have changed it
    since), without an autoflush: events are Core inserts, never pending; `read`
    is its state as this delivery read it just before, with no event written since.
    """
    remembered = _states(session).get((user_id, model.value))
    if remembered is not None:
        return remembered
    if read is not None:
        return read
    changes, total = SEAT_STATE.one(session, {"user_id": user_id, "model": model.value})
    return as_state(changes, total)


def set_seat(
    session: Session,
    user: User,
    model: LicenseModel,
    wanted: bool,
    reason: str,
    at: datetime,
    delivery_id: int | None = None,
    read: SeatState | None = None,
) -> SeatChange | None:
    """Append +1 or -1 when the seat's state must change; None when it already matches.

    The event carries the next transition number; a concurrent writer that
    appends the same change first makes this insert fail on the unique key.
    `read` is as seat_state's.
    """
    held, changes = seat_state(session, user.id, model, read)
    if held == wanted:
        return None
    delta = 1 if wanted else -1
    # A Core insert, not an ORM object: nothing reads an event back through the
    # session, and a unit-of-work flush per event cost more than the insert itself.
    INSERT_SEAT_EVENT.execute(
        session,
        {
            "at": at,
            "user_id": user.id,
            "model": model.value,
            "transition": changes + 1,
            "delta": delta,
            "reason": reason,
            "delivery_id": delivery_id,
        },
    )
    _states(session)[(user.id, model.value)] = (wanted, changes + 1)
    return SeatChange(user.email, model.value, delta, reason)


def count_sender(
    session: Session,
    user: User,
    at: datetime,
    delivery_id: int,
    signal: seats.Signal = seats.Signal.WROTE,
    read: SeatState | None = None,
) -> list[SeatChange]:
    """A counted message (or billed noise) makes its sender a Team user from now on.
    `read` is the Team seat's state as this delivery read it (see seat_state)."""
    if user.first_seen is None:
        user.first_seen = at
    reason = seats.team_reason(signal)
    change = set_seat(session, user, LicenseModel.TEAM, True, reason, at, delivery_id, read)
    return [change] if change else []


def open_team_seat(
    session: Session, user: User, signal: seats.Signal, at: datetime, delivery_id: int
) -> list[SeatChange]:
    """A Team seat opened by something other than the user's own mail (Cc, notification)."""
    reason = seats.team_reason(signal)
    change = set_seat(session, user, LicenseModel.TEAM, True, reason, at, delivery_id)
    return [change] if change else []


def reconcile_directory(
    session: Session, org: Org, at: datetime, start: datetime | None = None
) -> list[SeatChange]:
    """Bring users and seats in line with the org file's agents and employees.

    A seat the ledger has never held starts at its entry's `since`, else at
    `start` (the earliest message of imported history), else at `at`. An entry
    whose `until` has passed by `at` leaves the directory at its `until`; one
    the ledger never saw is first given its seats from its start.
    """
    changes: list[SeatChange] = []
    users = {u.email: u for u in session.scalars(select(User).where(User.in_directory))}
    for entry in org.directory.values():
        user = users.pop(entry.email, None) or _directory_user(session, entry.email)
        begin = entry.since or start or at
        if user is None:
            user = User(
                email=entry.email,
                origin=Origin.DIRECTORY.value,
                role=_outside_role(org, entry.email),
                created_at=begin,
            )
            session.add(user)
            session.flush()
        unseen = not _in_ledger(session, user)
        if unseen:
            user.created_at = min(user.created_at, begin)
        user.name = entry.name or user.name or ""
        left = entry.until if entry.ended_by(at) else None
        if left is not None and not (unseen and begin < left):
            changes += _leave(session, org, user, left)
            continue
        user.role = entry.role
        user.in_directory = True
        user.logs_in = entry.logs_in
        session.flush()
        changes += _align_seats(session, user, at, begin=begin)
        if left is not None:  # a past seat, first written now: it ends at its until
            changes += _leave(session, org, user, left)
    for user in users.values():  # in the directory before, gone from the org file now
        changes += _leave(session, org, user, at)
    return changes


def _directory_user(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email)).one_or_none()


def _in_ledger(session: Session, user: User) -> bool:
    """Whether any seat event names the user."""
    return any(seat_state(session, user.id, model)[1] for model in LicenseModel)


def _outside_role(org: Org, email: str) -> str:
    """The role of an address outside the directory: employee on an internal domain."""
    return (Role.EMPLOYEE if org.is_internal(email) else Role.CUSTOMER).value


def _leave(session: Session, org: Org, user: User, at: datetime) -> list[SeatChange]:
    if not user.in_directory:
        return []
    user.in_directory = False
    user.logs_in = False
    user.role = _outside_role(org, user.email)
    return _align_seats(session, user, at, removed=True)


def _align_seats(
    session: Session,
    user: User,
    at: datetime,
    removed: bool = False,
    begin: datetime | None = None,
) -> list[SeatChange]:
    """Set both seats as the user's directory record wants; a seat never held before
    starts at `begin` when given."""
    wanted = seats.directory_seats(
        agent=user.role == Role.AGENT,
        logs_in=user.logs_in,
        wrote=user.first_seen is not None,
        removed=removed,
    )

    def when(model: LicenseModel) -> datetime:
        never_held = seat_state(session, user.id, model)[1] == 0
        return begin if begin is not None and never_held else at

    plan = (
        (LicenseModel.SUPPORT, wanted.support, wanted.support_reason),
        (LicenseModel.TEAM, wanted.team, wanted.team_reason),
    )
    return [
        change
        for model, wants, reason in plan
        if (change := set_seat(session, user, model, wants, reason, when(model))) is not None
    ]
