"""Group commit without SMTP: one SAVEPOINT per delivery inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from simulator.domain import Submission
from simulator.org import Org
from simulator.pipeline import notify
from simulator.pipeline.batch import prepare, process_batch, write_batch
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
from simulator.store.db import Store
from simulator.store.models import Delivery, SeatEvent, User
from tests.support.mail import compose

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
KIM = "kim@customer.example"


@pytest.fixture
def store(db_url: str, org: Org) -> Iterator[Store]:
    store = Store(db_url)
    prepare(store, org, AT)
    yield store
    store.dispose()


def submission(subject: str, message_id: str, sender: str = KIM) -> Submission:
    raw = compose(sender, subject, message_id, to="support@acme.example")
    return Submission(raw, sender, ["support@acme.example"], AT)


@pytest.mark.parametrize(
    ("sender", "new_user"),
    [(KIM, True), ("dana@acme.example", False)],  # a stranger; a directory user without a seat
)
def test_a_failed_delivery_takes_its_seat_event_with_it(
    store: Store, org: Org, monkeypatch: pytest.MonkeyPatch, sender: str, new_user: bool
) -> None:
    """The first delivery fails after its sender was made a Team seat; its SAVEPOINT
    rolls that back (and the user, when it was new), so the next one counts anew."""
    after_intake = notify.after_intake

    def fail_on_boom(*args: Any, **kwargs: Any) -> notify.Notified:
        if args[3].subject == "boom":
            raise RuntimeError("a bug after the seat was appended")
        return after_intake(*args, **kwargs)

    monkeypatch.setattr(notify, "after_intake", fail_on_boom)
    batch = [submission("boom", "boom@c", sender), submission("fine", "fine@c", sender)]
    failed, counted = write_batch(store, org, batch)
    assert (failed.outcome.value, failed.reason) == ("quarantined", "internal_error")
    assert (counted.outcome.value, counted.new_user) == ("created_issue", new_user)
    assert [str(c) for c in counted.seat_changes] == ["team+1(first_email)"]
    with store.sessions() as session:
        user = session.scalars(select(User).where(User.email == sender)).one()
        events = session.execute(
            select(SeatEvent.transition, SeatEvent.delivery_id).where(
                SeatEvent.user_id == user.id, SeatEvent.model == "team"
            )
        ).all()
        quarantined = session.get_one(Delivery, failed.delivery_id)
        assert quarantined.raw.startswith(b"From: " + sender.encode())
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
