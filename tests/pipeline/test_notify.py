"""Automatic email over real SMTP: our listener, a real catcher as the relay, real SQLite."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from simulator.org import Org, load_org
from simulator.pipeline.batch import prepare
from simulator.reports import rows, summary
from simulator.service import RunningService, intake_service
from simulator.smtp.relay import Relay, RetryPolicy
from simulator.smtp.server import ListenerOptions
from simulator.store.db import Store, open_store
from tests.support.catcher import CatcherHandler, Caught, catcher
from tests.support.listeners import smtp_transaction
from tests.support.mail import compose
from tests.support.samples import org_file

INTAKE = "help@initech.test"
OUR_DOMAIN = "notify.initech.test"
FAST_RETRY = RetryPolicy(first_delay=0.1, max_delay=0.4, max_attempts=50)
Row = dict[str, object]


@dataclass
class Desk:
    """A listener under test, its relay (a real catcher) and its store."""

    service: RunningService
    store: Store
    org: Org
    relay: CatcherHandler

    async def send(self, raw: bytes, mail_from: str) -> tuple[int, str]:
        return await asyncio.to_thread(
            smtp_transaction, self.service.host, self.service.port, raw, mail_from, INTAKE
        )

    def messages(self) -> list[Row]:
        with self.store.read() as session:
            return rows.messages(session)

    def outbox(self, status: str | None = None) -> list[Row]:
        with self.store.read() as session:
            return rows.outbox(session, status)

    async def settle(self) -> None:
        """Until every automatic email had its try and no auto-response is in flight."""
        assert self.service.outbox is not None
        quiet = 0
        while quiet < 3:  # three calm looks in a row: nothing left moving
            assert await self.service.outbox.drain(10)
            quiet = 0 if self.relay.responses else quiet + 1
            await asyncio.sleep(0.05)


@asynccontextmanager
async def desk(
    tmp_path: Path, relay: CatcherHandler, relay_port: int, db_url: str | None = None
) -> AsyncIterator[Desk]:
    org = load_org(org_file("initech.toml"))
    store = open_store(db_url or f"sqlite:///{tmp_path / 'intake.db'}")
    await asyncio.to_thread(prepare, store, org)
    options = ListenerOptions(port=0)
    relay_at = Relay("127.0.0.1", relay_port)
    try:
        async with intake_service(store, org, options, relay=relay_at, retry=FAST_RETRY) as service:
            yield Desk(service, store, org, relay)
    finally:
        store.dispose()


@pytest.fixture
async def helpdesk(tmp_path: Path) -> AsyncIterator[Desk]:
    relay = CatcherHandler()
    async with catcher(relay) as (_, port), desk(tmp_path, relay, port) as running:
        yield running


def mail(sender: str, subject: str, **kwargs: object) -> tuple[bytes, str]:
    """A customer's message and its Message-ID."""
    message_id = f"{uuid.uuid4().hex}@{parseaddr(sender)[1].partition('@')[2]}"
    return compose(sender, subject, message_id, to=INTAKE, **kwargs), message_id  # type: ignore[arg-type]


def header(caught: Caught, name: str) -> str:
    return str(caught.message[name] or "")


async def test_acknowledgement_reaches_the_relay_with_anti_loop_headers(helpdesk: Desk) -> None:
    raw, their_id = mail("Ann Customer <ann@cust.test>", "Printer on fire")
    assert (await helpdesk.send(raw, "ann@cust.test"))[0] == 250
    [ack] = await helpdesk.relay.wait_for(1)

    assert ack.rcpt_tos == ("ann@cust.test",)
    assert (
        ack.mail_from.strip("<>") == ""
    )  # RFC 3834: automatic replies go out with the null sender
    assert header(ack, "Subject") == "[Issue #1] Printer on fire"
    assert header(ack, "To") == "Ann Customer <ann@cust.test>"
    assert header(ack, "Auto-Submitted") == "auto-replied"
    assert header(ack, "X-Auto-Response-Suppress") == "All"
    assert header(ack, "Precedence") == "bulk"
    assert header(ack, "X-Intake-Sim-Loop") == OUR_DOMAIN
    assert header(ack, "In-Reply-To") == f"<{their_id}>"
    assert header(ack, "Message-ID").endswith(f"@{OUR_DOMAIN}>")
    assert "issue #1" in ack.message.get_content()

    await helpdesk.settle()  # the relay's 250 comes a moment before the row is marked sent
    [row] = helpdesk.outbox()
    assert row["status"] == "sent" and row["attempts"] == 1 and row["kind"] == "acknowledgement"
    assert f"<{row['message_id']}>" == header(ack, "Message-ID")


async def test_reply_to_the_acknowledgement_threads_by_its_signed_id(helpdesk: Desk) -> None:
    raw, _ = mail("ann@cust.test", "Printer on fire")
    await helpdesk.send(raw, "ann@cust.test")
    [ack] = await helpdesk.relay.wait_for(1)
    # No subject tag: only the signed In-Reply-To can put this on issue #1.
    reply, _ = mail(
        "ann@cust.test", "more details", headers={"In-Reply-To": header(ack, "Message-ID")}
    )
    assert (await helpdesk.send(reply, "ann@cust.test"))[0] == 250
    last = helpdesk.messages()[-1]
    assert (last["outcome"], last["reason"], last["issue"]) == ("threaded", "in_reply_to", 1)
    await helpdesk.settle()
    assert len(helpdesk.relay.caught) == 1  # Ann is the only participant: no update to anyone


async def test_forged_reference_in_our_domain_does_not_thread(helpdesk: Desk) -> None:
    raw, _ = mail("ann@cust.test", "Printer on fire")
    await helpdesk.send(raw, "ann@cust.test")
    [ack] = await helpdesk.relay.wait_for(1)
    genuine = header(ack, "Message-ID").strip("<>")
    token, _, domain = genuine.partition("@")
    issue, nonce, mac = token.split(".")
    forgeries = [
        f"{issue}.{nonce}.{'0' * len(mac)}@{domain}",  # right shape, wrong signature
        f"issue-2.{nonce}.{mac}@{domain}",  # a genuine signature moved to another issue
        f"issue-1@{domain}",  # not even the shape
    ]
    for forged in forgeries:
        raw, _ = mail("mallory@evil.test", "hello", headers={"In-Reply-To": f"<{forged}>"})
        await helpdesk.send(raw, "mallory@evil.test")
    outcomes = [(m["outcome"], m["issue"]) for m in helpdesk.messages()[1:]]
    assert outcomes == [("created_issue", 2), ("created_issue", 3), ("created_issue", 4)]


async def test_out_of_office_answer_is_filtered_and_triggers_nothing(helpdesk: Desk) -> None:
    raw, _ = mail("ann@cust.test", "Printer on fire")
    await helpdesk.send(raw, "ann@cust.test")
    [ack] = await helpdesk.relay.wait_for(1)
    ooo, _ = mail(
        "ann@cust.test",
        f"Out of office: {header(ack, 'Subject')}",
        headers={"In-Reply-To": header(ack, "Message-ID"), "Auto-Submitted": "auto-replied"},
        body="I am away until Monday.",
    )
    assert (await helpdesk.send(ooo, "ann@cust.test"))[0] == 250
    last = helpdesk.messages()[-1]
    assert (last["outcome"], last["reason"], last["issue"]) == ("filtered", "auto_reply", None)
    # The outbox row would have been written in the same transaction as the 250.
    assert len(helpdesk.outbox()) == 1
    await helpdesk.settle()
    assert len(helpdesk.relay.caught) == 1


async def test_our_own_mail_coming_back_is_a_loop(helpdesk: Desk) -> None:
    raw, _ = mail("ann@cust.test", "Printer on fire")
    await helpdesk.send(raw, "ann@cust.test")
    [ack] = await helpdesk.relay.wait_for(1)
    # Straight back, and through a forwarder that gave it a new Message-ID.
    forwarded = ack.raw.replace(header(ack, "Message-ID").encode(), b"<fwd-1@forwarder.test>", 1)
    assert forwarded != ack.raw
    for raw in (ack.raw, forwarded):
        await helpdesk.send(raw, "bounce-handler@cust.test")
    assert [(m["outcome"], m["reason"]) for m in helpdesk.messages()[1:]] == [
        ("filtered", "loop"),
        ("filtered", "loop"),
    ]
    assert len(helpdesk.outbox()) == 1


async def test_subject_cannot_inject_headers(helpdesk: Desk) -> None:
    # An encoded word decodes to CR LF: the one way a subject can carry a line break.
    hostile = "=?utf-8?q?Help=0D=0ABcc=3A_victim=40x=2Etest=0D=0AX-Evil=3A_1?="
    raw, _ = mail("ann@cust.test", hostile)
    assert (await helpdesk.send(raw, "ann@cust.test"))[0] == 250
    [ack] = await helpdesk.relay.wait_for(1)
    assert ack.rcpt_tos == ("ann@cust.test",)
    assert ack.message["Bcc"] is None and ack.message["X-Evil"] is None
    head = ack.raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith((b"bcc:", b"x-evil:")) for line in head.split(b"\r\n"))
    assert header(ack, "Subject") == "[Issue #1] Help Bcc: victim@x.test X-Evil: 1"


async def test_updates_make_a_copied_customer_a_user_and_a_team_seat(helpdesk: Desk) -> None:
    raw, first_id = mail("ann@cust.test", "Printer on fire", headers={"Cc": "cid@cust.test"})
    await helpdesk.send(raw, "ann@cust.test")
    await helpdesk.relay.wait_for(1)  # the acknowledgement, to Ann only
    # The agent answers through the desk: Ann and Cid (on the conversation) get updates.
    answer, _ = mail(
        "pat@initech.test",
        "Re: Printer on fire",
        headers={"In-Reply-To": f"<{first_id}>"},
        body="Have you tried turning it off?",
    )
    await helpdesk.send(answer, "pat@initech.test")
    caught = await helpdesk.relay.wait_for(3)
    updates = sorted(caught[1:], key=lambda c: c.rcpt_tos)
    assert [u.rcpt_tos for u in updates] == [("ann@cust.test",), ("cid@cust.test",)]
    for update in updates:
        assert header(update, "Auto-Submitted") == "auto-generated"
        assert header(update, "Subject") == "[Issue #1] Printer on fire"
        assert "> Have you tried turning it off?" in update.message.get_content()

    with helpdesk.store.read() as session:
        users = {u["email"]: u for u in rows.users(session)}
        ledger = [(e["user"], e["model"], e["reason"]) for e in rows.ledger(session)]
        report = summary.report(session, helpdesk.org)
    assert users["cid@cust.test"]["origin"] == "notified"
    assert users["cid@cust.test"]["team_seat"] is True
    assert users["cid@cust.test"]["support_seat"] is False
    assert ("cid@cust.test", "team", "notified") in ledger
    # Team: pat (agent, logs in), ann (first email), cid (notified) = 3 x 8.00.
    assert report["team"]["seats"] == 3 and report["team"]["cost"] == 24.0
    assert report["team"]["seats_from_notifications"] == 1
    assert report["team"]["seats_without_notifications"] == 2
    assert report["team"]["cost_without_notifications"] == 16.0
    assert report["support"]["seats"] == 1
    assert report["notifications"]["customers_notified"] == 2
    assert "2 customer(s) receive automatic email updates" in report["reasons"][0]
    assert any("automatic email updates made 1 recipient(s) users" in r for r in report["reasons"])


async def test_ping_pong_between_two_auto_responders_stops_at_the_cap(tmp_path: Path) -> None:
    """Two badly behaved auto-responders (no Auto-Submitted, nothing) answer every update.

    Ann opened the issue with Bob on Cc. Each answer from one is an update to the
    other, for ever, but for the per-recipient cap (10 per 3 hours): Ann gets the
    acknowledgement and 9 updates, Bob 10 updates, and Bob's 10th answer finds Ann
    over her cap, so that update is suppressed and the game ends.
    """
    service: list[RunningService] = []

    async def auto_respond(caught: Caught) -> None:
        for rcpt in caught.rcpt_tos:
            answer, _ = mail(
                rcpt,
                f"Re: {header(caught, 'Subject')}",
                headers={"In-Reply-To": header(caught, "Message-ID")},
                body="Thank you for your message.",
            )
            await asyncio.to_thread(
                smtp_transaction, service[0].host, service[0].port, answer, rcpt, INTAKE
            )

    relay = CatcherHandler(respond=auto_respond)
    async with catcher(relay) as (_, port), desk(tmp_path, relay, port) as running:
        service.append(running.service)
        raw, _ = mail("ann@cust.test", "Printer on fire", headers={"Cc": "bob@cust.test"})
        await running.send(raw, "ann@cust.test")
        await running.settle()

        per_recipient: dict[str, int] = {}
        for caught in relay.caught:
            for rcpt in caught.rcpt_tos:
                per_recipient[rcpt] = per_recipient.get(rcpt, 0) + 1
        assert per_recipient == {"ann@cust.test": 10, "bob@cust.test": 10}
        suppressed = running.outbox("suppressed")
        assert [(r["recipient"], r["kind"]) for r in suppressed] == [("ann@cust.test", "update")]
        assert "per-recipient cap" in str(suppressed[0]["last_error"])
        assert len(running.outbox("sent")) == 20
        outcomes = [m["outcome"] for m in running.messages()]
        assert outcomes == ["created_issue"] + ["threaded"] * 20


async def test_relay_down_loses_nothing_and_intake_goes_on(tmp_path: Path) -> None:
    relay = CatcherHandler()
    async with catcher(relay) as (_, port):
        pass  # the port is now free again: the relay is down
    async with desk(tmp_path, relay, port) as running:
        for name in ("ann", "bob", "cid"):
            raw, _ = mail(f"{name}@cust.test", f"Problem of {name}")
            assert (await running.send(raw, f"{name}@cust.test"))[0] == 250
        assert running.service.outbox is not None
        assert await running.service.outbox.drain(10)  # each had a first, failed, try
        waiting = running.outbox("pending")
        assert len(waiting) == 3
        assert all(r["attempts"] >= 1 and "cannot connect" in str(r["last_error"]) for r in waiting)
        assert [m["outcome"] for m in running.messages()] == ["created_issue"] * 3

        async with catcher(relay, port):  # the relay is back, on the same port
            caught = await relay.wait_for(3)
            await running.settle()
        assert sorted(c.rcpt_tos[0] for c in caught) == [
            "ann@cust.test",
            "bob@cust.test",
            "cid@cust.test",
        ]
        sent = running.outbox("sent")
        assert len(sent) == 3 and all(int(str(r["attempts"])) >= 2 for r in sent)
        assert running.outbox("pending") == []


class RefusingRelay(CatcherHandler):
    """A relay that refuses every message for good."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "550 5.7.1 Not accepting mail for this address"


async def test_a_permanent_refusal_fails_at_once_and_does_not_retry(tmp_path: Path) -> None:
    relay = RefusingRelay()
    async with catcher(relay) as (_, port), desk(tmp_path, relay, port) as running:
        raw, _ = mail("ann@cust.test", "Printer on fire")
        assert (await running.send(raw, "ann@cust.test"))[0] == 250
        await running.settle()
        [row] = running.outbox()
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert str(row["last_error"]).startswith("550 5.7.1 Not accepting mail")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, dropped afterwards."""
    base = os.environ.get("INTAKE_SIM_TEST_PG")
    if not base:
        pytest.skip(
            "INTAKE_SIM_TEST_PG is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    schema = f"notify_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


async def test_outage_and_updates_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The outbox claims, retries and licensing queries on PostgreSQL, through an outage."""
    relay = CatcherHandler()
    async with catcher(relay) as (_, port):
        pass  # down
    async with desk(tmp_path, relay, port, pg_url) as running:
        raw, first_id = mail("ann@cust.test", "Printer", headers={"Cc": "cid@cust.test"})
        assert (await running.send(raw, "ann@cust.test"))[0] == 250
        answer, _ = mail("pat@initech.test", "Re", headers={"In-Reply-To": f"<{first_id}>"})
        assert (await running.send(answer, "pat@initech.test"))[0] == 250
        assert running.service.outbox is not None
        assert await running.service.outbox.drain(10)
        assert len(running.outbox("pending")) == 3
        async with catcher(relay, port):
            await relay.wait_for(3)
            await running.settle()
        assert [r["status"] for r in running.outbox()] == ["sent"] * 3
        with running.store.read() as session:
            report = summary.report(session, running.org)
    assert report["team"]["seats_from_notifications"] == 1
    assert report["notifications"]["customers_notified"] == 2
