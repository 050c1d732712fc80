"""Hostile input never stops the listener, and every accepted delivery is recorded."""

from __future__ import annotations

import asyncio
import socket

from sqlalchemy import func, select

from simulator.smtp import replies
from simulator.store.models import Delivery
from tests.support.listeners import Listener
from tests.support.mail import compose, deep_multipart

HOSTILE: dict[str, bytes] = {
    "no headers": b"just some words, no header at all\r\n",
    "garbage encodings": (
        b"From: =?x-unknown?q?=FF=FE?= <weird@customer.example>\r\n"
        b"Subject: =?utf-8?b?!!!not-base64?= \xff\xfe\xc3\x28\r\n"
        b"Content-Type: text/plain; charset=klingon\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n%%%not base64%%%\r\n"
    ),
    "NUL bytes": b"From: nul@customer.example\r\nSubject: a\x00b\r\n\r\nbody\x00with\x00nul\r\n",
    "10,000 headers": b"From: many@customer.example\r\n"
    + b"".join(b"X-Filler-%d: value\r\n" % n for n in range(10_000))
    + b"Subject: many\r\n\r\nbody\r\n",
    "3,000-deep multipart": deep_multipart(3000),
    "long line": b"From: long@customer.example\r\nSubject: long\r\n\r\n" + b"x" * 5000 + b"\r\n",
    "bare LF": b"From: lf@customer.example\nSubject: bare LF\n\nline one\nline two\n",
    "two From addresses": (
        b"From: first@customer.example, second@customer.example\r\nSubject: two\r\n\r\nhi\r\n"
    ),
    # Longer than the users.email and users.name columns: PostgreSQL would refuse the row.
    "over-long address and name": (
        b'From: "' + b"N" * 300 + b'" <' + b"a" * 400 + b"@customer.example>\r\n"
        b"Subject: long address\r\n\r\nhi\r\n"
    ),
    "binary junk": b"\r\n".join(bytes(range(256))[i : i + 64] for i in range(0, 256, 64)) * 8,
}
# RFC 5321 4.5.3.1.6 caps a line at 1,000 octets; aiosmtpd answers 500 after DATA.
# More header fields than --max-headers (default 1,000) get 552 5.3.4.
REFUSED = {"long line": 500, "10,000 headers": 552}


async def test_hostile_input_is_recorded_and_listener_survives(listener: Listener) -> None:
    accepted = 0
    for name, raw in HOSTILE.items():
        code, reply = await listener.send(raw, mail_from="hostile@customer.example")
        assert code == REFUSED.get(name, 250), f"{name}: {code} {reply}"
        accepted += code == 250
    code, _ = await listener.send(compose("after@customer.example", to="support@acme.example"))
    assert code == 250
    with listener.store.sessions() as session:
        stored = session.scalar(select(func.count(Delivery.id)))
        outcomes = dict(session.execute(select(Delivery.sender, Delivery.outcome)).all())
    assert stored == accepted + 1
    assert outcomes["first@customer.example"] == "created_issue"
    assert outcomes["after@customer.example"] == "created_issue"


async def test_abrupt_disconnect_mid_data_stores_nothing(listener: Listener) -> None:
    def talk() -> None:
        with socket.create_connection((listener.host, listener.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            for command in (
                b"EHLO x\r\n",
                b"MAIL FROM:<a@customer.example>\r\n",
                b"RCPT TO:<support@acme.example>\r\n",
                b"DATA\r\n",
            ):
                sock.sendall(command)
                while reader.readline()[3:4] == b"-":
                    pass
            sock.sendall(b"From: a@customer.example\r\nSubject: cut\r\n\r\nhalf a mess")

    await asyncio.to_thread(talk)
    code, _ = await listener.send(compose("b@customer.example", to="support@acme.example"))
    assert code == 250
    with listener.store.sessions() as session:
        assert session.scalar(select(func.count(Delivery.id))) == 1


def envelope_replies(listener: Listener, commands: list[bytes]) -> list[bytes]:
    """Each command's reply line, sent as raw bytes on one session."""
    with socket.create_connection((listener.host, listener.port), timeout=10) as sock:
        reader = sock.makefile("rb")

        def reply() -> bytes:
            while (line := reader.readline())[3:4] == b"-":  # skip a multi-line reply's start
                pass
            return line.strip()

        reply()  # the greeting
        answers = []
        for command in [b"EHLO tests.localhost", *commands]:
            sock.sendall(command + b"\r\n")
            answers.append(reply())
        return answers[1:]


async def test_envelope_addresses_that_cannot_be_stored_are_refused(listener: Listener) -> None:
    """A byte that is not UTF-8, or a control character, in MAIL FROM or RCPT TO is refused
    at once (553), so it never reaches a batch; the same session then delivers normally."""
    intake = listener.org.intake_addresses[0].encode()
    raw = compose("after@customer.example", to="support@acme.example")
    answers = await asyncio.to_thread(
        envelope_replies,
        listener,
        [
            b"MAIL FROM:<\xff@evil.example>",
            b"MAIL FROM:<a\x01b@evil.example>",
            b"MAIL FROM:<@>",
            b"MAIL FROM:<>",
            b"RCPT TO:<\xff" + intake + b">",
            b"RCPT TO:<" + intake + b">",
            b"DATA",
            raw.rstrip(b"\r\n") + b"\r\n.",
        ],
    )
    codes = [answer[:3] for answer in answers]
    assert codes == [b"553", b"553", b"553", b"250", b"553", b"250", b"354", b"250"], answers
    assert answers[0].decode() == replies.S553_BAD_SENDER
    assert answers[4].decode() == replies.S553_BAD_ADDRESS
