"""Who a sender is: their role, and the user record intake attributes mail to."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    FromClause,
    bindparam,
    event,
    insert,
    literal_column,
    select,
)
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from simulator.domain import Origin, Role
from simulator.org import Org, UnknownSenders
from simulator.pipeline.parse import InboundMail
from simulator.store.models import User
from simulator.store.prepared import Prepared


def as_people(mail: InboundMail, org: Org) -> InboundMail:
    """The mail with its sender, To and Cc as the people they are (`Org.identity`:
    aliases and plus addresses merged), so that every later stage, from the flood
    guard to To/Cc creation and notifications, sees one address per person."""
    if not (org.aliases or org.identities.merge_plus_addresses):
        return mail
    return dataclasses.replace(
        mail,
        sender=org.identity(mail.sender) if mail.sender else mail.sender,
        to=tuple(dict.fromkeys(org.identity(a) for a in mail.to)),
        cc=tuple(dict.fromkeys(org.identity(a) for a in mail.cc)),
    )


def role_for(address: str, org: Org) -> Role:
    """Directory agent -> agent; directory employee or internal domain -> employee."""
    entry = org.directory.get(address)
    if entry is not None:
        return Role(entry.role)
    return Role.EMPLOYEE if org.is_internal(address) else Role.CUSTOMER


USERS = User.__table__
USER_ROW = Prepared(select(USERS).where(USERS.c.email == bindparam("email")))
USER_COLUMNS = tuple(USERS.c.keys())
USER_ID = USER_COLUMNS.index("id")  # where a row of USER_COLUMNS holds the id
INSERT_USER = Prepared(insert(USERS))
# A row of USER_COLUMNS (None: no such user) that an earlier statement of the same
# delivery read, so that it is not asked again (see intake's first look); UNREAD
# when none was.
UserRead = tuple[Any, ...] | None
UNREAD: Any = object()
# The users this transaction has found or made, by address; and the users it made,
# each with the (innermost) transaction that made it.
USERS_KEY = "roles.users"
MADE_KEY = "roles.made"


def _users(session: Session) -> dict[str, User]:
    users: dict[str, User] = session.info.setdefault(USERS_KEY, {})
    return users


def _made(session: Session) -> list[tuple[SessionTransaction, User]]:
    made: list[tuple[SessionTransaction, User]] = session.info.setdefault(MADE_KEY, [])
    return made


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous: SessionTransaction) -> None:
    """A rolled-back transaction or SAVEPOINT takes the users made inside it with it.

    The session never saw them as new (they are Core inserts), so it would keep
    their objects under identities that are gone, and that the next insert may
    reuse (SQLite hands out the same rowid again): they leave the session here.
    """
    session.info.pop(USERS_KEY, None)
    kept = []
    for made_in, user in _made(session):
        if _inside(made_in, previous):
            if user in session:
                session.expunge(user)
        else:
            kept.append((made_in, user))
    session.info[MADE_KEY] = kept


def _inside(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(USERS_KEY, None)
        session.info.pop(MADE_KEY, None)


def find_user(session: Session, address: str, read: UserRead = UNREAD) -> User | None:
    """The user with this address, if there is one.

    A user once found in a transaction is answered from memory after that: a
    query would hand back the very same object from the session's identity map,
    attributes as they were (users are never deleted nor renamed). A user not
    found is asked again each time, since another writer may make it meanwhile;
    `read` is its row as this delivery read it just before, with nothing
    written in between.
    """
    known = _users(session)
    user = known.get(address)
    if user is None:
        user = _load_user(session, address, read)
        if user is not None:
            known[address] = user
    return user


def remembered(session: Session, address: str) -> bool:
    """Whether this transaction knows the user with this address (find_user reads nothing)."""
    return address in _users(session)


def sender_row(address: BindParameter[str]) -> tuple[FromClause, tuple[ColumnElement[Any], ...]]:
    """What a statement joins and selects to read the user at `address` as USER_ROW
    does, beside other columns: a row of NULLs when there is none."""
    one = select(literal_column("1").label("one")).subquery("one")
    return one.outerjoin(USERS, USERS.c.email == address), tuple(USERS.c)


def _load_user(session: Session, address: str, read: UserRead = UNREAD) -> User | None:
    """What `session.scalars(select(User)...)` returns, by a Core read of the row.

    The ORM's query machinery cost three times the read itself. The object is the
    one in the session's identity map when there is one, else one made from the
    row and added as stored, as the ORM's loading makes it.
    """
    row = read
    if row is UNREAD:
        if session.new:
            session.flush()  # a pending user must be found, as the query's autoflush would
        row = USER_ROW.first(session, {"email": address})
    if row is None:
        return None
    values = dict(zip(USER_COLUMNS, row, strict=True))
    present = session.identity_map.get(identity_key(User, values["id"]))
    if isinstance(present, User):
        return present
    user = User(**values)
    make_transient_to_detached(user)
    session.add(user)
    return user


def create_user(
    session: Session,
    address: str,
    name: str,
    org: Org,
    origin: Origin,
    at: datetime,
    role: Role | None = None,
    first_seen: datetime | None = None,
) -> User:
    columns = {
        "email": address,
        "name": name,
        "role": (role or role_for(address, org)).value,
        "origin": origin.value,
        "in_directory": False,
        "logs_in": False,
        "created_at": at,
        "first_seen": first_seen,
    }
    # A Core insert, and the object joins the session as a row already stored (as a
    # query would load it): the unit of work's flush of one new object cost more.
    user = User(id=INSERT_USER.insert(session, columns), **columns)
    make_transient_to_detached(user)
    session.add(user)
    _users(session)[address] = user
    made_in = session.get_nested_transaction() or session.get_transaction()
    if made_in is not None:
        _made(session).append((made_in, user))
    return user


def unknown_sender_user(org: Org, address: str) -> str | None:
    """The user a sender with no user record is attributed to under the unknown-sender
    policy: itself, the shared account, or None (refused). Internal-domain senders
    are colleagues, never strangers: the policy applies to customers only."""
    policy = org.intake.unknown_senders
    if role_for(address, org) is not Role.CUSTOMER or policy is UnknownSenders.CREATE:
        return address
    if policy is UnknownSenders.EXISTING_ONLY:
        return None
    return org.intake.shared_user


def resolve_sender(
    session: Session, address: str, name: str, org: Org, at: datetime, read: UserRead = UNREAD
) -> tuple[User | None, bool]:
    """The user this sender's mail belongs to, and whether it was created now.

    Returns (None, False) when the unknown-sender policy refuses the stranger.
    Internal-domain senders are colleagues, never strangers: the policy applies
    to customers only. The caller counts the mail, so a user created here is
    first seen `at` (written with the row, not by a second statement). `read` is
    as find_user's.
    """
    user = find_user(session, address, read)
    if user is not None:
        return user, False
    target = unknown_sender_user(org, address)
    if target is None:
        return None, False
    if target == address:
        return create_user(session, address, name, org, Origin.SENDER, at, first_seen=at), True
    shared = find_user(session, target)
    if shared is not None:
        return shared, False
    # The shared account stands for customers even when it lives on an internal domain.
    shared_name = f"{org.name} customers (shared)"
    user = create_user(
        session, org.intake.shared_user, shared_name, org, Origin.SHARED, at, Role.CUSTOMER, at
    )
    return user, True
