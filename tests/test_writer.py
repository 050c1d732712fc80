"""Group commit without SMTP: one SAVEPOINT per delivery inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from simulator import notify
from simulator.org import Org
from simulator.parse import DEFAULT_MIME_LIMITS
from simulator.store.db import Store
from simulator.store.models import Delivery, SeatEvent, User
from simulator.writer import Submission, prepare, process_batch, write_batch
from tests.conftest import compose

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
KIM = "kim@customer.example"


@pytest.fixture
def store(db_url: str, org: Org) -> Iterator[Store]:
    store = Store(db_url)
    prepare(store, org, AT)
    yield store
    store.dispose()


def submission(subject: str, message_id: str) -> Submission:
    raw = compose(KIM, subject, message_id, to="support@acme.example")
    return Submission(raw, KIM, ["support@acme.example"], AT)


def test_a_failed_delivery_takes_its_user_and_seat_with_it(
    store: Store, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first delivery fails after its sender became a user and a Team seat; its
    SAVEPOINT rolls all of that back, so the next one creates and counts them anew."""
    after_intake = notify.after_intake

    def fail_on_boom(*args: Any, **kwargs: Any) -> notify.Notified:
        if args[3].subject == "boom":
            raise RuntimeError("a bug after the seat was appended")
        return after_intake(*args, **kwargs)

    monkeypatch.setattr(notify, "after_intake", fail_on_boom)
    failed, counted = write_batch(
        store, org, [submission("boom", "boom@customer.example"), submission("fine", "fine@c")]
    )
    assert (failed.outcome.value, failed.reason) == ("quarantined", "internal_error")
    assert (counted.outcome.value, counted.new_user) == ("created_issue", True)
    assert [str(c) for c in counted.seat_changes] == ["team+1(first_email)"]
    with store.sessions() as session:
        kim = session.scalars(select(User).where(User.email == KIM)).one()
        events = session.execute(
            select(SeatEvent.transition, SeatEvent.delivery_id).where(SeatEvent.user_id == kim.id)
        ).all()
        quarantined = session.get_one(Delivery, failed.delivery_id)
        assert quarantined.raw.startswith(b"From: " + KIM.encode())
    assert [tuple(e) for e in events] == [(1, counted.delivery_id)]


def test_process_batch_writes_in_the_callers_transaction(store: Store, org: Org) -> None:
    batch = [submission("one", "one@customer.example")]
    with store.sessions() as session, session.begin():
        (result,) = process_batch(session, org, batch, DEFAULT_MIME_LIMITS)
        assert result.outcome.value == "created_issue"
        session.rollback()  # the caller's decision: nothing of the batch remains
    with store.sessions() as session:
        assert session.scalars(select(Delivery)).all() == []
    (again,) = write_batch(store, org, batch)
    assert (again.outcome.value, again.new_user) == ("created_issue", True)
