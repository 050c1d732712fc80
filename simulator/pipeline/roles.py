"""Who a sender is: their role, and the user record intake attributes mail to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from simulator.domain import Origin, Role
from simulator.org import Org, UnknownSenders
from simulator.store.models import User


def role_for(address: str, org: Org) -> Role:
    """Directory agent -> agent; directory employee or internal domain -> employee."""
    entry = org.directory.get(address)
    if entry is not None:
        return Role(entry.role)
    return Role.EMPLOYEE if org.is_internal(address) else Role.CUSTOMER


FIND_USER = select(User).where(User.email == bindparam("email"))


def find_user(session: Session, address: str) -> User | None:
    return session.scalars(FIND_USER, {"email": address}).one_or_none()


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
    user = User(
        email=address,
        name=name,
        role=(role or role_for(address, org)).value,
        origin=origin.value,
        in_directory=False,
        logs_in=False,
        created_at=at,
        first_seen=first_seen,
    )
    session.add(user)
    session.flush()
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
    session: Session, address: str, name: str, org: Org, at: datetime
) -> tuple[User | None, bool]:
    """The user this sender's mail belongs to, and whether it was created now.

    Returns (None, False) when the unknown-sender policy refuses the stranger.
    Internal-domain senders are colleagues, never strangers: the policy applies
    to customers only. The caller counts the mail, so a user created here is
    first seen `at` (written with the row, not by a second statement).
    """
    user = find_user(session, address)
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
