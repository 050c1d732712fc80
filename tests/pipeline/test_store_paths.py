"""A new delivery and its known Message-ID (and the issue it opens): two or three
inserts, or on PostgreSQL one statement (a data-modifying WITH). The same traffic
through either way must store the same rows, and so must the plain execution of that
one statement (an engine listener makes every statement run through SQLAlchemy's
Connection.execute)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from simulator.org import org_from_tables
from simulator.pipeline import intake
from simulator.simulation.run import run_direct
from simulator.simulation.traffic import TrafficParams
from simulator.store.db import open_store
from tests.support.databases import PG_ENV, PG_SKIP, fresh_database
from tests.support.samples import org_file

TABLES = ("users", "issues", "deliveries", "known_messages", "seat_events", "issue_participants")


def stored_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: [tuple(r) for r in connection.exec_driver_sql(f"SELECT * FROM {table}")]
                for table in TABLES
            }
    finally:
        engine.dispose()


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=PG_SKIP)
def test_one_statement_stores_what_two_inserts_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cc users, billed noise and participant updates: every kind of delivery there is.
    tables = tomllib.loads(org_file("ccdesk.toml").read_text())
    tables["notify"] = {"acknowledge": True, "notify_participants_on_reply": True}
    org = org_from_tables(tables, "ccdesk")
    params = TrafficParams(emails=300, days=3.0, seed=11, reply_share=0.4, cc_per_message=1.0)
    found = []
    seen: list[str] = []
    for ways, plain in (
        (intake.ONE_STATEMENT_STORE, False),
        (frozenset(), False),
        (intake.ONE_STATEMENT_STORE, True),
    ):
        monkeypatch.setattr(intake, "ONE_STATEMENT_STORE", ways)
        with fresh_database("postgresql", tmp_path) as url:
            store = open_store(url)
            if plain:
                event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
            run_direct(store, org, params, lambda _: None)
            store.dispose()
            found.append(stored_rows(url))
    one, two, plainly = found
    assert len(one["known_messages"]) == len(one["deliveries"]) > 250
    assert one == two == plainly
    # Each new Message-ID was written by one statement, with its issue when it opened one.
    assert sum(s.startswith("WITH ") for s in seen) == len(one["known_messages"])
    assert sum(s.startswith("WITH opened AS") for s in seen) == len(one["issues"]) > 50
    assert not any(s.startswith("INSERT INTO issues") for s in seen)
