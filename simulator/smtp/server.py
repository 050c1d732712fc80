"""The SMTP listener: aiosmtpd speaks the protocol, the writer stores the mail.

The handler that answers MAIL, RCPT and DATA is in smtp/handler.py; this module
binds the socket and holds the limits and the session around it.

Limits keep one client from pinning the listener: an idle timeout per command,
deadlines that run however many bytes arrive (one command line from its first
byte, one DATA from its 354, the whole session), a cap on concurrent connections
in all and per client address, on recipients per message, on the header
section and on the message data all sessions hold at once. Each limit answers
with its own reply line from `replies`.

DATA is read here rather than by aiosmtpd (`IntakeSMTP._receive`): in blocks, so
that a message costs what its bytes cost, and within the memory budget. That and
the fair reader rely on aiosmtpd's private `_reader` and on StreamReader's
`_limit` and `_buffer`; an upgrade of either is checked by tests/smtp/test_data_memory.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP

# The limits' defaults live in simulator.defaults, where the command line reads them.
from simulator.defaults import (
    COMMAND_TIMEOUT_SECONDS,
    COST_ACTIVE_SECONDS,
    COST_ALLOWANCE_MS,
    COST_FACTOR,
    COST_RATIO,
    COST_SAMPLES,
    COST_WAIT_CAP_SECONDS,
    DATA_TIMEOUT_SECONDS,
    DEFAULT_HOST,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PORT,
    ERROR_HARD_LIMIT,
    ERROR_SOFT_LIMIT,
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_DATA_MEMORY,
    MAX_HEADER_SIZE,
    MAX_HEADERS,
    MAX_RECIPIENTS,
    SESSION_TIMEOUT_SECONDS,
)
from simulator.domain import DOT_ATOM, is_loopback
from simulator.smtp import replies
from simulator.smtp.chaos import NO_CHAOS, Chaos, Stage

log = logging.getLogger("intake_sim.smtp")

# A fixed name: aiosmtpd would otherwise look up the machine's FQDN per session.
SERVER_HOSTNAME = "intake-sim.localhost"
# What ends a message's data, as it arrives on the wire (RFC 5321 4.1.1.4).
END_OF_DATA = b"\r\n.\r\n"
NO_LIMIT_SECONDS = 10.0**9
# DATA is read in blocks of up to this many bytes, not a line per await.
DATA_BLOCK = 64 * 1024
# RFC 5321 4.5.3.1.6: a line is at most 1,000 octets with its CRLF; aiosmtpd took one
# byte more. Counted up to and including the LF.
MAX_LINE = 1001

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


_PLAIN_ANGLE_ADDRESS = re.compile(rf"<({DOT_ATOM}@{DOT_ATOM})>(.*)", re.DOTALL)


def plain_address(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a MAIL or RCPT argument of the plain form that nearly
    all clients send, `<local@domain>` and its parameters, exactly as aiosmtpd's
    `_getaddr` would return them; None for any other form, which aiosmtpd parses.

    aiosmtpd parses every address with the email package's header parser, and
    defines a typing Protocol class on each call: about 40 us an address, a third
    of what a do-nothing listener spends on a whole message. Excluded here, and
    left to it: comments and quoted strings, encoded words (`=?`), domain
    literals, source routes, the null sender, anything not ASCII."""
    found = _PLAIN_ANGLE_ADDRESS.fullmatch(arg)
    if found is None or "=?" in found[1]:
        return None
    rest = found[2]
    if rest[:1] in (" ", "\t"):
        rest = rest.lstrip()  # the parser's folding white space takes any white space
    if rest[:1] == "(":
        return None  # a comment after the address
    return found[1], rest


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
    max_data_memory: int = MAX_DATA_MEMORY
    # Message data read per second from one client address (0: as fast as it comes).
    max_client_rate: int = 0
    chaos: Chaos = field(default=NO_CHAOS, compare=False)
    # Replaying dated traffic (`simulate`): take the receive time from the Date header.
    use_date_header: bool = False
    # Advertise SMTPUTF8 (RFC 6531); off only to stand in for a relay without it.
    smtputf8: bool = True
    # Error tarpit, like Postfix's soft and hard error limits: past `error_soft_limit`
    # recent refusals from one client address, each further refusal waits
    # `error_sleep` seconds; past `error_hard_limit` in one session, 421 and close.
    error_soft_limit: int = ERROR_SOFT_LIMIT
    error_hard_limit: int = ERROR_HARD_LIMIT
    error_sleep: float = 1.0
    # Cost tarpit (ClientCosts): the typical cost (seconds of listener CPU) an address's
    # messages may have before it is dear, and how many times its cost each of a dear
    # address's replies after DATA then waits (0: off).
    cost_allowance: float = COST_ALLOWANCE_MS / 1000
    cost_factor: float = COST_FACTOR


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


class DataBudget:
    """Bytes of message data the sessions of one listener hold, in all and per client.

    A message's bytes are held from the first one read until its DATA reply: through
    the writer's queue and commit too. 100 concurrent 9 MB messages reached 1.5 GB
    before; past the budget a message is read to its end and dropped, with a 452.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.per_client = total // 4
        self.held = 0
        self.by_client: Counter[str] = Counter()

    def full(self, client: str) -> bool:
        if not self.total:
            return False
        return self.held >= self.total or self.by_client[client] >= self.per_client

    def take(self, client: str, size: int) -> bool:
        if self.total and (
            self.held + size > self.total or self.by_client[client] + size > self.per_client
        ):
            return False
        self.held += size
        self.by_client[client] += size
        return True

    def give_back(self, client: str, size: int) -> None:
        self.held -= size
        self.by_client[client] -= size
        if self.by_client[client] <= 0:
            del self.by_client[client]


class ClientRates:
    """A token bucket per client address for message data: a second's worth may come
    at once, and past it the listener stops reading from that address until the
    bucket refills, so TCP makes the client wait, not the other sessions."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # level, when

    def delay(self, client: str, size: int, now: float) -> float:
        """Take `size` bytes from the client's bucket; the seconds to wait before more."""
        if not self.rate:
            return 0.0
        level, then = self._buckets.get(client, (float(self.rate), now))
        level = min(float(self.rate), level + (now - then) * self.rate) - size
        self._buckets[client] = (level, now)
        if len(self._buckets) > 10_000:  # forget the full ones: memory stays bounded
            self._buckets = {c: b for c, b in self._buckets.items() if b[0] < 0}
        return max(0.0, -level / self.rate)


class ClientErrors:
    """Recent refusals per client address, across its connections, so that
    reconnecting does not reset the count; an address quiet for `window` seconds
    starts again from zero."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._counts: dict[str, tuple[int, float]] = {}  # count, last refusal

    def add(self, client: str, now: float) -> int:
        """Count one more refusal for `client`; its recent total."""
        count, then = self._counts.get(client, (0, now))
        count = 1 if now - then > self.window else count + 1
        self._counts[client] = (count, now)
        if len(self._counts) > 10_000:  # forget the quiet ones: memory stays bounded
            self._counts = {c: v for c, v in self._counts.items() if now - v[1] <= self.window}
        return count


class ClientCosts:
    """The cost tarpit: when each client address may next have a reply after DATA.

    A message's cost is the listener's CPU for it: reading its data and, with
    `--ack intake`, running it through intake. An address's typical cost is the
    median of its last COST_SAMPLES messages, so a slow message now and then (a
    large attachment, a garbage collection) does not move it; its first message
    alone is its typical cost, so that a dear one is held back from the first:
    one message may hold the writer for a while, and a second one would again. An address is dear
    when its typical cost is over both `allowance` and COST_RATIO times the
    typical cost of the cheapest address active in the last minute: what ordinary
    mail costs on this machine, now (a listener still warming up finds everything
    dear, and so nothing). Each message of a dear address moves that address's
    clock on by `factor` times its cost, and every reply after DATA to the
    address, on any of its connections, waits for the clock. The reply still comes
    only after the commit; the wait only spaces out the next message. So a dear
    address gets about 1/(1 + factor) of the listener however many connections it
    opens; an address alone, with no one to slow down, never waits.
    """

    def __init__(self, allowance: float, factor: float) -> None:
        self.allowance = allowance
        self.factor = factor
        self._recent: dict[str, deque[float]] = {}  # an address's last costs
        self._typical: dict[str, tuple[float, float]] = {}  # median of them, when
        self._due: dict[str, float] = {}  # loop time its next reply may go
        # The address whose typical cost was the lowest at the last look, once a second;
        # its typical cost now is what ordinary mail costs now, under today's load.
        self._cheapest: str | None = None
        self._looked_at = float("-inf")

    def wait(self, client: str, cost: float, now: float) -> float:
        """Charge `cost` CPU seconds to `client`; the seconds its reply must wait."""
        if not self.factor:
            return 0.0
        recent = self._recent.setdefault(client, deque(maxlen=COST_SAMPLES))
        recent.append(cost)
        due = self._due.get(client, now)
        if recent:
            typical = sorted(recent)[(len(recent) - 1) // 2]  # of two, the cheaper
            self._typical[client] = (typical, now)
            if typical > self._threshold(now):
                due = max(due, now) + cost * self.factor
                self._due[client] = due
        return min(max(0.0, due - now), COST_WAIT_CAP_SECONDS)

    def _threshold(self, now: float) -> float:
        """The typical cost above which an address is dear. Which address is the
        cheapest is looked for (and quiet addresses forgotten) at most once a second."""
        if now - self._looked_at >= 1.0:
            self._looked_at = now
            typical = self._typical
            quiet = [c for c, (_, seen) in typical.items() if now - seen > COST_ACTIVE_SECONDS]
            for client in quiet:
                del typical[client]
                self._recent.pop(client, None)
            self._due = {c: d for c, d in self._due.items() if d > now}
            self._cheapest = min(typical, key=lambda c: typical[c][0], default=None)
        ordinary = self._typical.get(self._cheapest or "", (float("inf"), now))[0]
        return max(self.allowance, COST_RATIO * ordinary)


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

    def __init__(
        self,
        handler: Any,
        options: ListenerOptions,
        gate: ConnectionGate,
        budget: DataBudget | None = None,
        rates: ClientRates | None = None,
        errors: ClientErrors | None = None,
        costs: ClientCosts | None = None,
        **kw: Any,
    ):
        # aiosmtpd needs some timeout; "no limit" becomes a very long one.
        super().__init__(handler, timeout=options.idle_timeout or NO_LIMIT_SECONDS, **kw)
        self._options = options
        self._gate = gate
        self._budget = budget or DataBudget(options.max_data_memory)
        self._rates = rates or ClientRates(options.max_client_rate)
        self._errors = errors or ClientErrors()
        self._costs = costs or ClientCosts(options.cost_allowance, options.cost_factor)
        self._session_errors = 0
        self._data_cost = 0.0  # CPU seconds the message being read has cost so far
        self._held = 0  # bytes of this session's message data counted in the budget
        self._line_run = 0  # bytes of the message's current line read so far
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
        self._release()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._data_tail is None:
            self._watch(data)
            super().data_received(data)
            return
        began = time.thread_time()  # while DATA is read, its bytes are its cost
        self._watch(data)
        super().data_received(data)
        self._data_cost += time.thread_time() - began

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
            reply = status if isinstance(status, str) else status.decode(errors="replace")
            # A 421 closes anyway, and a 451 is the store's trouble, not the client's.
            if not reply.startswith(("421", "451")) and not await self._tarpit_refusal():
                return
            self._log_refusal(reply)
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser, with `plain_address` as its fast path; (None, None),
        a malformed address, wherever that parser fails."""
        plain = plain_address(arg)
        if plain is None:
            try:
                return super()._getaddr(arg)
            except Exception:
                # The email package's parser breaks on some malformed addresses instead of
                # raising HeaderParseError (`<`: IndexError, `<0@[>`: AttributeError,
                # `<@[\t`: UnboundLocalError). Uncaught, each was a 451 "internal error"
                # with a traceback in the log, and a 451 does not count for the error tarpit.
                return None, None
        address, rest = plain
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def charge(self, seconds: float) -> None:
        """Add what the writer spent on the message being answered to its cost."""
        self._data_cost += seconds

    async def _cost_tarpit(self) -> None:
        """Wait as long as ClientCosts says before the reply to this message's data."""
        cost, self._data_cost = self._data_cost, 0.0
        delay = self._costs.wait(self._client, cost, self.loop.time())
        if delay > 0:
            await asyncio.sleep(delay)

    async def _tarpit_refusal(self) -> bool:
        """Count a refusal; sleep this session past the soft limit, and past the hard
        limit close it with 421 instead. False when the session was closed."""
        options = self._options
        self._session_errors += 1
        if options.error_hard_limit and self._session_errors > options.error_hard_limit:
            self._close_with(replies.S421_TOO_MANY_ERRORS)
            return False
        recent = self._errors.add(self._client, self.loop.time())
        if options.error_soft_limit and recent > options.error_soft_limit:
            await asyncio.sleep(options.error_sleep)
        return True

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
            await self._data_command(arg)
        finally:
            self._data_over()
            self._release()
            self._sender_arg = self._recipient_arg = None

    async def _data_command(self, arg: str) -> None:
        """aiosmtpd's DATA, with the data read in blocks and held within the budget."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        if self._budget.full(self._client):
            self._set_post_data_state()
            await self.push(replies.S452_DATA_MEMORY)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._data_cost = 0.0
        try:
            content, refusal = await self._receive()
        except asyncio.CancelledError:
            self._writer.close()  # the connection went during DATA
            raise
        except asyncio.IncompleteReadError:
            return  # the client left mid-message; connection_lost cleans up
        if refusal is not None:
            self._set_post_data_state()
            await self._cost_tarpit()
            await self.push(refusal)
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self._cost_tarpit()
        await self.push("250 OK" if status is MISSING else status)

    async def _receive(self) -> tuple[bytes, str | None]:
        """The message up to its lone-dot line, dot-unstuffed; or why it was dropped.

        Reads whatever the socket has, up to DATA_BLOCK at a time, so a message costs
        what its bytes cost rather than one await per line (a 7 MB message of empty
        lines was 2 million of them). Past a limit the rest is read and dropped.
        """
        stream = self._reader._inner if isinstance(self._reader, FairReader) else self._reader
        body = bytearray()
        self._line_run = 0
        tail = b"\r\n"  # the last bytes read: the DATA line's own CRLF to begin with
        refusal: str | None = None
        size_limit = self.data_size_limit
        received = 0
        line_limit = stream._limit
        stream._limit = max(line_limit, DATA_BLOCK)  # readuntil may look this far
        try:
            while True:
                chunk, done, started = await _next_block(stream, tail)
                began = time.thread_time()
                # Of the end line, only the CRLF that ends the last line is message.
                kept = chunk[: max(0, len(chunk) - 3)] if done else chunk
                if done and started > 2 and refusal is None:
                    del body[2 - started :]  # "." (and CR) of the end, kept a block ago
                received += len(kept)
                tail = (tail + chunk)[-4:]
                if refusal is None:
                    refusal = self._keep(body, kept, received, size_limit)
                self._data_cost += time.thread_time() - began
                if done:
                    break
                # A turn for the other sessions between blocks; longer past the rate.
                await asyncio.sleep(self._rates.delay(self._client, len(chunk), self.loop.time()))
        finally:
            stream._limit = line_limit
        if refusal is not None:
            return b"", refusal
        began = time.thread_time()
        content = bytes(body)
        del body
        # RFC 5321 4.5.2: a line's leading dot was added by the client; take it off.
        if content.startswith(b"."):
            content = content[1:]
        if b"\r\n." in content:
            content = content.replace(b"\r\n.", b"\r\n")
        self._data_cost += time.thread_time() - began
        return content, None

    def _keep(
        self, body: bytearray, kept: bytes, received: int, size_limit: int | None
    ) -> str | None:
        """Add `kept` to the message, or say why the message is dropped (and drop it)."""
        refusal = None
        if size_limit and received > size_limit:
            refusal = replies.S552_TOO_MUCH_DATA
        elif not self._budget.take(self._client, len(kept)):
            refusal = replies.S452_DATA_MEMORY
        else:
            self._held += len(kept)
            body.extend(kept)
            if self._too_long(kept):
                refusal = replies.S500_LINE_TOO_LONG
        if refusal is not None:
            body.clear()
            self._release()
        return refusal

    def _too_long(self, kept: bytes) -> bool:
        """Whether a line is over MAX_LINE, the line begun in an earlier block included."""
        first_end = kept.find(b"\n")
        if first_end < 0:
            self._line_run += len(kept)
            return self._line_run >= MAX_LINE
        first = self._line_run + first_end + 1
        self._line_run = len(kept) - kept.rfind(b"\n") - 1
        return first > MAX_LINE or _has_long_line(kept)

    def _release(self) -> None:
        if self._held:
            self._budget.give_back(self._client, self._held)
            self._held = 0

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


_END = b"\r\n.\r\n"


def _has_long_line(block: bytes) -> bool:
    """Whether `block` holds MAX_LINE bytes in a row without a LF.

    Each step looks at the next MAX_LINE bytes for their last LF: none means a
    line too long, and every line that starts before it ends by it, so the next
    step starts after it. About one step per thousand bytes, each a scan in C:
    splitting the block into lines cost 1 ms per 64 KB of empty lines (a million
    empty MIME parts were 120 ms of the event loop), and a scan per position was
    quadratic in a long line.
    """
    start, end = 0, len(block)
    while end - start >= MAX_LINE:
        last = block.rfind(b"\n", start, start + MAX_LINE)
        if last < 0:
            return True
        start = last + 1
    return False


async def _next_block(stream: asyncio.StreamReader, tail: bytes) -> tuple[bytes, bool, int]:
    """The next bytes of DATA, whether they end the end-of-data line, and how many
    bytes of that line `tail` already held.

    When the bytes read so far end in the start of `\r\n.\r\n` and the bytes
    waiting may be the rest of it, exactly the rest is read: never a byte past the
    end of the message, which may be followed by the client's next command. When
    the bytes waiting show it is not, the next block is read in bulk: every line
    ends in the start of the end, and reading a few bytes at a time after each
    block made 2 MB of short lines 650,000 reads (20 s of the event loop).
    """
    for started in range(len(_END) - 1, 0, -1):
        if tail.endswith(_END[:started]):
            rest = _END[started:]
            if rest.startswith(bytes(stream._buffer[: len(rest)])):
                chunk = await stream.readexactly(len(rest))
                return chunk, chunk == rest, started
            break  # no end goes on from what was read: a block in bulk
    try:
        return await stream.readuntil(_END), True, 0
    except asyncio.LimitOverrunError as exc:
        # No end within the limit: take what is buffered but the last 4 bytes, which
        # may hold the start of the end.
        return await stream.read(exc.consumed), False, 0


@asynccontextmanager
async def smtp_listener(handler: Any, options: ListenerOptions) -> AsyncIterator[tuple[str, int]]:
    """Listen on host:port (0 picks a free port) and yield the bound address.

    aiosmtpd's Controller cannot report a port it did not choose, so we create
    the server ourselves and read the socket's real address.
    """
    loop = asyncio.get_running_loop()
    gate = ConnectionGate(options.max_connections, options.max_connections_per_client)
    budget = DataBudget(options.max_data_memory)
    rates = ClientRates(options.max_client_rate)
    errors = ClientErrors()
    costs = ClientCosts(options.cost_allowance, options.cost_factor)

    def protocol() -> SMTP:
        return IntakeSMTP(
            handler,
            options,
            gate,
            budget,
            rates,
            errors,
            costs,
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
