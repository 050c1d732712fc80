"""Storage trouble answers 451, keeps the listener running, and leaves nothing half-written."""

from __future__ import annotations

import sqlite3

from sqlalchemy import func, select

from simulator.store.models import Delivery, Issue, KnownMessage, SeatEvent, User
from tests.conftest import Listener, compose


def counts(listener: Listener) -> dict[str, int]:
    with listener.store.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Delivery, Issue, KnownMessage, SeatEvent, User)
        }


def sqlite_path(listener: Listener) -> str:
    return listener.store.url.removeprefix("sqlite:///")


async def test_failing_write_gives_451_and_rolls_back_everything(listener: Listener) -> None:
    before = counts(listener)
    # The last write of a new customer's delivery is their Team seat event; make it fail,
    # as a full disk or a lost connection would, after the delivery, user and issue rows.
    with sqlite3.connect(sqlite_path(listener)) as db:
        db.execute(
            "CREATE TRIGGER fail_seats BEFORE INSERT ON seat_events "
            "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
        )
    raw = compose(
        "new@customer.example", "Broken", "fail-1@customer.example", to="support@acme.example"
    )
    code, reply = await listener.send(raw)
    assert code == 451, reply
    assert reply.startswith("4.3.0")
    assert counts(listener) == before

    with sqlite3.connect(sqlite_path(listener)) as db:
        db.execute("DROP TRIGGER fail_seats")
    code, reply = await listener.send(raw)  # the client's retry
    assert code == 250, reply
    after = counts(listener)
    assert after["deliveries"] == before["deliveries"] + 1
    assert after["issues"] == before["issues"] + 1
    assert after["users"] == before["users"] + 1
    assert after["seat_events"] == before["seat_events"] + 1
