"""Prepared statements against SQLAlchemy's own execution: random values written both
ways must be stored alike, byte for byte, and read back alike (SQLite, and PostgreSQL
when INTAKE_SIM_TEST_PG is set)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from simulator.pipeline import conversations, intake, ledger, roles
from simulator.store.db import Store
from simulator.store.prepared import Prepared

# Any character, NUL and lone surrogates included: what CleanText must make storable.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=400)
SHORT = st.text(st.characters(codec=None, categories=None), max_size=12)
OFFSETS = st.builds(
    timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
)
MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=OFFSETS
)
MAYBE_MOMENT = st.none() | MOMENTS


@st.composite
def rows(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """One user, issue, delivery, known id and seat event, linked as intake links them."""
    email = draw(ANY_TEXT.filter(bool))
    delivery = {
        "received_at": draw(MOMENTS),
        "envelope_from": draw(ANY_TEXT),
        "recipients": draw(ANY_TEXT),
        "message_id": draw(ANY_TEXT),
        "sender": draw(st.none() | ANY_TEXT),
        "sender_name": draw(ANY_TEXT),
        "sender_source": draw(st.sampled_from(["", "from", "sender", "envelope"])),
        "subject": draw(ANY_TEXT),
        "body_text": draw(ANY_TEXT),
        "attachments": draw(ANY_TEXT),
        "in_reply_to": draw(ANY_TEXT),
        "references": draw(ANY_TEXT),
        "sent_at": draw(MAYBE_MOMENT),
        "size": draw(st.integers(0, 2**31 - 1)),
        "channel": draw(st.sampled_from(["smtp", "ingest", "web_form"])),
        "raw": draw(st.binary(max_size=300)),
        "intake_address": draw(ANY_TEXT),
        "peer": draw(st.sampled_from(["", "127.0.0.1", "::1"])),
        "sender_trust": "",
        "outcome": draw(st.sampled_from(["created_issue", "threaded", "filtered"])),
        "reason": draw(st.none() | SHORT),
    }
    user = {
        "email": email,
        "name": draw(ANY_TEXT),
        "role": draw(st.sampled_from(["agent", "employee", "customer"])),
        "origin": draw(st.sampled_from(["sender", "cc", "directory"])),
        "in_directory": draw(st.booleans()),
        "logs_in": draw(st.booleans()),
        "created_at": draw(MOMENTS),
        "first_seen": draw(MAYBE_MOMENT),
    }
    if draw(st.booleans()):  # an insert that leaves columns to their defaults
        for key in ("in_directory", "logs_in", "first_seen"):
            del user[key]
    return {
        "user": user,
        "issue": {"subject": draw(ANY_TEXT), "created_at": draw(MOMENTS)},
        "delivery": delivery,
        "seat": {
            "at": draw(MOMENTS),
            "model": draw(st.sampled_from(["support", "team"])),
            "transition": 1,
            "delta": 1,
            "reason": draw(SHORT),
        },
    }


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    store.upgrade()
    yield store
    store.dispose()


def insert(way: str, session: Session, prepared: Prepared, values: dict[str, Any]) -> int:
    if way == "prepared":
        assert prepared._plan(session.connection().dialect, values) is not None
        return prepared.insert(session, values)
    inserted = session.connection().execute(prepared.statement, values)
    return int(inserted.inserted_primary_key[0])


def execute(way: str, session: Session, prepared: Prepared, values: dict[str, Any]) -> None:
    if way == "prepared":
        assert prepared._plan(session.connection().dialect, values) is not None
        prepared.execute(session, values)
    else:
        session.connection().execute(prepared.statement, values)


def first(way: str, session: Session, prepared: Prepared, values: dict[str, Any]) -> Any:
    if way == "prepared":
        assert prepared._plan(session.connection().dialect, values) is not None
        return prepared.first(session, values)
    row = session.connection().execute(prepared.statement, values).first()
    return None if row is None else tuple(row)


# The columns that hold generated ids, which a PostgreSQL sequence makes differ
# between two runs (it does not roll back); each is checked against the id returned.
IDS = {
    "users": ("id",),
    "issues": ("number", "submitter_id"),
    "deliveries": ("id", "issue_number", "user_id"),
    "seat_events": ("seq", "user_id", "delivery_id"),
}


def stored(session: Session, table: str, key: str, value: object) -> dict[str, object]:
    """The row as the driver hands it back, with no type processing of SQLAlchemy's."""
    mark = "?" if session.connection().dialect.paramstyle == "qmark" else "%s"
    sql = f"SELECT * FROM {table} WHERE {key} = {mark}"
    found = session.connection().exec_driver_sql(sql, (value,)).one()._asdict()
    assert found[key] == value
    return {k: v for k, v in found.items() if k not in IDS[table]}


def write_and_read(store: Store, way: str, given: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write `given` one way; what is stored, and what the reads return."""
    with store.sessions() as session:
        user_id = insert(way, session, roles.INSERT_USER, given["user"])
        issue = {**given["issue"], "submitter_id": user_id}
        number = insert(way, session, conversations.INSERT_ISSUE, issue)
        delivery = {**given["delivery"], "issue_number": number, "user_id": user_id}
        delivery_id = insert(way, session, intake.INSERT_DELIVERY, delivery)
        known = {"message_id": delivery["message_id"], "delivery_id": delivery_id}
        execute(way, session, intake.INSERT_KNOWN_MESSAGE, {**known, "issue_number": number})
        seat = {**given["seat"], "user_id": user_id, "delivery_id": delivery_id}
        seq = insert(way, session, ledger.INSERT_SEAT_EVENT, seat)
        look = {
            "message_id": delivery["message_id"],
            "sender": delivery["sender"] or "",
            "since": delivery["received_at"] - timedelta(hours=1),
            "at": delivery["received_at"],
            "limit": 5,
        }
        user_row = first(way, session, roles.USER_ROW, {"email": given["user"]["email"]})
        known_message, known_issue, earlier = first(way, session, intake.FIRST_LOOK, look)
        model = {"user_id": user_id, "model": seat["model"]}
        found = {
            "users": stored(session, "users", "id", user_id),
            "issues": stored(session, "issues", "number", number),
            "deliveries": stored(session, "deliveries", "id", delivery_id),
            "seat_events": stored(session, "seat_events", "seq", seq),
            "user_row": (user_row[0] == user_id, *user_row[1:]),
            "first_look": (known_message, known_issue == number, earlier),
            "seat_state": first(way, session, ledger.SEAT_STATE, model),
            "no_issue": first(way, session, conversations.ISSUE_EXISTS, {"number": number + 1}),
        }
        assert first(way, session, conversations.ISSUE_EXISTS, {"number": number}) == (number,)
        session.rollback()
    return found


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(given=rows())
def test_prepared_statements_store_and_read_what_sqlalchemy_does(
    store: Store, given: dict[str, dict[str, Any]]
) -> None:
    assert write_and_read(store, "prepared", given) == write_and_read(store, "plain", given)


def test_errors_are_sqlalchemys(store: Store) -> None:
    """A unique key broken, or a value a type refuses, fails as SQLAlchemy fails it."""
    user = {"email": "a@example.com", "name": "", "role": "customer", "origin": "sender"}
    user["created_at"] = datetime(2026, 1, 1, tzinfo=UTC)
    with store.sessions() as session:
        roles.INSERT_USER.insert(session, user)
        with pytest.raises(IntegrityError):
            roles.INSERT_USER.insert(session, user)
    with store.sessions() as session, pytest.raises(StatementError, match="naive datetime"):
        roles.INSERT_USER.insert(session, {**user, "created_at": datetime(2026, 1, 1)})


def test_a_rolled_back_savepoint_takes_its_rows(store: Store) -> None:
    user = {"email": "b@example.com", "name": "", "role": "customer", "origin": "sender"}
    user["created_at"] = datetime(2026, 1, 1, tzinfo=UTC)
    with store.sessions() as session:
        with session.begin_nested() as savepoint:
            roles.INSERT_USER.insert(session, user)
            assert roles.USER_ROW.first(session, {"email": "b@example.com"}) is not None
            savepoint.rollback()
        assert roles.USER_ROW.first(session, {"email": "b@example.com"}) is None


def test_statements_are_seen_by_a_listener(store: Store) -> None:
    """With a listener on the engine the plain path runs, so it sees each statement."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])

    with store.sessions() as session:
        session.connection()
        event.listen(store.engine, "before_cursor_execute", note)
        try:
            roles.USER_ROW.first(session, {"email": "c@example.com"})
        finally:
            event.remove(store.engine, "before_cursor_execute", note)
        roles.USER_ROW.first(session, {"email": "c@example.com"})
    assert len(seen) == 1 and "FROM users" in seen[0]
