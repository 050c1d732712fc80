"""Forged senders must not turn the listener into a backscatter source: each
acknowledgement is checked against a per-mailbox cap (its +tags counted as one),
a per-client rate and an overall rate, and `acknowledge_only` can ask for more
than a new issue. Over a real listener, from two client addresses."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from simulator.errors import OrgFileError
from simulator.org import Org, load_org, sample_org_path
from simulator.store.db import open_store
from simulator.store.models import OutboxMessage
from tests.support.listeners import running_listener
from tests.support.mail import compose

LIMITS = """per_recipient_cap = 2
acknowledgements_per_client = 3
acknowledgements_per_window = 5
"""


def org_with(tmp_path: Path, notify_lines: str) -> Org:
    text = sample_org_path().read_text(encoding="utf-8")
    text = text.replace("per_recipient_cap = 10", "", 1).replace(
        "[notify]\n", "[notify]\n" + notify_lines, 1
    )
    path = tmp_path / "org.toml"
    path.write_text(text, encoding="utf-8")
    return load_org(path)


def send(port: int, sender: str, source: str, envelope: str | None = None) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("tests.localhost")
        client.mail(envelope or sender)
        client.rcpt("support@acme.example")
        return client.data(compose(sender, f"new issue from {sender}"))[0]


async def outbox_after(
    url: str, org: Org, mails: list[tuple[str, str, str | None]]
) -> dict[str, str]:
    """Send each (From, client address, envelope sender); each recipient's outbox row."""
    store = open_store(url)
    try:
        async with running_listener(store, org) as listener:
            for sender, source, envelope in mails:
                code = await asyncio.to_thread(send, listener.port, sender, source, envelope)
                assert code == 250, sender
        with store.sessions() as session:
            found = session.execute(
                select(OutboxMessage.recipient, OutboxMessage.status, OutboxMessage.last_error)
            ).all()
    finally:
        store.dispose()
    return {r: status if status != "suppressed" else error for r, status, error in found}


async def test_acknowledgements_are_capped_per_mailbox_client_and_overall(
    sqlite_url: str, tmp_path: Path
) -> None:
    mails = [(f"wendy+{n}@customer.example", "127.0.0.1", None) for n in (1, 2, 3)]
    mails += [(f"a{n}@customer.example", "127.0.0.1", None) for n in (1, 2)]
    mails += [(f"b{n}@customer.example", "127.0.0.2", None) for n in (1, 2, 3)]
    got = await outbox_after(sqlite_url, org_with(tmp_path, LIMITS), mails)
    assert got == {
        "wendy+1@customer.example": "pending",
        "wendy+2@customer.example": "pending",
        "wendy+3@customer.example": "per-recipient cap: 2 in 3 h",
        "a1@customer.example": "pending",
        "a2@customer.example": "acknowledgement rate: 3 per client in 3 h",
        "b1@customer.example": "pending",
        "b2@customer.example": "pending",
        "b3@customer.example": "acknowledgement rate: 5 in all in 3 h",
    }


async def test_acknowledge_only_when_aligned(sqlite_url: str, tmp_path: Path) -> None:
    org = org_with(tmp_path, 'acknowledge_only = "aligned"\n')
    mails = [
        ("carol@customer.example", "127.0.0.1", "carol@customer.example"),
        ("forged@victim.example", "127.0.0.1", "bulk@attacker.example"),
        ("other@victim.example", "127.0.0.1", "other@sub.victim.example"),
    ]
    got = await outbox_after(sqlite_url, org, mails)
    assert got == {"carol@customer.example": "pending"}


def test_acknowledge_only_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(OrgFileError, match="acknowledge_only must be one of"):
        org_with(tmp_path, 'acknowledge_only = "sometimes"\n')
