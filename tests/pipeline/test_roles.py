"""Who a sender is: role_for, find_user, create_user, and resolve_sender under each
`unknown_senders` policy, on a real SQLite file prepared from a real org file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from simulator.domain import Origin, Role
from simulator.org import Org, UnknownSenders, load_org
from simulator.pipeline.batch import prepare
from simulator.pipeline.roles import create_user, find_user, resolve_sender, role_for
from simulator.store.db import Store
from simulator.store.models import User
from tests.support.samples import org_file

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)


def prepared_store(tmp_path: Path, org: Org) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'intake.db'}")
    prepare(store, org, AT)
    return store


@pytest.fixture
def globex(tmp_path: Path) -> Iterator[tuple[Store, Org]]:
    org = load_org(org_file("globex.toml"))
    store = prepared_store(tmp_path, org)
    yield store, org
    store.dispose()


def user_count(session: Session) -> int:
    return session.scalar(select(func.count(User.id))) or 0


@pytest.mark.parametrize(
    ("address", "role"),
    [
        ("hank@globex.test", Role.AGENT),  # a directory agent
        ("otto@globex.test", Role.EMPLOYEE),  # a directory employee
        ("newhire@globex.test", Role.EMPLOYEE),  # internal domain, not in the directory
        ("ops@eu.globex.test", Role.EMPLOYEE),  # a subdomain of an internal domain
        ("kim@customer.example", Role.CUSTOMER),
        ("spoof@notglobex.test", Role.CUSTOMER),  # only looks internal
        ("spoof@globex.test.evil.example", Role.CUSTOMER),
    ],
)
def test_role_for(address: str, role: Role) -> None:
    assert role_for(address, load_org(org_file("globex.toml"))) is role


def test_find_user_finds_directory_users_and_nobody_else(globex: tuple[Store, Org]) -> None:
    store, _ = globex
    with store.sessions() as session:
        hank = find_user(session, "hank@globex.test")
        assert hank is not None
        assert (hank.name, hank.role, hank.origin) == ("Hank Scorpio", "agent", "directory")
        assert find_user(session, "kim@customer.example") is None


def test_create_user_writes_a_findable_user_with_its_role(globex: tuple[Store, Org]) -> None:
    store, org = globex
    with store.sessions.begin() as session:
        kim = create_user(session, "kim@customer.example", "Kim", org, Origin.CC, AT)
        assert kim.id is not None  # flushed: other rows may point at it now
        assert find_user(session, "kim@customer.example") is kim
        colleague = create_user(
            session, "newhire@globex.test", "", org, Origin.SENDER, AT, first_seen=LATER
        )
        forced = create_user(
            session, "desk-shared@globex.test", "", org, Origin.SHARED, AT, Role.CUSTOMER
        )
    with store.sessions() as session:
        stored = find_user(session, "kim@customer.example")
        assert stored is not None
        assert (stored.name, stored.role, stored.origin) == ("Kim", "customer", "cc")
        assert (stored.in_directory, stored.logs_in) == (False, False)
        assert (stored.created_at, stored.first_seen) == (AT, None)
    assert (colleague.role, colleague.first_seen) == ("employee", LATER)
    assert forced.role == "customer"  # the given role wins over the address


def test_create_policy_creates_strangers_once(globex: tuple[Store, Org]) -> None:
    store, org = globex
    assert org.intake.unknown_senders is UnknownSenders.CREATE
    with store.sessions.begin() as session:
        before = user_count(session)
        kim, created = resolve_sender(session, "kim@customer.example", "Kim", org, AT)
        again, created_again = resolve_sender(session, "kim@customer.example", "K", org, LATER)
        assert user_count(session) == before + 1
    assert kim is not None and again is kim
    assert (created, created_again) == (True, False)
    assert (kim.role, kim.origin, kim.name, kim.first_seen) == ("customer", "sender", "Kim", AT)


def test_existing_only_refuses_strangers_but_not_colleagues(tmp_path: Path) -> None:
    org = load_org(org_file("strict.toml"))
    assert org.intake.unknown_senders is UnknownSenders.EXISTING_ONLY
    store = prepared_store(tmp_path, org)
    try:
        with store.sessions.begin() as session:
            before = user_count(session)
            stranger = resolve_sender(session, "kim@customer.example", "Kim", org, AT)
            colleague, created = resolve_sender(session, "lee@strict.test", "Lee", org, AT)
            amy, amy_created = resolve_sender(session, "amy@strict.test", "", org, AT)
            assert user_count(session) == before + 1  # the colleague only
        assert stranger == (None, False)
        assert colleague is not None and created
        assert (colleague.role, colleague.origin) == ("employee", "sender")
        assert amy is not None and (amy.role, amy.origin, amy_created) == (
            "agent",
            "directory",
            False,
        )
    finally:
        store.dispose()


def test_shared_user_maps_every_stranger_to_one_customer_account(tmp_path: Path) -> None:
    org = load_org(org_file("shared.toml"))
    assert org.intake.unknown_senders is UnknownSenders.SHARED_USER
    store = prepared_store(tmp_path, org)
    try:
        with store.sessions.begin() as session:
            first, first_created = resolve_sender(session, "kim@customer.example", "Kim", org, AT)
            second, second_created = resolve_sender(session, "max@other.example", "Max", org, LATER)
            colleague, _ = resolve_sender(session, "lee@shared.test", "Lee", org, AT)
            assert find_user(session, "kim@customer.example") is None
            assert find_user(session, "max@other.example") is None
        assert first is not None and second is first
        assert (first_created, second_created) == (True, False)
        assert first.email == "customers@shared.test"
        # A customer, though its address is on the org's internal domain.
        assert (first.role, first.origin, first.first_seen) == ("customer", "shared", AT)
        assert first.name == "Shared Desk customers (shared)"
        assert colleague is not None and colleague.email == "lee@shared.test"
        assert colleague.role == "employee"
    finally:
        store.dispose()
