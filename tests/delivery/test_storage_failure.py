"""Storage trouble answers 451, keeps the listener running, and leaves nothing half-written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.demo import sample_emails_dir
from simulator.store.models import Delivery, Issue, KnownMessage, SeatEvent, User
from tests.support.databases import backend_of, pg_admin
from tests.support.listeners import Listener
from tests.support.mail import compose

ACME = "support@acme.example"

# A trigger that fails every seat event insert, as a full disk or a lost
# connection would, after the delivery, user and issue rows were written.
FAIL_SEATS = {
    "sqlite": [
        "CREATE TRIGGER fail_seats BEFORE INSERT ON seat_events "
        "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION fail_seats() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'simulated storage failure'; END $$",
        "CREATE TRIGGER fail_seats BEFORE INSERT ON seat_events "
        "FOR EACH ROW EXECUTE FUNCTION fail_seats()",
    ],
}
HEAL_SEATS = {
    "sqlite": ["DROP TRIGGER fail_seats"],
    "postgresql": ["DROP TRIGGER fail_seats ON seat_events", "DROP FUNCTION fail_seats()"],
}


def counts(listener: Listener) -> dict[str, int]:
    with listener.store.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Delivery, Issue, KnownMessage, SeatEvent, User)
        }


def execute(listener: Listener, statements: list[str]) -> None:
    with listener.store.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


async def test_failing_write_gives_451_and_rolls_back_everything(listener: Listener) -> None:
    before = counts(listener)
    # The last write of a new customer's delivery is their Team seat event: make it fail.
    backend = backend_of(listener.store.url)
    execute(listener, FAIL_SEATS[backend])
    raw = compose(
        "new@customer.example", "Broken", "fail-1@customer.example", to="support@acme.example"
    )
    code, reply = await listener.send(raw)
    assert code == 451, reply
    assert reply.startswith("4.3.0")
    assert counts(listener) == before

    execute(listener, HEAL_SEATS[backend])
    code, reply = await listener.send(raw)  # the client's retry
    assert code == 250, reply
    after = counts(listener)
    assert after["deliveries"] == before["deliveries"] + 1
    assert after["issues"] == before["issues"] + 1
    assert after["users"] == before["users"] + 1
    assert after["seat_events"] == before["seat_events"] + 1


async def test_postgresql_outage_gives_451_and_the_listener_recovers(listener: Listener) -> None:
    if backend_of(listener.store.url) != "postgresql":
        pytest.skip("a database server outage is a PostgreSQL matter")
    name = make_url(listener.store.url).database
    admin = pg_admin()
    raw = compose("outage@customer.example", "Down", "outage-1@customer.example", to=ACME)
    try:
        # The database goes away: every session is cut and no new one is let in.
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        code, reply = await listener.send(raw)
        assert code == 451, reply
        assert reply.startswith("4.3.0")
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()
    code, reply = await listener.send(raw)  # the same listener, after the outage
    assert code == 250, reply
    with listener.store.sessions() as session:
        stored = session.scalars(select(Delivery.message_id)).all()
    assert stored == ["outage-1@customer.example"]


# `serve` is the exception: it listens anyway and answers 451 until the database
# is back (tests/delivery/test_outages.py), so that a restart of the database needs no
# restart of the listener.
@pytest.mark.parametrize("command", ["ingest", "users", "db upgrade"])
def test_unreachable_postgresql_at_start_is_one_error_line(command: str) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    url = "postgresql+psycopg://intake@127.0.0.1:1/intake"
    extra = [str(sample_emails_dir() / "01-new-plain-text.eml")] if command == "ingest" else []
    result = CliRunner().invoke(app, [*command.split(), *extra, "--db", url])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot open {url}: connection failed")
    assert len(result.stderr.strip().splitlines()) == 1
