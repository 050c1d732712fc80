"""The SMTP listener: aiosmtpd speaks the protocol, the writer stores the mail.

The handler does SMTP and nothing else. RCPT is limited to the org's intake
addresses (the listener never relays); DATA hands the bytes to the group-commit
writer and answers 250 only once the delivery is committed, 451 when storage
fails. `handle_exception` makes sure no unexpected error ever reaches the
client as aiosmtpd's bare 500.

Limits keep one client from pinning the listener: an idle timeout per command,
a total session timeout (a client dribbling bytes is cut off), a cap on
concurrent connections, on recipients per message and on the header section.
Each limit answers with its own reply line from `replies`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession

from simulator.delivery.spool import SpoolReceipt
from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.pipeline.parse import date_header, normalise_address
from simulator.smtp import replies
from simulator.smtp.chaos import NO_CHAOS, Chaos, Stage

log = logging.getLogger("intake_sim.smtp")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2525
DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
# A fixed name: aiosmtpd would otherwise look up the machine's FQDN per session.
SERVER_HOSTNAME = "intake-sim.localhost"
IDLE_TIMEOUT_SECONDS = 300
SESSION_TIMEOUT_SECONDS = 1800
MAX_CONNECTIONS = 100
# RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients per message.
MAX_RECIPIENTS = 100
MAX_HEADERS = 1000
MAX_HEADER_SIZE = 512 * 1024
NO_LIMIT_SECONDS = 10.0**9


@dataclass(frozen=True)
class ListenerOptions:
    """Where to listen and the per-session limits; 0 turns a limit off."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    session_timeout: float = SESSION_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS
    max_recipients: int = MAX_RECIPIENTS
    max_headers: int = MAX_HEADERS
    max_header_size: int = MAX_HEADER_SIZE
    chaos: Chaos = field(default=NO_CHAOS, compare=False)
    # Replaying dated traffic (`simulate`): take the receive time from the Date header.
    use_date_header: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def header_section(raw: bytes) -> tuple[int, int]:
    """(number of header fields, size in bytes of the header section) of raw mail."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0, 0  # an empty header section: the rest is body
    ends = [at for at in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if at >= 0]
    head = raw[: min(ends)] if ends else raw
    fields = sum(1 for line in head.splitlines() if line and line[:1] not in (b" ", b"\t"))
    return fields, len(head)


class IntakeHandler:
    def __init__(
        self, org: Org, writer: GroupCommitWriter, options: ListenerOptions | None = None
    ) -> None:
        self.org = org
        self.writer = writer
        self.options = options or ListenerOptions()
        self.accepted = 0

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        fault = self.options.chaos.fault(Stage.MAIL)
        if fault is not None:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.S250_SENDER_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fault = self.options.chaos.fault(Stage.RCPT)
        if fault is not None:
            return fault
        limit = self.options.max_recipients
        if limit and len(envelope.rcpt_tos) >= limit:
            return replies.S452_TOO_MANY_RECIPIENTS
        normalised = normalise_address(address)
        if normalised is None:
            return replies.S553_BAD_ADDRESS
        if not self.org.is_intake_address(normalised):
            return replies.S550_NO_SUCH_MAILBOX
        envelope.rcpt_tos.append(address)
        return replies.S250_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        refusal = self.options.chaos.fault(Stage.DATA) or self._header_refusal(raw)
        if refusal is not None:
            log.info("%s to %s", refusal[:3], session.peer)
            return refusal
        item = Submission(
            raw=raw,
            envelope_from=envelope.mail_from,
            recipients=list(envelope.rcpt_tos),
            received_at=self._receive_time(bytes(raw)),
        )
        try:
            result = await self.writer.submit(item)
        except StoreUnavailable as exc:
            log.warning("451 to %s: %s", session.peer, exc)
            return replies.S451_STORE_UNAVAILABLE
        self.accepted += 1
        if isinstance(result, SpoolReceipt):
            # The processor logs the delivery line; one more line here would double the cost.
            log.debug(result.log_line())
            return replies.S250_SPOOLED.format(spool_id=result.spool_id)
        log.info(result.log_line())
        return replies.S250_ACCEPTED.format(delivery_id=result.delivery_id)

    def _receive_time(self, raw: bytes) -> datetime:
        dated = date_header(raw) if self.options.use_date_header else None
        return dated or datetime.now(UTC)

    def _header_refusal(self, raw: bytes) -> str | None:
        fields, size = header_section(raw)
        if self.options.max_header_size and size > self.options.max_header_size:
            return replies.S552_HEADER_TOO_LARGE
        if self.options.max_headers and fields > self.options.max_headers:
            return replies.S552_TOO_MANY_HEADERS
        return None

    async def handle_exception(self, error: Exception) -> str:
        log.exception("unexpected error in an SMTP session", exc_info=error)
        return replies.S451_INTERNAL_ERROR


class ConnectionGate:
    """Counts open sessions of one listener against `max_connections`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def admit(self) -> bool:
        if self.limit and self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP plus the connection cap, the session timeout and 421 replies.

    A refused connection gets its 421 (or injected fault) as the greeting and is
    closed before aiosmtpd starts a session for it.
    """

    def __init__(self, handler: Any, options: ListenerOptions, gate: ConnectionGate, **kw: Any):
        # aiosmtpd needs some timeout; "no limit" becomes a very long one.
        super().__init__(handler, timeout=options.idle_timeout or NO_LIMIT_SECONDS, **kw)
        self._options = options
        self._gate = gate
        self._admitted = False
        self._session_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted:  # STARTTLS re-entry; not offered, but keep aiosmtpd's path intact
            super().connection_made(transport)
            return
        refusal = self._options.chaos.fault(Stage.CONNECT)
        if refusal is None and not self._gate.admit():
            refusal = replies.S421_TOO_MANY_CONNECTIONS
        if refusal is not None:
            log.info("%s to %s", refusal[:3], transport.get_extra_info("peername"))
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode() + b"\r\n")
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        if self._options.session_timeout:
            self._session_timer = self.loop.call_later(
                self._options.session_timeout, self._close_with, replies.S421_SESSION_TIMEOUT
            )

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.leave()
        if self._session_timer is not None:
            self._session_timer.cancel()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        return super().eof_received() if self._admitted else False

    def _timeout_cb(self) -> None:
        self._close_with(replies.S421_IDLE_TIMEOUT)

    def _close_with(self, reply: str) -> None:
        if self.transport is None:
            return
        log.info("%s to %s", reply, self.session.peer if self.session else "?")
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(reply.encode() + b"\r\n")
        self.transport.close()


@asynccontextmanager
async def smtp_listener(handler: Any, options: ListenerOptions) -> AsyncIterator[tuple[str, int]]:
    """Listen on host:port (0 picks a free port) and yield the bound address.

    aiosmtpd's Controller cannot report a port it did not choose, so we create
    the server ourselves and read the socket's real address.
    """
    loop = asyncio.get_running_loop()
    gate = ConnectionGate(options.max_connections)

    def protocol() -> SMTP:
        return IntakeSMTP(
            handler,
            options,
            gate,
            data_size_limit=options.max_message_size or None,
            enable_SMTPUTF8=True,
            hostname=SERVER_HOSTNAME,
            ident="intake-sim ESMTP",
            loop=loop,
        )

    if not is_loopback(options.host):
        log.warning(
            "listening on %s, which is not a loopback address: anyone who can reach it "
            "can deliver mail into this database",
            options.host,
        )
    server = await loop.create_server(protocol, options.host, options.port)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield host, port
    finally:
        server.close()
        await server.wait_closed()
