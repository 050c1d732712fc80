"""`report --by month` read in SQL when the rules read the ledger as written: the same
month bills as the seat engine gives from every user's spans, over random ledgers
(seats given up and taken again, a +1 and -1 in the same second, seats a
notification opened, users who wrote before, during or after a month)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from simulator.licensing import seats
from simulator.licensing.prices import Billing, LicensingRules
from simulator.org import load_org
from simulator.reports import rows, summary
from simulator.reports.rows import COUNTED
from simulator.store.db import Store
from simulator.store.models import Delivery, SeatEvent, User

START = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = datetime(2026, 7, 15, tzinfo=UTC)


def fill(store: Store, seed: int) -> None:
    draw = random.Random(seed)
    with store.sessions.begin() as session:
        for n in range(1, 60):
            created = START + timedelta(days=draw.randint(0, 150))
            wrote = draw.choice([None, created + timedelta(days=draw.randint(0, 200))])
            session.add(
                User(
                    id=n,
                    email=f"u{n}@example.test",
                    role="customer",
                    origin="sender",
                    created_at=created,
                    first_seen=wrote,
                )
            )
            session.flush()  # the user row before the ledger rows that point at it
            for model in ("team", "support"):
                at = created
                for transition in range(1, draw.randint(1, 5)):
                    at += timedelta(seconds=draw.choice([0, 1, 3600, 86400 * draw.randint(1, 60)]))
                    reason = draw.choice(["first_email", "notified", "cc_created"])
                    session.add(
                        SeatEvent(
                            at=at,
                            user_id=n,
                            model=model,
                            transition=transition,
                            delta=1 if transition % 2 else -1,
                            reason=reason if transition % 2 else "role_changed",
                        )
                    )


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("billing", [Billing.MONTHLY, Billing.ANNUAL])
def test_months_in_sql_are_the_engines_months(tmp_path: Path, seed: int, billing: Billing) -> None:
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.ensure_schema()
    fill(store, seed)
    org = load_org(None)
    org = type(org)(**{**vars(org), "licensing": LicensingRules(billing=billing)})
    assert seats.reads_ledger_as_written(org.licensing)
    months = seats.months_between(seats.stamp(START), seats.stamp(AS_OF))
    with store.sessions() as session:
        in_sql = summary._ledger_bills(session, org, AS_OF, months)
        by_engine = summary._engine_bills(session, org, AS_OF, months)
    store.dispose()
    assert [b.as_row() for b in in_sql] == [b.as_row() for b in by_engine]
    assert any(b.team.peak_seats for b in by_engine)  # the ledgers are not empty
    assert any(b.team_seats_from_notifications for b in by_engine)


@pytest.mark.parametrize("seed", range(4))
def test_users_team_seat_in_sql_is_the_engines(tmp_path: Path, seed: int) -> None:
    """`users` reads the Team seat from the ledger's deltas up to the moment: the seat
    the engine's spans give each user (ledger rows after the moment left out)."""
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.ensure_schema()
    fill(store, seed)
    org = load_org(None)
    assert seats.reads_ledger_as_written(org.licensing)
    with store.sessions() as session:
        listed = summary.users(session, org, AS_OF)
        everyone = summary.people_by_id(session, AS_OF, org.licensing)
    store.dispose()
    moment = seats.stamp(AS_OF)
    held = {
        user_id
        for user_id, person in everyone.items()
        if seats.seats_at(seats.team_spans(person, org.licensing), moment)
    }
    assert [row["team_seat"] for row in listed] == [n in held for n in range(1, 60)]
    assert held and len(held) < 59  # some hold a seat at the moment, some do not


def fill_mail(store: Store, seed: int) -> None:
    """Users of every role and origin (two shared accounts), with mail of every outcome
    and channel before and after AS_OF, some without a sender, some users with none."""
    draw = random.Random(seed)
    roles = ["customer"] * 6 + ["agent", "employee"]
    origins = ["sender", "cc", "directory", "notified", "shared"]
    with store.sessions.begin() as session:
        for n in range(1, 80):
            session.add(
                User(
                    id=n,
                    email=f"u{n}@example.test",
                    role="customer" if n <= 2 else draw.choice(roles),
                    origin="shared" if n <= 2 else draw.choice(origins),
                    created_at=START,
                )
            )
        session.flush()
        for n in range(1, 400):
            session.add(
                Delivery(
                    id=n,
                    received_at=AS_OF + timedelta(days=draw.randint(-120, 10)),
                    message_id=f"m{n}@example.test",
                    sender=draw.choice([None, *(f"s{k}@example.test" for k in range(12))]),
                    outcome=draw.choice(["created_issue", "threaded", "duplicate", "filtered"]),
                    user_id=draw.choice([None, *range(1, 80)]),
                    channel=draw.choice(["smtp", "web_form", "web_form", "ingest"]),
                    raw=b"",
                )
            )


def plain_submitters(session: Session) -> dict[str, object]:
    """The advice's counts from the rows themselves, one user and one delivery at a time."""
    users = {u.id: u for u in session.scalars(select(User))}
    mail: dict[int, list[Delivery]] = {}
    for d in session.scalars(select(Delivery)):
        if d.user_id is not None and d.outcome in COUNTED and d.received_at <= AS_OF:
            mail.setdefault(d.user_id, []).append(d)
    customers = [n for n in mail if users[n].role == "customer" and users[n].origin != "shared"]
    shared = [n for n in mail if users[n].role == "customer" and users[n].origin == "shared"]
    return {
        "customers_submitting": len(customers),
        "customers_by_web_form": sum(
            all(d.channel == "web_form" for d in mail[n]) for n in customers
        ),
        "strangers_shared": len({d.sender for n in shared for d in mail[n]}),
        "shared_user": min((users[n].email for n in shared), default=""),
    }


@pytest.mark.parametrize("seed", range(6))
def test_submitters_in_sql_are_the_rows_counted_one_by_one(tmp_path: Path, seed: int) -> None:
    """The advice's submitters, read per user from the deliveries' user index (directory
    roles and shared accounts taken off), are the counts the rows give one by one."""
    store = Store(f"sqlite:///{tmp_path / 'mail.db'}")
    store.ensure_schema()
    fill_mail(store, seed)
    with store.sessions() as session:
        in_sql = summary.submitters(session, load_org(None), AS_OF)
        plain = plain_submitters(session)
    store.dispose()
    assert in_sql == plain
    assert plain["customers_submitting"] and plain["customers_by_web_form"]
    assert plain["strangers_shared"]


@pytest.mark.parametrize("seed", range(6))
def test_notified_seats_at_every_end_in_one_query_are_the_engines(
    tmp_path: Path, seed: int
) -> None:
    """The seats a notification holds, at many moments in one query (before any row,
    inside, on a row's own second, after `as_of`), are the engine's at each moment, and
    at `as_of` the report's own reading."""
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.ensure_schema()
    fill(store, seed)
    org = load_org(None)
    draw = random.Random(seed)
    with store.sessions() as session:
        rows_at = list(session.scalars(select(SeatEvent.at)))
        ends = [START - timedelta(days=1), AS_OF, AS_OF + timedelta(days=30)]
        ends += [draw.choice(rows_at) for _ in range(4)]
        ends += sorted(START + timedelta(days=draw.randint(0, 200)) for _ in range(8))
        in_sql = summary.notified_seats_at_ends(session, AS_OF, ends)
        at_as_of = summary.team_seats_from_notifications(session, AS_OF)
        everyone = summary.people(session, AS_OF, org.licensing)
    store.dispose()
    by_engine = [seats.notified_seats_at(everyone, org.licensing, seats.stamp(end)) for end in ends]
    assert in_sql == by_engine
    assert in_sql[1] == at_as_of
    assert any(by_engine)


@pytest.mark.parametrize("seed", range(4))
def test_seat_reasons_in_sql_are_the_ledgers_newest_rows(tmp_path: Path, seed: int) -> None:
    """The web's "why" per seat and its seats per reason, read in SQL, are what the whole
    ledger gives when walked in order (the newest row per user and model wins)."""
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.ensure_schema()
    fill(store, seed)
    with store.sessions() as session:
        whole = rows.ledger(session)
        emails = [f"u{n}@example.test" for n in range(1, 60, 3)]
        why = rows.seat_reasons(session, emails)
        by_reason = rows.seats_by_reason(session)
        changes = list(rows.ledger_changes(session))
        size, span = rows.ledger_size(session), rows.ledger_span(session)
    store.dispose()
    newest: dict[tuple[str, str], dict[str, object]] = {}
    for row in whole:
        newest[(str(row["user"]), str(row["model"]))] = row
    assert why == {key: row for key, row in newest.items() if key[0] in emails}
    counted: dict[tuple[str, str], int] = {}
    for row in newest.values():
        if int(str(row["delta"])) > 0:
            key = (str(row["model"]), str(row["reason"]))
            counted[key] = counted.get(key, 0) + 1
    assert by_reason == sorted(counted.items())
    assert changes == [{"model": e["model"], "delta": e["delta"]} for e in whole]
    assert size == len(whole) and span == (whole[0]["at"], whole[-1]["at"])


def test_notification_seats_read_each_users_rows_by_the_user_index(tmp_path: Path) -> None:
    """At a moment inside the ledger (a report without --as-of, the web's report page),
    each not-yet-writing user's rows are found by the (user, model) index: a range of
    the time index per user made that quadratic (minutes over 10^6 ledger rows)."""
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.ensure_schema()
    fill(store, 0)
    seen: list[tuple[str, Any]] = []

    def note(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", note)
    with store.sessions() as session:
        summary.team_seats_from_notifications(session, AS_OF)
        statement, parameters = seen[-1]
        plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        steps = [str(row[3]) for row in plan]
    store.dispose()
    assert any("seat_events" in step for step in steps)
    assert not any("ix_seat_events_model_at_delta" in step for step in steps), steps
