"""Session limits answer with their own reply and never stop other clients being served."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from simulator.org import Org
from simulator.pipeline.parse import MimeLimits
from simulator.smtp import replies
from simulator.smtp.handler import header_section
from simulator.smtp.server import ListenerOptions, is_loopback
from simulator.store.db import open_store
from simulator.store.models import Delivery
from tests.support.listeners import Listener, running_listener
from tests.support.mail import compose, deep_multipart
from tests.support.processes import intake_sim, smtp_port_in

INTAKE = "support@acme.example"


@asynccontextmanager
async def limited(
    db_url: str, org: Org, mime_limits: MimeLimits | None = None, **limits: float
) -> AsyncIterator[Listener]:
    store = open_store(db_url)
    options = ListenerOptions(port=0, **limits)  # type: ignore[arg-type]
    async with running_listener(store, org, options, mime_limits=mime_limits) as listener:
        yield listener
    store.dispose()


def greet(listener: Listener) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((listener.host, listener.port), timeout=10)
    return sock, sock.makefile("rb").readline()


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_idle_timeout_answers_421(db_url: str, org: Org) -> None:
    async with limited(db_url, org, idle_timeout=0.3) as listener:

        def idle() -> bytes:
            sock, greeting = greet(listener)
            assert greeting.startswith(b"220")
            with sock:
                return read_all(sock)

        assert (await asyncio.to_thread(idle)).decode().strip() == replies.S421_IDLE_TIMEOUT


async def test_slowloris_is_cut_off_and_others_are_served(db_url: str, org: Org) -> None:
    """Clients dribbling a byte at a time never finish a command, so only the total
    session timeout can end them; meanwhile a normal client delivers."""
    async with limited(db_url, org, session_timeout=1.0, idle_timeout=60) as listener:

        def dribble() -> tuple[float, bytes]:
            started = time.monotonic()
            sock, _ = greet(listener)
            received = b""
            with sock:
                try:
                    for byte in b"EHLO " + b"x" * 200:
                        sock.sendall(bytes([byte]))
                        time.sleep(0.05)
                except OSError:
                    pass  # closed by the server: what we are waiting for
                sock.settimeout(5)
                with suppress(OSError):
                    received = read_all(sock)
            return time.monotonic() - started, received

        slow = [asyncio.to_thread(dribble) for _ in range(3)]
        await asyncio.sleep(0.2)
        code, reply = await listener.send(compose("busy@customer.example", to=INTAKE))
        assert code == 250, reply
        for elapsed, received in await asyncio.gather(*slow):
            assert elapsed < 6, elapsed  # 200 bytes at 0.05 s would take 10 s
            assert replies.S421_SESSION_TIMEOUT.encode() in received


async def test_too_many_connections(db_url: str, org: Org) -> None:
    async with limited(db_url, org, max_connections=2) as listener:

        def crowd() -> tuple[bytes, bytes]:
            first, second = greet(listener), greet(listener)
            third_sock, third = greet(listener)
            third_sock.close()
            first[0].close()
            time.sleep(0.2)  # the server notices the hang-up
            fourth_sock, fourth = greet(listener)
            fourth_sock.close()
            second[0].close()
            return third, fourth

        third, fourth = await asyncio.to_thread(crowd)
        assert third.decode().strip() == replies.S421_TOO_MANY_CONNECTIONS
        assert fourth.startswith(b"220")


async def test_too_many_recipients_and_no_relay(db_url: str, org: Org) -> None:
    async with limited(db_url, org, max_recipients=2) as listener:

        def envelope() -> list[tuple[int, bytes]]:
            with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
                client.ehlo("tests.localhost")
                client.mail("someone@customer.example")
                return [
                    client.rcpt("someone@elsewhere.example"),  # relaying: never
                    client.rcpt(INTAKE),
                    client.rcpt(INTAKE.upper()),
                    client.rcpt(INTAKE),
                ]

        codes = await asyncio.to_thread(envelope)
        assert [code for code, _ in codes] == [550, 250, 250, 452]
        assert codes[0][1].decode() == replies.S550_NO_SUCH_MAILBOX[4:]
        assert codes[3][1].decode() == replies.S452_TOO_MANY_RECIPIENTS[4:]


async def test_header_limits_answer_552(db_url: str, org: Org) -> None:
    many = {f"X-Filler-{n}": "v" for n in range(20)}
    wide = {"X-Wide": "w" * 900, "X-Wide-2": "w" * 900}
    async with limited(db_url, org, max_headers=15, max_header_size=1500) as listener:
        code, reply = await listener.send(compose("a@customer.example", headers=many))
        assert (code, reply) == (552, replies.S552_TOO_MANY_HEADERS[4:])
        code, reply = await listener.send(compose("b@customer.example", headers=wide))
        assert (code, reply) == (552, replies.S552_HEADER_TOO_LARGE[4:])
        code, reply = await listener.send(compose("c@customer.example", to=INTAKE))
        assert code == 250, reply


def test_header_section_counts_fields_not_folded_lines() -> None:
    raw = b"From: a@b.example\r\nSubject: one\r\n two\r\n\tthree\r\n\r\nBody: no\r\n"
    assert header_section(raw) == (2, raw.index(b"\r\n\r\n"))
    assert header_section(b"From: a@b\nX: y\n\nbody") == (2, len(b"From: a@b\nX: y"))
    assert header_section(b"\r\nFrom: body, not a field\r\n\r\n") == (0, 0)


HEADER_BITS = [b"From: a", b"X:", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"x"]


@given(st.binary(max_size=60) | st.lists(st.sampled_from(HEADER_BITS)).map(b"".join))
def test_header_section_counts_the_lines_that_begin_a_field(raw: bytes) -> None:
    """The count is that of the lines (cut as bytes.splitlines cuts them) of the header
    section that are neither empty nor begun with a space or a tab."""
    _, size = header_section(raw)
    head = b"" if raw.startswith((b"\r\n", b"\n")) else raw[:size]
    lines = [line for line in head.splitlines() if line and line[:1] not in (b" ", b"\t")]
    assert header_section(raw)[0] == len(lines)


def multipart(parts: int) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(parts))
    return (
        b"From: parts@customer.example\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body + b"--b--\r\n"
    )


async def test_mime_limits_quarantine_with_a_reason(db_url: str, org: Org) -> None:
    limits = MimeLimits(max_depth=3, max_parts=5)
    async with limited(db_url, org, mime_limits=limits) as listener:
        for raw in (deep_multipart(5), multipart(10), multipart(3)):
            code, reply = await listener.send(raw)
            assert code == 250, reply
        with listener.store.sessions() as session:
            rows = session.execute(select(Delivery.outcome, Delivery.reason)).all()
    assert [tuple(r) for r in rows] == [
        ("quarantined", "too_deep"),
        ("quarantined", "too_many_parts"),
        ("created_issue", None),
    ]


def part_with_headers(fields: int) -> bytes:
    """A two-part message whose first part has `fields` header fields."""
    head = b"Content-Type: text/plain\r\n" + b"".join(
        b"X-Part-%d: v\r\n" % n for n in range(fields - 1)
    )
    return (
        b"From: fields@customer.example\r\nSubject: fields %d\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        % fields
        + b"--b\r\n"
        + head
        + b"\r\npart\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
    )


def test_max_part_headers_option_quarantines_past_it(tmp_path: Path) -> None:
    """`serve --max-part-headers 5`: a part with 6 fields is quarantined, one with 5 is not,
    and both are acknowledged (the limit is the parser's, not the session's)."""
    db = f"sqlite:///{tmp_path / 'fields.db'}"
    args = ["serve", "--port", "0", "--max-part-headers", "5"]
    with (
        intake_sim(args, {"smtp": smtp_port_in}, db) as running,
        smtplib.SMTP("127.0.0.1", running.ports["smtp"], timeout=30) as client,
    ):
        for fields in (6, 5):
            refused = client.sendmail(
                "fields@customer.example", [INTAKE], part_with_headers(fields)
            )
            assert refused == {}, fields
    store = open_store(db)
    try:
        with store.sessions() as session:
            rows = session.execute(
                select(Delivery.subject, Delivery.outcome, Delivery.reason).order_by(Delivery.id)
            ).all()
    finally:
        store.dispose()
    assert [tuple(r) for r in rows] == [
        ("fields 6", "quarantined", "too_many_headers"),
        ("fields 5", "created_issue", None),
    ]


async def test_non_loopback_address_is_warned_about(
    org: Org, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 192.0.2.1 (TEST-NET-1, RFC 5737) is not on this machine: the warning is logged,
    # then binding fails, so nothing is ever exposed.
    store = open_store(db_url)
    with pytest.raises(OSError):
        async with running_listener(store, org, ListenerOptions(host="192.0.2.1", port=0)):
            pass
    store.dispose()
    assert any("not a loopback address" in r.getMessage() for r in caplog.records)


def test_loopback_detection() -> None:
    assert ListenerOptions().host == "127.0.0.1"
    assert all(map(is_loopback, ["127.0.0.1", "127.5.0.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.10", "example.com"]))


ATTACKER = "127.0.0.2"  # all of 127/8 is loopback on Linux: another client address


def connect_from(listener: Listener, source: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((listener.host, listener.port), 10, (source, 0))
    return sock, sock.makefile("rb").readline()


def dribble(sock: socket.socket, data: bytes, every: float) -> tuple[float, bytes]:
    """Send `data` a byte at a time until the server hangs up; (seconds, all it sent)."""
    started = time.monotonic()
    received = b""
    with sock:
        with suppress(OSError):  # closed by the server: what we are waiting for
            for byte in data:
                sock.sendall(bytes([byte]))
                time.sleep(every)
        with suppress(OSError):
            sock.settimeout(5)
            received = read_all(sock)
    return time.monotonic() - started, received


async def test_one_address_cannot_take_every_connection(db_url: str, org: Org) -> None:
    """Past --max-connections-per-client, one address is refused (421) while the
    listener still has room, and another client still gets in and delivers."""
    async with limited(db_url, org, max_connections=10, max_connections_per_client=3) as listener:

        def crowd() -> list[bytes]:
            held = [connect_from(listener, ATTACKER) for _ in range(5)]
            for sock, _ in held:
                sock.close()
            return [greeting for _, greeting in held]

        greetings = await asyncio.to_thread(crowd)
        assert [g[:3] for g in greetings] == [b"220"] * 3 + [b"421"] * 2
        assert greetings[3].decode().strip() == replies.S421_TOO_MANY_FROM_CLIENT


async def test_dribbled_command_and_data_are_cut_off_by_their_deadlines(
    db_url: str, org: Org
) -> None:
    """A byte every 50 ms resets no per-byte timer: a command line must be complete
    within --command-timeout of its first byte, and DATA within --data-timeout of its
    354, however busy the client looks. Meanwhile an honest client is served."""
    limits = {"idle_timeout": 60, "session_timeout": 60, "command_timeout": 0.5}
    async with limited(db_url, org, data_timeout=1.0, **limits) as listener:

        def slow_command() -> tuple[float, bytes]:
            sock, _ = connect_from(listener, ATTACKER)
            return dribble(sock, b"EHLO " + b"x" * 200, 0.05)

        def slow_data() -> tuple[float, bytes]:
            sock, _ = connect_from(listener, ATTACKER)
            envelope = f"HELO a\r\nMAIL FROM:<a@customer.example>\r\nRCPT TO:<{INTAKE}>\r\nDATA\r\n"
            sock.sendall(envelope.encode())
            time.sleep(0.2)
            return dribble(sock, b"Subject: slow\r\n\r\n" + b"x\r\n" * 100, 0.05)

        slow = [asyncio.to_thread(slow_command), asyncio.to_thread(slow_data)]
        await asyncio.sleep(0.2)
        code, reply = await listener.send(compose("busy@customer.example", to=INTAKE))
        assert code == 250, reply
        (command_seconds, command_sent), (data_seconds, data_sent) = await asyncio.gather(*slow)
        assert command_seconds < 3, command_seconds  # the dribble alone takes 10 s
        assert replies.S421_COMMAND_TIMEOUT.encode() in command_sent
        assert data_seconds < 4, data_seconds  # 5 s to dribble
        assert replies.S421_DATA_TIMEOUT.encode() in data_sent


def refusal_times(sock: socket.socket, commands: int) -> list[tuple[float, bytes]]:
    """Send bad MAIL commands one at a time; (seconds, reply) for each until closed."""
    lines = sock.makefile("rb")
    sock.sendall(b"EHLO client.example\r\n")
    while not lines.readline().startswith(b"250 "):
        pass
    answers = []
    for _ in range(commands):
        started = time.monotonic()
        sock.sendall(b"MAIL FROM:nonsense\r\n")
        reply = lines.readline()
        answers.append((time.monotonic() - started, reply))
        if not reply or reply.startswith(b"421"):
            break
    return answers


async def test_repeated_refusals_are_slowed_then_cut_off(db_url: str, org: Org) -> None:
    """Past the soft error limit a client's refusals wait, across its connections;
    past the hard limit it gets 421; another address is answered at once."""
    limits = {"error_soft_limit": 2, "error_hard_limit": 4, "error_sleep": 0.3}
    async with limited(db_url, org, **limits) as listener:

        def attack() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]]]:
            sock, _ = connect_from(listener, ATTACKER)
            with sock:
                first = refusal_times(sock, 10)
            sock, _ = connect_from(listener, ATTACKER)
            with sock:
                again = refusal_times(sock, 1)
            return first, again

        def honest() -> list[tuple[float, bytes]]:
            sock, _ = connect_from(listener, "127.0.0.1")
            with sock:
                return refusal_times(sock, 2)

        first, again = await asyncio.to_thread(attack)
        fair = await asyncio.to_thread(honest)
    assert [r[:3] for _, r in first] == [b"553"] * 4 + [b"421"]
    assert first[-1][1].decode().strip() == replies.S421_TOO_MANY_ERRORS
    assert all(t < 0.2 for t, _ in first[:2])
    assert all(t >= 0.3 for t, _ in first[2:4])
    assert again[0][0] >= 0.3  # reconnecting does not reset the count
    assert [r[:3] for _, r in fair] == [b"553"] * 2
    assert all(t < 0.2 for t, _ in fair)
