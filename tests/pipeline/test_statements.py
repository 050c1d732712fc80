"""What one delivery costs the database: the SQL statements intake runs, counted on a
real SQLite file with the sample org (acknowledgements on). SQLAlchemy's own Python
per statement outweighs SQLite's work, so the count is the processor's cost; these
bounds keep a change from adding statements back unnoticed (docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from simulator.domain import Submission
from simulator.org import Org
from simulator.pipeline.batch import process_batch
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
from simulator.store.db import Store
from tests.support.databases import prepared_sqlite
from tests.support.mail import compose

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DESK = "support@acme.example"


@pytest.fixture
def store(tmp_path: Path, org: Org) -> Iterator[Store]:
    yield from prepared_sqlite(tmp_path, org, AT)


def statements_per_delivery(store: Store, org: Org, batch: list[Submission]) -> list[int]:
    """How many statements each delivery of `batch` ran, in one transaction."""
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(args[2])

    per_delivery = []
    with store.sessions.begin() as session:
        session.connection()  # BEGIN and the batch's SAVEPOINT are not the deliveries'
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            for item in batch:
                before = len(counted)
                process_batch(session, org, [item], DEFAULT_MIME_LIMITS)
                # Less the SAVEPOINT and its RELEASE around each one-item batch.
                per_delivery.append(len(counted) - before - 2)
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
    return per_delivery


def test_a_new_issue_and_its_acknowledgement_take_few_statements(store: Store, org: Org) -> None:
    def mail(n: int) -> Submission:
        raw = compose("kim@customer.example", f"Help {n}", f"m{n}@customer.example", to=DESK)
        return Submission(raw, "kim@customer.example", [DESK], AT + timedelta(minutes=n))

    first, again = statements_per_delivery(store, org, [mail(1), mail(2)])
    # First look (known id, flood window, and the sender's user and seat: none),
    # user insert, issue, delivery, known id, seat event, the signing secret (once
    # per transaction), the acknowledgement's stops and its outbox row. The code
    # before had 14, then 10 (the user read apart).
    assert first <= 9
    # The sender and its seat are known from the batch: no user read, no seat read.
    # The code before had 11.
    assert again <= 6
    # In a later transaction the sender's user and seat come with the first look:
    # the signing secret is read again, no user or seat read apart.
    (later,) = statements_per_delivery(store, org, [mail(3)])
    assert later <= 7
