"""Real listeners on free loopback ports, and a real SMTP client to talk to them."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.pipeline.parse import MimeLimits
from simulator.service import intake_service
from simulator.smtp.server import ListenerOptions
from simulator.store.db import Store


@dataclass
class Listener:
    host: str
    port: int
    store: Store
    org: Org

    async def send(
        self, raw: bytes, mail_from: str = "someone@customer.example", rcpt: str | None = None
    ) -> tuple[int, str]:
        """One SMTP transaction from a real client in a worker thread: (code, reply)."""
        return await asyncio.to_thread(
            smtp_transaction,
            self.host,
            self.port,
            raw,
            mail_from,
            rcpt or self.org.intake_addresses[0],
        )


def smtp_transaction(
    host: str, port: int, raw: bytes, mail_from: str, rcpt: str
) -> tuple[int, str]:
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.ehlo("tests.localhost")
        options = ["BODY=8BITMIME"] if any(b > 0x7F for b in raw) else []
        code, reply = client.mail(mail_from, options)
        assert code == 250, reply
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply.decode()
        code, reply = client.data(raw)
        return code, reply.decode()


@asynccontextmanager
async def running_listener(
    store: Store,
    org: Org,
    options: ListenerOptions | None = None,
    *,
    prepared: bool | None = None,
    mime_limits: MimeLimits | None = None,
) -> AsyncIterator[Listener]:
    """A listener on a free loopback port; prepares the store unless told whether it is."""
    if prepared is None:
        await asyncio.to_thread(prepare, store, org)
        prepared = True
    options = options or ListenerOptions(port=0)
    async with intake_service(
        store, org, options, mime_limits=mime_limits, prepared=prepared
    ) as service:
        yield Listener(service.host, service.port, store, org)


async def still_answers(listener: Listener) -> None:
    def noop() -> int:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            return client.noop()[0]

    assert await asyncio.to_thread(noop) == 250
