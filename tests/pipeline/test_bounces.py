"""Bounces act on what they concern (simulator/pipeline/bounces.py), through the real
pipeline on a real SQLite file with the sample org, which acknowledges new issues:
a permanent failure of an acknowledgement stops further automatic email to that
address (outbox `suppressed`, with the reason), a soft one marks nothing, and the
report counts the undeliverable addresses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from simulator.domain import Submission
from simulator.org import Org
from simulator.pipeline.batch import write_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.reports import summary
from simulator.store.db import Store
from simulator.store.models import BouncedRecipient, OutboxMessage
from tests.support.databases import prepared_sqlite
from tests.support.mail import compose

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DESK = "support@acme.example"
KIM = "kim@customer.example"
LEE = "lee@customer.example"


@pytest.fixture
def store(tmp_path: Path, org: Org) -> Iterator[Store]:
    yield from prepared_sqlite(tmp_path, org, AT)


def deliver(store: Store, org: Org, raw: bytes, envelope: str, minutes: int) -> DeliveryResult:
    at = AT + timedelta(minutes=minutes)
    (result,) = write_batch(store, org, [Submission(raw, envelope, [DESK], at)])
    return result


def dsn(recipient: str, status: str, returned_id: str, n: int) -> bytes:
    """A delivery report from the recipient's MTA, returning the headers of our email."""
    body = (
        "--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n\r\n"
        "--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {DESK}\r\nTo: {recipient}\r\nMessage-ID: <{returned_id}>\r\n\r\n--r--\r\n"
    )
    headers = {
        "MIME-Version": "1.0",
        "Content-Type": 'multipart/report; report-type=delivery-status; boundary="r"',
    }
    return compose(
        "mailer-daemon@mx.customer.example", "Undelivered Mail", f"dsn{n}@mx", body=body,
        headers=headers,
    )  # fmt: skip


def acknowledgements(store: Store, address: str) -> list[OutboxMessage]:
    with store.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.recipient == address)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def open_issue(store: Store, org: Org, sender: str, n: int) -> tuple[int, str]:
    result = deliver(store, org, compose(sender, f"Help {n}", f"m{n}@customer.example"), sender, n)
    assert result.outcome.value == "created_issue" and result.issue is not None
    return result.issue, acknowledgements(store, sender)[-1].message_id


def test_a_permanent_bounce_stops_further_email_to_that_address(store: Store, org: Org) -> None:
    issue, ack_id = open_issue(store, org, KIM, 1)
    bounce = deliver(store, org, dsn(KIM, "5.1.1", ack_id, 1), "", 2)
    assert (bounce.outcome.value, bounce.reason) == ("filtered", "bounce")
    with store.sessions() as session:
        (row,) = session.scalars(select(BouncedRecipient))
        assert (row.email, row.status, row.permanent) == (KIM, "5.1.1", True)
        assert (row.returned_message_id, row.issue_number) == (ack_id, issue)
        assert row.delivery_id == bounce.delivery_id

    open_issue(store, org, KIM, 3)
    first, second = acknowledgements(store, KIM)
    assert first.status == "pending"
    assert second.status == "suppressed"
    assert second.last_error == f"undeliverable: 5.1.1 bounce (delivery {bounce.delivery_id})"
    with store.sessions() as session:
        report = summary.report(session, org, AT + timedelta(hours=1))
    assert report["notifications"]["undeliverable"] == 1


def test_a_soft_bounce_is_recorded_and_marks_nothing(store: Store, org: Org) -> None:
    _, ack_id = open_issue(store, org, LEE, 1)
    deliver(store, org, dsn(LEE, "4.2.2", ack_id, 1), "", 2)
    with store.sessions() as session:
        (row,) = session.scalars(select(BouncedRecipient))
        assert (row.email, row.permanent) == (LEE, False)
        assert (
            summary.report(session, org, AT + timedelta(hours=1))["notifications"]["undeliverable"]
            == 0
        )
    open_issue(store, org, LEE, 3)
    assert [ack.status for ack in acknowledgements(store, LEE)] == ["pending", "pending"]


def test_a_bounce_for_mail_we_do_not_know_links_no_issue(store: Store, org: Org) -> None:
    deliver(store, org, dsn(KIM, "5.1.1", "somebody-else@elsewhere.example", 1), "", 1)
    with store.sessions() as session:
        (row,) = session.scalars(select(BouncedRecipient))
        assert (row.returned_message_id, row.issue_number) == (
            "somebody-else@elsewhere.example",
            None,
        )


def test_a_bounce_stops_email_in_the_same_batch(store: Store, org: Org) -> None:
    """Mail from an address, a bounce for it and its next mail arrive in one batch (one
    transaction): the last acknowledgement's check must see the failure recorded a
    moment before, though the address was looked up earlier in the batch."""
    _, ack_id = open_issue(store, org, KIM, 1)

    def at(minutes: int) -> datetime:
        return AT + timedelta(minutes=minutes)

    batch = [
        Submission(compose(KIM, "Help 2", "m2@customer.example"), KIM, [DESK], at(2)),
        Submission(dsn(KIM, "5.1.1", ack_id, 3), "", [DESK], at(3)),
        Submission(compose(KIM, "Help 4", "m4@customer.example"), KIM, [DESK], at(4)),
    ]
    _, bounce, again = write_batch(store, org, batch)
    assert (bounce.reason, again.outcome.value) == ("bounce", "created_issue")
    *_, before, last = acknowledgements(store, KIM)
    assert (before.status, last.status) == ("pending", "suppressed")
    assert last.last_error == f"undeliverable: 5.1.1 bounce (delivery {bounce.delivery_id})"
