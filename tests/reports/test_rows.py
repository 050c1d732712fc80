"""The listings of simulator/reports/rows.py (users, issues, messages, ledger, outbox)
over a small real SQLite database built by the real pipeline: every row, every key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from simulator.domain import Channel, Submission
from simulator.org import load_org
from simulator.pipeline.batch import ingest, prepare
from simulator.reports import rows
from simulator.smtp.relay import RetryPolicy, claim_due, record
from simulator.store.db import Store
from tests.support.mail import compose
from tests.support.samples import org_file

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SENT_AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HELP = "help@initech.test"
KIM = "kim@customer.example"
OURS = "@notify.initech.test"


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def submission(
    sender: str,
    subject: str,
    message_id: str,
    minutes: int,
    headers: dict[str, str] | None = None,
    channel: Channel = Channel.SMTP,
    name: str = "",
) -> Submission:
    from_header = f"{name} <{sender}>" if name else sender
    raw = compose(from_header, subject, message_id, to=HELP, headers=headers)
    return Submission(raw, sender, [HELP], T0 + timedelta(minutes=minutes), channel)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Initech (acknowledgements and updates on; Pat is its agent) after five deliveries:
    Kim opens #1 with Ann on Cc, Lee (a colleague) opens #2, Pat answers #1, an
    out-of-office is filtered, and Kim's first mail arrives again. Then the relay
    takes the first acknowledgement and refuses the second for good."""
    folder = tmp_path_factory.mktemp("rows")
    store = Store(f"sqlite:///{folder / 'intake.db'}")
    org = load_org(org_file("initech.toml"))
    prepare(store, org, T0)
    items = [
        submission(
            KIM,
            "Printer on fire",
            "k1@customer.example",
            10,
            {"Cc": "ann@customer.example"},
            name="Kim Park",
        ),
        submission("lee@initech.test", "VPN down", "l1@initech.test", 20),
        submission(
            "pat@initech.test",
            "Re: Printer on fire",
            "p1@initech.test",
            30,
            {"In-Reply-To": "<k1@customer.example>"},
        ),
        submission(
            "ooo@customer.example",
            "Out of office",
            "o1@customer.example",
            40,
            {"Auto-Submitted": "auto-replied"},
        ),
        submission(KIM, "Printer on fire", "k1@customer.example", 50, channel=Channel.INGEST),
    ]
    assert ingest(store, org, items) == 5
    first, second = claim_due(store, SENT_AT, limit=2)
    record(store, first, 250, "2.0.0 caught", SENT_AT, RetryPolicy())
    record(store, second, 550, "5.1.1 No such user", SENT_AT, RetryPolicy())
    yield store
    store.dispose()


@pytest.fixture
def session(store: Store) -> Iterator[Session]:
    with store.read() as session:
        yield session


def test_users(session: Session) -> None:
    assert rows.users(session) == [
        {
            "email": "pat@initech.test",
            "name": "Pat Agent",
            "role": "agent",
            "origin": "directory",
            "support_seat": True,
            "team_seat": True,
            "first_seen": at(30),
            "messages": 1,
        },
        {
            "email": KIM,
            "name": "Kim Park",
            "role": "customer",
            "origin": "sender",
            "support_seat": False,
            "team_seat": True,
            "first_seen": at(10),
            "messages": 1,  # the resend is a duplicate, not a message
        },
        {
            "email": "lee@initech.test",
            "name": "",
            "role": "employee",
            "origin": "sender",
            "support_seat": False,
            "team_seat": True,
            "first_seen": at(20),
            "messages": 1,
        },
        {
            "email": "ann@customer.example",
            "name": "",
            "role": "customer",
            "origin": "notified",  # a user because she was sent an update
            "support_seat": False,
            "team_seat": True,
            "first_seen": None,
            "messages": 0,
        },
    ]


def test_issues(session: Session) -> None:
    assert rows.issues(session) == [
        {
            "number": 1,
            "subject": "Printer on fire",
            "submitter": KIM,
            "messages": 2,
            "created_at": at(10),
        },
        {
            "number": 2,
            "subject": "VPN down",
            "submitter": "lee@initech.test",
            "messages": 1,
            "created_at": at(20),
        },
    ]


def message(
    delivery_id: int,
    minutes: int,
    message_id: str,
    sender: str,
    subject: str,
    outcome: str,
    reason: str | None,
    issue: int | None,
    channel: str = "smtp",
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "received_at": at(minutes),
        "message_id": message_id,
        "sender": sender,
        "subject": subject,
        "outcome": outcome,
        "reason": reason,
        "issue": issue,
        "channel": channel,
        "intake_address": HELP,
        "sender_source": "from",  # every sample mail names its sender in From
        "peer": "",  # read from files, not over SMTP
        "sender_trust": "",  # the org asks no proof of any role
    }


MESSAGES = [
    message(1, 10, "k1@customer.example", KIM, "Printer on fire", "created_issue", None, 1),
    message(2, 20, "l1@initech.test", "lee@initech.test", "VPN down", "created_issue", None, 2),
    message(
        3,
        30,
        "p1@initech.test",
        "pat@initech.test",
        "Re: Printer on fire",
        "threaded",
        "in_reply_to",
        1,
    ),
    message(
        4,
        40,
        "o1@customer.example",
        "ooo@customer.example",
        "Out of office",
        "filtered",
        "auto_reply",
        None,
    ),
    message(
        5, 50, "k1@customer.example", KIM, "Printer on fire", "duplicate", "message_id", 1, "ingest"
    ),
]


def test_messages(session: Session) -> None:
    assert rows.messages(session) == MESSAGES


@pytest.mark.parametrize(
    ("outcome", "ids"),
    [("created_issue", [1, 2]), ("filtered", [4]), ("duplicate", [5]), ("quarantined", [])],
)
def test_messages_by_outcome(session: Session, outcome: str, ids: list[int]) -> None:
    assert rows.messages(session, outcome) == [m for m in MESSAGES if m["id"] in ids]


LEDGER = [
    {
        "seq": 1,
        "at": at(0),
        "model": "support",
        "user": "pat@initech.test",
        "delta": 1,
        "reason": "directory_agent",
        "delivery": None,
    },
    {
        "seq": 2,
        "at": at(0),
        "model": "team",
        "user": "pat@initech.test",
        "delta": 1,
        "reason": "directory_login",
        "delivery": None,
    },
    {
        "seq": 3,
        "at": at(10),
        "model": "team",
        "user": KIM,
        "delta": 1,
        "reason": "first_email",
        "delivery": 1,
    },
    {
        "seq": 4,
        "at": at(20),
        "model": "team",
        "user": "lee@initech.test",
        "delta": 1,
        "reason": "first_email",
        "delivery": 2,
    },
    {
        "seq": 5,
        "at": at(30),
        "model": "team",
        "user": "ann@customer.example",
        "delta": 1,
        "reason": "notified",
        "delivery": 3,
    },
]


def test_ledger(session: Session) -> None:
    assert rows.ledger(session) == LEDGER


def test_ledger_by_model(session: Session) -> None:
    assert rows.ledger(session, "support") == LEDGER[:1]
    assert rows.ledger(session, "team") == LEDGER[1:]


def test_outbox(session: Session) -> None:
    listed = rows.outbox(session)
    message_ids = [row.pop("message_id") for row in listed]
    assert all(
        m.startswith(f"issue-{row['issue']}.") for m, row in zip(message_ids, listed, strict=True)
    )
    assert all(m.endswith(OURS) for m in message_ids) and len(set(message_ids)) == 4
    common = {"subject": "[Issue #1] Printer on fire", "issue": 1}
    assert listed == [
        {
            **common,
            "id": 1,
            "created_at": at(10),
            "kind": "acknowledgement",
            "recipient": KIM,
            "status": "sent",
            "attempts": 1,
            "next_attempt_at": None,
            "last_error": None,
            "sent_at": "2026-11-02T12:00:00Z",
            "delivery": 1,
        },
        {
            "id": 2,
            "created_at": at(20),
            "kind": "acknowledgement",
            "issue": 2,
            "recipient": "lee@initech.test",
            "subject": "[Issue #2] VPN down",
            "status": "failed",
            "attempts": 1,
            "next_attempt_at": None,
            "last_error": "550 5.1.1 No such user",
            "sent_at": None,
            "delivery": 2,
        },
        {
            **common,
            "id": 3,
            "created_at": at(30),
            "kind": "update",
            "recipient": KIM,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at(30),
            "last_error": None,
            "sent_at": None,
            "delivery": 3,
        },
        {
            **common,
            "id": 4,
            "created_at": at(30),
            "kind": "update",
            "recipient": "ann@customer.example",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at(30),
            "last_error": None,
            "sent_at": None,
            "delivery": 3,
        },
    ]


@pytest.mark.parametrize(
    ("status", "ids"), [("sent", [1]), ("failed", [2]), ("pending", [3, 4]), ("suppressed", [])]
)
def test_outbox_by_status(session: Session, status: str, ids: list[int]) -> None:
    assert [row["id"] for row in rows.outbox(session, status)] == ids
    assert {row["status"] for row in rows.outbox(session, status)} <= {status}


def test_an_empty_database_lists_nothing(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        store.ensure_schema()
        with store.read() as session:
            for listing in (rows.users, rows.issues, rows.messages, rows.ledger, rows.outbox):
                assert listing(session) == [], listing.__name__


def test_times_are_iso_8601_utc_with_a_z() -> None:
    assert rows.iso(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)) == "2026-11-02T09:00:00Z"
    paris = datetime(2026, 11, 2, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert rows.iso(paris) == "2026-11-02T10:00:00Z"
    assert rows.iso(None) is None
