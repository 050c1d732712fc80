"""The SMTP listener: aiosmtpd speaks the protocol, the writer stores the mail.

The handler that answers MAIL, RCPT and DATA is in smtp/handler.py; this module
binds the socket and holds the limits and the session around it.

Limits keep one client from pinning the listener: an idle timeout per command,
deadlines that run however many bytes arrive (one command line from its first
byte, one DATA from its 354, the whole session), a cap on concurrent connections
in all and per client address, on recipients per message and on the header
section. Each limit answers with its own reply line from `replies`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
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
# A quarter of the listener at most for one address, so that one client dribbling
# bytes on every connection it can open leaves the rest to everyone else.
MAX_CONNECTIONS_PER_CLIENT = 25
# From a command line's first byte to its end; an honest client sends one in a packet.
COMMAND_TIMEOUT_SECONDS = 60
# From the 354 to the final ".": RFC 5321 4.5.3.2.6 asks a server to wait 10 minutes.
DATA_TIMEOUT_SECONDS = 600
# What ends a message's data, as it arrives on the wire (RFC 5321 4.1.1.4).
END_OF_DATA = b"\r\n.\r\n"
# RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients per message.
MAX_RECIPIENTS = 100
MAX_HEADERS = 1000
MAX_HEADER_SIZE = 512 * 1024
NO_LIMIT_SECONDS = 10.0**9
# Client text in a log line: at most this many characters, control characters escaped.
LOGGED_TEXT_LIMIT = 200


def shown(text: str | None) -> str:
    """Client-supplied text as one safe log field: `-` when absent, never a raw control
    character (a forged newline or terminal escape must not forge or hide a log line)."""
    if not text:
        return "-"
    text = text[:LOGGED_TEXT_LIMIT]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def command_address(arg: str | None) -> str | None:
    """The address of a MAIL or RCPT argument (`FROM:<a@b> SIZE=1` -> `a@b`), as sent."""
    if not arg:
        return None
    value = arg.partition(":")[2].strip() if ":" in arg else arg.strip()
    if value.startswith("<") and ">" in value:
        return value[1 : value.index(">")]
    return value.split(" ", 1)[0]


def log_refusal(reply: str, peer: object, sender: str | None, recipient: str | None) -> None:
    """One line for every 4xx/5xx the listener sends: who was refused, and why.

    The reply line is part of the message template, so each kind of refusal has its
    own budget in logs.RepeatFilter: a flood of 550s is written five times a minute
    and counted, and does not hide a 451 that comes in the middle of it.
    """
    level = logging.WARNING if reply.startswith("451") else logging.INFO
    template = "refused " + reply.replace("%", "%%") + " peer=%s sender=%s recipient=%s"
    log.log(level, template, _peer(peer), shown(sender), shown(recipient))


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return shown(str(peer)) if peer else "?"


@dataclass(frozen=True)
class ListenerOptions:
    """Where to listen and the per-session limits; 0 turns a limit off."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    session_timeout: float = SESSION_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT
    command_timeout: float = COMMAND_TIMEOUT_SECONDS
    data_timeout: float = DATA_TIMEOUT_SECONDS
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
    """Counts open sessions of one listener, in all and per client address."""

    def __init__(self, limit: int, per_client: int = 0) -> None:
        self.limit = limit
        self.per_client = per_client
        self.open = 0
        self.by_client: Counter[str] = Counter()

    def admit(self, client: str) -> str | None:
        """None when the session may start, else the 421 line that refuses it."""
        if self.limit and self.open >= self.limit:
            return replies.S421_TOO_MANY_CONNECTIONS
        if self.per_client and self.by_client[client] >= self.per_client:
            return replies.S421_TOO_MANY_FROM_CLIENT
        self.open += 1
        self.by_client[client] += 1
        return None

    def leave(self, client: str) -> None:
        self.open -= 1
        self.by_client[client] -= 1
        if not self.by_client[client]:
            del self.by_client[client]


class Deadline:
    """One timer that closes the session with its 421 line; `start` keeps a running one."""

    def __init__(self, seconds: float, expire: Callable[[], None]) -> None:
        self.seconds, self.expire = seconds, expire
        self.handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.seconds and self.handle is None:
            self.handle = loop.call_later(self.seconds, self.expire)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class FairReader:
    """aiosmtpd's stream reader, giving the event loop a turn every `LINES_PER_TURN` reads.

    aiosmtpd reads DATA one line per await, and an await on bytes already buffered
    never yields: a 7 MB message of empty lines held the loop, and every other
    session's reply, for seconds. Everything but the reads goes to the reader itself.
    """

    LINES_PER_TURN = 256

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._inner = reader
        self._reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _turn(self) -> None:
        self._reads += 1
        if self._reads % self.LINES_PER_TURN == 0:
            await asyncio.sleep(0)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        await self._turn()
        return await self._inner.readuntil(separator)

    async def readline(self) -> bytes:
        await self._turn()
        return await self._inner.readline()

    async def read(self, n: int = -1) -> bytes:
        await self._turn()
        return await self._inner.read(n)


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
        self._client = ""
        self._session_timer: asyncio.TimerHandle | None = None
        self._line = Deadline(
            options.command_timeout, lambda: self._close_with(replies.S421_COMMAND_TIMEOUT)
        )
        self._data = Deadline(
            options.data_timeout, lambda: self._close_with(replies.S421_DATA_TIMEOUT)
        )
        # While DATA is read: the last bytes seen, to find END_OF_DATA across chunks.
        self._data_tail: bytes | None = None
        # While MAIL or RCPT runs: its address as sent, for the log line of a refusal.
        self._sender_arg: str | None = None
        self._recipient_arg: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted:  # STARTTLS re-entry; not offered, but keep aiosmtpd's path intact
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        refusal = self._options.chaos.fault(Stage.CONNECT) or self._gate.admit(self._client)
        if refusal is not None:
            log_refusal(refusal, transport.get_extra_info("peername"), None, None)
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

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        self._reader = FairReader(reader)  # type: ignore[assignment]

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.leave(self._client)
        if self._session_timer is not None:
            self._session_timer.cancel()
        self._line.stop()
        self._data.stop()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._watch(data)
            super().data_received(data)

    def _watch(self, data: bytes) -> None:
        """Run the deadlines on the bytes as they come, whole commands or not."""
        if self._data_tail is not None:
            seen = self._data_tail + data
            end = seen.find(END_OF_DATA)
            if end < 0:
                self._data_tail = seen[-len(END_OF_DATA) :]
                return
            self._data_over()
            data = seen[end + len(END_OF_DATA) :]  # pipelined commands after the message
        if b"\n" in data:
            self._line.stop()
            data = data[data.rindex(b"\n") + 1 :]
        if data:  # a command line has begun and is not complete yet
            self._line.start(self.loop)

    def _data_over(self) -> None:
        self._data_tail = None
        self._data.stop()

    async def push(self, status: Any) -> None:
        # Every reply goes through here, from our handler and from aiosmtpd itself (its
        # 552 for an oversized message, its 5xx for bad syntax): the one place that sees
        # every refusal. A 2xx or 3xx costs one comparison.
        if status[:1] in ("4", "5", b"4", b"5"):
            self._log_refusal(
                status if isinstance(status, str) else status.decode(errors="replace")
            )
        await super().push(status)

    def _log_refusal(self, reply: str) -> None:
        envelope = self.envelope
        sender = self._sender_arg or (envelope.mail_from if envelope else None)
        recipient = self._recipient_arg or (", ".join(envelope.rcpt_tos) if envelope else None)
        log_refusal(reply, self.session.peer if self.session else None, sender, recipient)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._sender_arg = command_address(arg)
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._sender_arg = None

    async def smtp_RCPT(self, arg: str | None) -> None:
        self._recipient_arg = command_address(arg)
        try:
            await super().smtp_RCPT(arg)
        finally:
            self._recipient_arg = None

    async def smtp_DATA(self, arg: str) -> None:
        # The message starts on a new line, so a first line of "." ends it too.
        self._line.stop()
        self._data_tail = b"\r\n"
        self._data.start(self.loop)
        # aiosmtpd clears the envelope before it sends DATA's reply: keep it for the log.
        if self.envelope is not None:
            self._sender_arg = self.envelope.mail_from
            self._recipient_arg = ", ".join(self.envelope.rcpt_tos)
        try:
            await super().smtp_DATA(arg)
        finally:
            self._data_over()
            self._sender_arg = self._recipient_arg = None

    def eof_received(self) -> bool | None:
        return super().eof_received() if self._admitted else False

    def _timeout_cb(self) -> None:
        self._close_with(replies.S421_IDLE_TIMEOUT)

    def _close_with(self, reply: str) -> None:
        if self.transport is None:
            return
        self._log_refusal(reply)
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
    gate = ConnectionGate(options.max_connections, options.max_connections_per_client)

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
