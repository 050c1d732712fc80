"""The outbox sender (simulator/smtp/relay.py) against a real SMTP catcher: rows made
by the real pipeline are sent, retried after a back-off, or failed, and each attempt
is recorded on its row."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from simulator.domain import Submission
from simulator.errors import ConfigError
from simulator.org import Org, load_org
from simulator.pipeline.batch import ingest, prepare
from simulator.smtp.relay import OutboxSender, Relay, RetryPolicy, next_due_in, send_round, untried
from simulator.store.db import Store
from simulator.store.models import OutboxMessage
from tests.support.catcher import CatcherHandler, catcher
from tests.support.mail import compose
from tests.support.samples import org_file

HELP = "help@initech.test"
KIM = "kim@customer.example"
NOW_AND_AGAIN = RetryPolicy(first_delay=0.0, max_delay=0.0, max_attempts=3)


class RefusingHandler(CatcherHandler):
    """A relay that keeps what it gets but answers each DATA with `reply`."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        return self.reply


@pytest.fixture
def org() -> Org:
    return load_org(org_file("initech.toml"))  # acknowledges every new issue


@pytest.fixture
def store(tmp_path: Path, org: Org) -> Iterator[Store]:
    """A store whose outbox holds one pending acknowledgement, to Kim."""
    store = Store(f"sqlite:///{tmp_path / 'intake.db'}")
    prepare(store, org)
    raw = compose(KIM, "Printer on fire", "fire@customer.example", to=HELP)
    ingest(store, org, [Submission(raw, KIM, [HELP], datetime.now(UTC))])
    assert len(rows(store)) == 1
    yield store
    store.dispose()


def rows(store: Store) -> list[OutboxMessage]:
    with store.sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def the_row(store: Store) -> OutboxMessage:
    (row,) = rows(store)
    return row


def raw_of(store: Store) -> bytes:
    with store.sessions() as session:
        return session.scalars(select(OutboxMessage.raw)).one()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def one_round(store: Store, port: int, retry: RetryPolicy = NOW_AND_AGAIN) -> dict[str, int]:
    return await asyncio.to_thread(send_round, store, Relay("127.0.0.1", port), retry)


# --- sent ----------------------------------------------------------------------------


async def test_the_sender_task_delivers_a_pending_row(store: Store) -> None:
    handler = CatcherHandler()
    assert untried(store) == 1
    async with catcher(handler) as (host, port):
        sender = OutboxSender(store, Relay(host, port), poll=0.05)
        await sender.start()
        try:
            assert await sender.drain(10.0)
            [caught] = await handler.wait_for(1)
        finally:
            await sender.close()
    row = the_row(store)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at is not None
    # Automatic mail goes out with the null sender, so nothing ever answers it.
    assert (caught.mail_from, caught.rcpt_tos) == ("<>", (KIM,))
    assert HELP in caught.message["From"]
    assert caught.raw.replace(b"\r\n", b"\n") == raw_of(store).replace(b"\r\n", b"\n")
    assert caught.message["Subject"].startswith(f"[Issue #{row.issue_number}]")
    assert sender.totals == {"sent": 1}
    assert untried(store) == 0 and next_due_in(store, datetime.now(UTC)) is None


async def test_a_round_with_nothing_due_sends_nothing(store: Store) -> None:
    handler = CatcherHandler()
    async with catcher(handler) as (_, port):
        assert await one_round(store, port) == {"sent": 1}
        assert await one_round(store, port) == {}
    assert len(handler.caught) == 1  # a sent row is never sent again


# --- retried -------------------------------------------------------------------------


async def test_a_relay_that_is_down_leaves_the_row_pending_for_a_later_round(
    store: Store,
) -> None:
    backing_off = RetryPolicy(first_delay=1.0, max_delay=2.0, max_attempts=5)
    assert await one_round(store, closed_port(), backing_off) == {"pending": 1}
    row = the_row(store)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "cannot connect" in row.last_error
    wait = next_due_in(store, datetime.now(UTC))
    assert wait is not None and 0.0 < wait <= 1.0  # the back-off, not at once

    handler = CatcherHandler()
    async with catcher(handler) as (_, port):
        assert await one_round(store, port, backing_off) == {}  # not due yet
        assert handler.caught == []
        await asyncio.sleep(wait + 0.05)
        assert await one_round(store, port, backing_off) == {"sent": 1}
    row = the_row(store)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert len(handler.caught) == 1


async def test_a_temporary_refusal_is_tried_again(store: Store) -> None:
    handler = RefusingHandler("451 4.3.0 Try again later")
    async with catcher(handler) as (_, port):
        assert await one_round(store, port) == {"pending": 1}
        row = the_row(store)
        assert (row.status, row.attempts, row.last_error) == (
            "pending",
            1,
            "451 4.3.0 Try again later",
        )
        handler.reply = "250 2.0.0 caught"
        assert await one_round(store, port) == {"sent": 1}
    assert len(handler.caught) == 2  # the same mail, twice
    assert handler.caught[0].raw == handler.caught[1].raw
    assert (the_row(store).status, the_row(store).attempts) == ("sent", 2)


def test_the_back_off_doubles_up_to_its_bound() -> None:
    policy = RetryPolicy(first_delay=2.0, max_delay=10.0, max_attempts=9)
    assert [policy.delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.delay(0) == 2.0


# --- failed --------------------------------------------------------------------------


async def test_a_permanent_refusal_fails_the_row_at_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RefusingHandler("550 5.1.1 No such user here")
    async with catcher(handler) as (_, port):
        with caplog.at_level(logging.INFO, logger="intake_sim.outbox"):
            assert await one_round(store, port) == {"failed": 1}
        [refused] = [r for r in caplog.records if "outbox #" in r.getMessage()]
        assert refused.levelno == logging.WARNING  # a relay failure is a warning
        assert "failed (550 5.1.1 No such user here)" in refused.getMessage()
        assert await one_round(store, port) == {}  # never tried again
    row = the_row(store)
    assert (row.status, row.attempts, row.last_error) == (
        "failed",
        1,
        "550 5.1.1 No such user here",
    )
    assert row.sent_at is None
    assert len(handler.caught) == 1 and untried(store) == 0


async def test_temporary_refusals_fail_the_row_after_the_last_attempt(store: Store) -> None:
    handler = RefusingHandler("421 4.7.0 Too busy")
    async with catcher(handler) as (_, port):
        assert [await one_round(store, port) for _ in range(4)] == [
            {"pending": 1},
            {"pending": 1},
            {"failed": 1},  # NOW_AND_AGAIN allows 3 attempts
            {},
        ]
    row = the_row(store)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "421 4.7.0 Too busy")
    assert len(handler.caught) == 3


async def test_the_sender_task_survives_a_dead_relay_and_stops_cleanly(store: Store) -> None:
    sender = OutboxSender(store, Relay("127.0.0.1", closed_port()), NOW_AND_AGAIN, poll=0.05)
    await sender.start()
    deadline = time.monotonic() + 10
    while the_row(store).status == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await sender.close()
    row = the_row(store)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "cannot connect" in row.last_error
    assert sender.totals == {"pending": 2, "failed": 1}


# --- the relay address ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "relay"),
    [
        ("127.0.0.1:1025", Relay("127.0.0.1", 1025)),
        (" smtp.example:25 ", Relay("smtp.example", 25)),
        ("[::1]:2525", Relay("::1", 2525)),
    ],
)
def test_relay_addresses(text: str, relay: Relay) -> None:
    assert Relay.parse(text) == relay


@pytest.mark.parametrize("text", ["127.0.0.1", ":25", "host:0", "host:65536", "host:smtp", ""])
def test_bad_relay_addresses_are_one_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        Relay.parse(text)


# --- non-ASCII addresses -------------------------------------------------------------

JUERGEN = "jürgen@xn--bcher-kva.example"  # jürgen@bücher.example, as intake stores it


@pytest.fixture
def utf8_store(tmp_path: Path, org: Org) -> Iterator[Store]:
    """A store whose outbox holds one acknowledgement, to a non-ASCII address."""
    store = Store(f"sqlite:///{tmp_path / 'utf8.db'}")
    prepare(store, org)
    raw = compose("jürgen@bücher.example", "Drucker", "d@bucher.example", to=HELP)
    ingest(store, org, [Submission(raw, "jürgen@bücher.example", [HELP], datetime.now(UTC))])
    yield store
    store.dispose()


async def test_a_non_ascii_address_is_sent_with_smtputf8(utf8_store: Store) -> None:
    handler = CatcherHandler()
    row = the_row(utf8_store)
    assert (row.recipient, row.status) == (JUERGEN, "pending")
    async with catcher(handler) as (_, port):
        assert await one_round(utf8_store, port) == {"sent": 1}
        [caught] = await handler.wait_for(1)
    assert caught.rcpt_tos == (JUERGEN,)
    assert f"To: {JUERGEN}".encode() in caught.raw


async def test_without_smtputf8_the_row_is_suppressed_with_the_reason(utf8_store: Store) -> None:
    handler = CatcherHandler()
    async with catcher(handler, smtputf8=False) as (_, port):
        assert await one_round(utf8_store, port) == {"suppressed": 1}
    row = the_row(utf8_store)
    assert (row.status, row.last_error, row.attempts) == ("suppressed", "smtputf8_unsupported", 1)
    assert handler.caught == []
