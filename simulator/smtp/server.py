"""The SMTP listener: aiosmtpd speaks the protocol, the writer stores the mail.

The handler that answers MAIL, RCPT and DATA is in smtp/handler.py; this module
binds the socket and holds the limits and the session around it.

Limits keep one client from pinning the listener: an idle timeout per command,
a total session timeout (a client dribbling bytes is cut off), a cap on
concurrent connections, on recipients per message and on the header section.
Each limit answers with its own reply line from `replies`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP

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
    # Advertise SMTPUTF8 (RFC 6531); off only to stand in for a relay without it.
    smtputf8: bool = True


def check_bindable(host: str, port: int) -> None:
    """Raise OSError now if `host:port` cannot be listened on, so that a listener that
    could never start writes nothing first (its org's seat events, a schema upgrade).

    Port 0 always binds. SO_REUSEADDR as asyncio's own listener sets it, so a port in
    TIME_WAIT is not refused here when the listener would take it."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
            enable_SMTPUTF8=options.smtputf8,
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
