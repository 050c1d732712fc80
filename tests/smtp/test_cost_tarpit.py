"""The cost tarpit: a client address whose mail is dear waits for its replies after
DATA, on every connection; cheap mail, and an address alone, never wait."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from simulator.org import Org
from simulator.smtp.client import SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.smtp.server import ClientCosts, ListenerOptions
from simulator.store.db import open_store
from simulator.store.models import Delivery
from tests.support.listeners import Listener, running_listener
from tests.support.mail import compose

DEAR_ADDRESS = "127.0.0.2"  # all of 127/8 is loopback on Linux: another client address
CHEAP_ADDRESS = "127.0.0.1"
# A dear message's reply waits 30 times what it cost: a wait stands out as a reply
# slower by more than 5 times than one that did not wait, whatever the machine's speed
# (on a busy machine the same message's reply time varies by 3 times).
OPTIONS = {"cost_allowance": 0.001, "cost_factor": 30.0}
SLOWER = 5


def cheap(n: int) -> MailFile:
    raw = compose("cheap@customer.example", f"cheap {n}", f"cheap-{n}@customer.example")
    return MailFile("cheap", raw, "cheap@customer.example")


def dear(n: int) -> MailFile:
    # 3 MB of short lines: it costs the listener 10 to 20 times a short message,
    # reading it, parsing it and storing it (on PostgreSQL a short message's cost
    # includes its commit). At 1.5 MB, once plain mail was read more cheaply, it came
    # too near the COST_RATIO (4) times that makes an address dear.
    body = "x\r\n" * 1_000_000
    raw = compose("dear@customer.example", f"dear {n}", f"dear-{n}@customer.example", body=body)
    return MailFile("dear", raw, "dear@customer.example")


def reply_times(
    listener: Listener, source: str, mails: list[MailFile], connections: int = 1
) -> list[float]:
    """Send `mails` from `source`, spread over `connections`; seconds to each 250."""
    clients = [SmtpClient(timeout=60, source_address=source) for _ in range(connections)]
    address = (listener.host, listener.port)
    intake = listener.org.intake_addresses[0]
    times = []
    try:
        for n, mail in enumerate(mails):
            started = time.monotonic()
            result = clients[n % connections].attempt(address, mail, intake)
            assert result.code == 250, result.reply
            times.append(time.monotonic() - started)
    finally:
        for client in clients:
            client.close()
    return times


async def test_a_dear_address_waits_and_a_cheap_one_does_not(db_url: str, org: Org) -> None:
    store = open_store(db_url)
    options = ListenerOptions(port=0, **OPTIONS)  # type: ignore[arg-type]
    async with running_listener(store, org, options) as listener:
        # The cheap address sets what ordinary mail costs (the first ones warm up).
        await asyncio.to_thread(reply_times, listener, CHEAP_ADDRESS, [cheap(n) for n in range(10)])
        # One dear message among its cheap ones leaves it cheap: how long one takes.
        alone = await asyncio.to_thread(reply_times, listener, CHEAP_ADDRESS, [dear(0)])
        # Two connections: the wait is the address's, not one session's.
        dear_times = await asyncio.to_thread(
            reply_times, listener, DEAR_ADDRESS, [dear(n) for n in range(1, 4)], 2
        )
        cheap_times = await asyncio.to_thread(
            reply_times, listener, CHEAP_ADDRESS, [cheap(n) for n in range(5, 8)]
        )
    with store.read() as session:
        stored = session.scalar(select(func.count()).select_from(Delivery))
    store.dispose()
    assert stored == 17  # every 250, waited for or not, was for a committed delivery
    # From its first message on, the address is dear.
    judged = min(dear_times)
    assert judged > SLOWER * alone[0], (alone, dear_times)
    assert max(cheap_times) * SLOWER < judged, (cheap_times, dear_times)


async def test_an_address_alone_never_waits(db_url: str, org: Org) -> None:
    """With no cheaper mail to protect, dear mail is what ordinary mail costs."""
    store = open_store(db_url)
    options = ListenerOptions(port=0, **OPTIONS)  # type: ignore[arg-type]
    async with running_listener(store, org, options) as listener:
        times = await asyncio.to_thread(
            reply_times, listener, DEAR_ADDRESS, [dear(n) for n in range(5)]
        )
    store.dispose()
    assert max(times) < SLOWER * min(times), times


def test_the_typical_cost_is_a_median_judged_against_the_cheapest_address() -> None:
    costs = ClientCosts(allowance=0.003, factor=10)
    now = 100.0
    for _ in range(5):
        assert costs.wait("cheap", 0.001, now) == 0.0
    # One slow message does not make an address dear, nor its second of two.
    assert costs.wait("cheap", 0.5, now) == 0.0
    assert costs.wait("spiky", 0.001, now) == 0.0
    assert costs.wait("spiky", 0.5, now) == 0.0
    assert costs.wait("dear", 0.02, now) == pytest.approx(0.2)  # from the first: 10 x 20 ms
    assert costs.wait("dear", 0.02, now) == pytest.approx(0.4)  # the clock runs on
    # A cheap one still waits its turn (and the median is still dear: it pays too).
    assert costs.wait("dear", 0.0001, now + 0.1) == pytest.approx(0.301)
    assert costs.wait("cheap", 0.001, now + 0.1) == 0.0


def test_under_the_allowance_nothing_waits_and_factor_zero_is_off() -> None:
    costs = ClientCosts(allowance=0.003, factor=10)
    off = ClientCosts(allowance=0.0, factor=0)
    for n in range(10):
        assert costs.wait("cheap", 0.0001, float(n)) == 0.0
        assert costs.wait("under", 0.002, float(n)) == 0.0  # 20 times dearer, under 3 ms
        assert off.wait("cheap", 0.0001, float(n)) == 0.0
        assert off.wait("dear", 1.0, float(n)) == 0.0


def test_a_quiet_address_is_forgotten() -> None:
    costs = ClientCosts(allowance=0.0, factor=10)
    costs.wait("cheap", 0.001, 0.0)
    assert costs.wait("dear", 0.01, 0.0) > 0
    # A minute later the cheap address has gone quiet: nothing is cheaper than "dear".
    for _ in range(5):
        assert costs.wait("dear", 0.01, 1000.0) == 0.0
