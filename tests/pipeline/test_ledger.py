"""The seat ledger (simulator/pipeline/ledger.py) on a real SQLite file: set_seat
changes a seat only when it must, reconcile_directory follows the org file with +1
and -1 events, and nothing ever updates or deletes an event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from simulator.domain import LicenseModel, Origin
from simulator.org import Org, load_org
from simulator.pipeline import ledger
from simulator.pipeline.batch import prepare
from simulator.pipeline.roles import create_user, find_user
from simulator.store.db import Store, open_store
from simulator.store.models import SeatEvent, User
from tests.support.samples import org_file

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
TEAM, SUPPORT = LicenseModel.TEAM, LicenseModel.SUPPORT
# tests/orgs/globex.toml after a reorganisation: Frank leaves, Hank becomes an
# employee, Lisa stops logging in, Otto is made an agent, and Mona joins as one.
HEAD = """
[organization]
name = "Globex Helpdesk"
internal_domains = ["globex.test"]
intake_addresses = ["desk@globex.test"]
"""
AFTER = """
[[agents]]
email = "otto@globex.test"

[[agents]]
email = "mona@globex.test"

[[employees]]
email = "hank@globex.test"
logs_in = true

[[employees]]
email = "lisa@globex.test"
logs_in = false
"""

Event = tuple[int, str, str, int, int, str]  # seq, user, model, transition, delta, reason


def globex() -> Org:
    return load_org(org_file("globex.toml"))


def reorganised(tmp_path: Path) -> Org:
    path = tmp_path / "after.toml"
    path.write_text(HEAD + AFTER, encoding="utf-8")
    return load_org(path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'intake.db'}")
    yield store
    store.dispose()


def events(store: Store) -> list[Event]:
    query = (
        select(
            SeatEvent.seq,
            User.email,
            SeatEvent.model,
            SeatEvent.transition,
            SeatEvent.delta,
            SeatEvent.reason,
        )
        .join(User, User.id == SeatEvent.user_id)
        .order_by(SeatEvent.seq)
    )
    with store.sessions() as session:
        return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in session.execute(query)]


def changes(found: list[ledger.SeatChange]) -> set[str]:
    return {f"{c.user.partition('@')[0]} {c}" for c in found}


def reconcile(store: Store, org: Org, at: datetime) -> set[str]:
    return changes(store.transaction(lambda session: ledger.reconcile_directory(session, org, at)))


# --- set_seat ------------------------------------------------------------------------


def new_customer(session: Session, org: Org, address: str = "kim@customer.example") -> User:
    user = create_user(session, address, "", org, Origin.SENDER, AT)
    ledger.new_user(session, user)
    return user


def test_set_seat_appends_only_when_the_state_changes(store: Store) -> None:
    org = globex()

    def work(session: Session) -> list[ledger.SeatChange | None]:
        kim = new_customer(session, org)
        return [
            ledger.set_seat(session, kim, TEAM, True, "first_email", AT),
            ledger.set_seat(session, kim, TEAM, True, "first_email", AT),
            ledger.set_seat(session, kim, TEAM, False, "no_login", LATER),
            ledger.set_seat(session, kim, TEAM, False, "no_login", LATER),
            ledger.set_seat(session, kim, SUPPORT, False, "role_changed", LATER),
        ]

    opened, same, closed, same_again, never_held = store.transaction(work)
    assert opened == ledger.SeatChange("kim@customer.example", "team", 1, "first_email")
    assert closed == ledger.SeatChange("kim@customer.example", "team", -1, "no_login")
    assert (same, same_again, never_held) == (None, None, None)
    assert [e[1:] for e in events(store)] == [
        ("kim@customer.example", "team", 1, 1, "first_email"),
        ("kim@customer.example", "team", 2, -1, "no_login"),
    ]
    assert (str(opened), str(closed)) == ("team+1(first_email)", "team-1(no_login)")


def test_set_seat_reads_committed_seats_in_a_later_transaction(store: Store) -> None:
    org = globex()

    def open_seat(session: Session) -> ledger.SeatChange | None:
        kim = new_customer(session, org)
        return ledger.set_seat(session, kim, TEAM, True, "first_email", AT)

    def again(wanted: bool, reason: str) -> ledger.SeatChange | None:
        def work(session: Session) -> ledger.SeatChange | None:
            kim = find_user(session, "kim@customer.example")
            assert kim is not None
            return ledger.set_seat(session, kim, TEAM, wanted, reason, LATER)

        return store.transaction(work)

    assert store.transaction(open_seat) is not None
    assert again(True, "first_email") is None
    assert str(again(False, "no_login")) == "team-1(no_login)"
    assert again(False, "no_login") is None
    assert str(again(True, "first_email")) == "team+1(first_email)"
    assert [(e[3], e[4]) for e in events(store)] == [(1, 1), (2, -1), (3, 1)]


# --- reconcile_directory -------------------------------------------------------------


def test_the_directory_gives_seats_once(store: Store) -> None:
    org = globex()
    assert changes(prepare(store, org, AT)) == {
        "hank support+1(directory_agent)",
        "hank team+1(directory_login)",
        "frank support+1(directory_agent)",
        "frank team+1(directory_login)",
        "lisa team+1(directory_login)",
    }
    with store.sessions() as session:
        otto = find_user(session, "otto@globex.test")
        assert otto is not None and (otto.in_directory, otto.logs_in) == (True, False)
    assert reconcile(store, org, LATER) == set()  # nothing changed, nothing appended
    assert len(events(store)) == 5


def test_directory_changes_give_plus_and_minus_events(store: Store, tmp_path: Path) -> None:
    prepare(store, globex(), AT)
    after = reorganised(tmp_path)
    assert reconcile(store, after, LATER) == {
        "frank support-1(directory_removed)",
        "frank team-1(directory_removed)",
        "hank support-1(role_changed)",
        "lisa team-1(no_login)",
        "otto support+1(directory_agent)",
        "otto team+1(directory_login)",
        "mona support+1(directory_agent)",
        "mona team+1(directory_login)",
    }
    with store.sessions() as session:
        frank = find_user(session, "frank@globex.test")
        hank = find_user(session, "hank@globex.test")
        otto = find_user(session, "otto@globex.test")
        assert frank is not None and hank is not None and otto is not None
        # Gone from the file: no longer listed, and an employee by the internal domain.
        assert (frank.in_directory, frank.logs_in, frank.role) == (False, False, "employee")
        assert (hank.role, otto.role, otto.logs_in) == ("employee", "agent", True)
    assert reconcile(store, after, LATER) == set()


def test_going_back_to_the_old_directory_reverses_every_change(
    store: Store, tmp_path: Path
) -> None:
    before = globex()
    prepare(store, before, AT)
    after = reorganised(tmp_path)
    reconcile(store, after, LATER)
    assert reconcile(store, before, LATER) == {
        "frank support+1(directory_agent)",
        "frank team+1(directory_login)",
        "hank support+1(directory_agent)",
        "lisa team+1(directory_login)",
        "otto support-1(role_changed)",
        "otto team-1(no_login)",
        "mona support-1(directory_removed)",
        "mona team-1(directory_removed)",
    }


# --- append-only ---------------------------------------------------------------------


def test_the_ledger_is_append_only(store: Store, tmp_path: Path) -> None:
    before = globex()
    prepare(store, before, AT)
    first = events(store)
    reconcile(store, reorganised(tmp_path), LATER)
    second = events(store)
    reconcile(store, before, LATER)
    third = events(store)
    # Each round leaves every earlier event as it was and adds new ones after them.
    assert second[: len(first)] == first and len(second) > len(first)
    assert third[: len(second)] == second and len(third) > len(second)
    assert [e[0] for e in third] == sorted({e[0] for e in third})
    # Per user and model, the changes alternate +1, -1, +1 ... numbered from 1.
    per_seat: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for _, user, model, transition, delta, _ in third:
        per_seat.setdefault((user, model), []).append((transition, delta))
    for seat, rows in per_seat.items():
        assert rows == [(n, 1 if n % 2 else -1) for n in range(1, len(rows) + 1)], seat


@pytest.mark.parametrize(
    ("transition", "delta"),
    [(2, 1), (1, -1), (1, 1), (0, 1)],
    ids=["plus-after-plus", "minus-first", "same-transition-twice", "transition-zero"],
)
def test_the_database_refuses_events_that_break_the_alternation(
    store: Store, transition: int, delta: int
) -> None:
    prepare(store, globex(), AT)
    with store.sessions() as session:
        hank = find_user(session, "hank@globex.test")
        assert hank is not None
        held = session.scalars(
            select(SeatEvent).where(SeatEvent.user_id == hank.id, SeatEvent.model == "team")
        ).one()
        assert (held.transition, held.delta) == (1, 1)
    with pytest.raises(IntegrityError), store.sessions.begin() as session:
        session.add(
            SeatEvent(
                at=LATER,
                user_id=hank.id,
                model="team",
                transition=transition,
                delta=delta,
                reason="by hand",
            )
        )
    assert len(events(store)) == 5
