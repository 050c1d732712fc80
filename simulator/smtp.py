"""The SMTP listener: aiosmtpd speaks the protocol, the writer stores the mail.

The handler does SMTP and nothing else. RCPT is limited to the org's intake
addresses; DATA hands the bytes to the group-commit writer and answers 250
only once the delivery is committed, 451 when storage fails. `handle_exception`
makes sure no unexpected error ever reaches the client as aiosmtpd's bare 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession

from simulator import replies
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.outbox import OutboxSender, Relay, RetryPolicy
from simulator.parse import normalise_address
from simulator.writer import GroupCommitWriter, Submission

log = logging.getLogger("intake_sim.smtp")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2525
DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
# A fixed name: aiosmtpd would otherwise look up the machine's FQDN per session.
SERVER_HOSTNAME = "intake-sim.localhost"
IDLE_TIMEOUT_SECONDS = 300


class IntakeHandler:
    def __init__(self, org: Org, writer: GroupCommitWriter) -> None:
        self.org = org
        self.writer = writer
        self.accepted = 0

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        normalised = normalise_address(address)
        if normalised is None:
            return replies.S553_BAD_ADDRESS
        if not self.org.is_intake_address(normalised):
            return replies.S550_NO_SUCH_MAILBOX
        envelope.rcpt_tos.append(address)
        return replies.S250_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        item = Submission(
            raw=bytes(raw),
            envelope_from=envelope.mail_from,
            recipients=list(envelope.rcpt_tos),
            received_at=datetime.now(UTC),
        )
        try:
            result = await self.writer.submit(item)
        except StoreUnavailable as exc:
            log.warning("451 to %s: %s", session.peer, exc)
            return replies.S451_STORE_UNAVAILABLE
        self.accepted += 1
        log.info(result.log_line())
        return replies.S250_ACCEPTED.format(delivery_id=result.delivery_id)

    async def handle_exception(self, error: Exception) -> str:
        log.exception("unexpected error in an SMTP session", exc_info=error)
        return replies.S451_INTERNAL_ERROR


@dataclass(frozen=True)
class ListenerOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    idle_timeout: float = IDLE_TIMEOUT_SECONDS


@asynccontextmanager
async def smtp_listener(handler: Any, options: ListenerOptions) -> AsyncIterator[tuple[str, int]]:
    """Listen on host:port (0 picks a free port) and yield the bound address.

    aiosmtpd's Controller cannot report a port it did not choose, so we create
    the server ourselves and read the socket's real address.
    """
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=options.max_message_size or None,
            enable_SMTPUTF8=True,
            hostname=SERVER_HOSTNAME,
            ident="intake-sim ESMTP",
            timeout=options.idle_timeout,
            loop=loop,
        )

    server = await loop.create_server(protocol, options.host, options.port)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield host, port
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class RunningService:
    host: str
    port: int
    handler: IntakeHandler
    writer: GroupCommitWriter
    outbox: OutboxSender | None = None


@asynccontextmanager
async def intake_service(
    store: Any,
    org: Org,
    options: ListenerOptions,
    relay: Relay | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[RunningService]:
    """Writer plus listener, plus the outbox sender when there is a relay.

    On exit the listener stops first, then queued deliveries are written, then
    the sender finishes its round; unsent mail stays pending in the outbox.
    """
    outbox = OutboxSender(store, relay, retry) if relay is not None else None
    writer = GroupCommitWriter(store, org, on_queued=outbox.wake if outbox else None)
    await writer.start()
    if outbox is not None:
        await outbox.start()
    handler = IntakeHandler(org, writer)
    try:
        async with smtp_listener(handler, options) as (host, port):
            yield RunningService(host, port, handler, writer, outbox)
    finally:
        await writer.close()
        if outbox is not None:
            await outbox.close()
