"""The SMTP conversation itself: extensions, recipients, size limit, foreign clients."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import subprocess

import pytest
from sqlalchemy import select

from simulator.pipeline.batch import prepare
from simulator.reports.rows import messages
from simulator.service import intake_service
from simulator.smtp.server import ListenerOptions
from simulator.store.db import open_store
from simulator.store.models import Delivery
from tests.support.listeners import Listener
from tests.support.mail import compose


def ehlo_features(host: str, port: int) -> dict[str, str]:
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("tests.localhost")
        return dict(client.esmtp_features)


def refused_recipient(host: str, port: int, rcpt: str) -> tuple[int, bytes]:
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("tests.localhost")
        client.mail("jo@customer.example")
        return client.rcpt(rcpt)


async def test_advertises_size_8bitmime_and_smtputf8(listener: Listener) -> None:
    features = await asyncio.to_thread(ehlo_features, listener.host, listener.port)
    assert features["size"] == str(10 * 1024 * 1024)
    assert "8bitmime" in features
    assert "smtputf8" in features


@pytest.mark.parametrize(
    ("rcpt", "code", "text"),
    [
        ("someone@elsewhere.example", 550, b"5.1.1"),  # never a relay
        ("SUPPORT@ACME.EXAMPLE", 250, b"2.1.5"),  # addresses compare case-insensitively
        ("not an address", 553, b"5.1.3"),
    ],
)
async def test_rcpt_only_to_intake_addresses(
    listener: Listener, rcpt: str, code: int, text: bytes
) -> None:
    got_code, reply = await asyncio.to_thread(refused_recipient, listener.host, listener.port, rcpt)
    assert got_code == code, reply
    assert reply.startswith(text)


async def test_oversize_mail_gets_552_and_nothing_is_stored(db_url: str, org) -> None:
    store = open_store(db_url)
    await asyncio.to_thread(prepare, store, org)
    options = ListenerOptions(port=0, max_message_size=2000)
    async with intake_service(store, org, options) as service:
        small = Listener(service.host, service.port, store, org)
        code, _ = await small.send(
            compose("jo@customer.example", body=("x" * 70 + "\r\n") * 80, to="support@acme.example")
        )
        assert code == 552
        code, _ = await small.send(compose("jo@customer.example", to="support@acme.example"))
        assert code == 250
    with store.sessions() as session:
        assert len(session.scalars(select(Delivery)).all()) == 1
    store.dispose()


async def test_utf8_envelope_and_headers(listener: Listener) -> None:
    raw = (
        "From: Zoë <zoë@bücher.example>\r\nTo: support@acme.example\r\n"
        "Subject: Grüße aus Köln\r\nMessage-ID: <utf8-1@bücher.example>\r\n\r\nHallo\r\n"
    ).encode()

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            client.ehlo("tests.localhost")
            client.mail("zoë@bücher.example", ["SMTPUTF8", "BODY=8BITMIME"])
            client.rcpt("support@acme.example")
            return client.data(raw)

    code, reply = await asyncio.to_thread(send)
    assert code == 250, reply
    with listener.store.sessions() as session:
        row = messages(session)[-1]
    assert row["outcome"] == "created_issue"
    assert row["subject"] == "Grüße aus Köln"
    assert row["sender"] == "zoë@xn--bcher-kva.example"


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
async def test_swaks_as_a_foreign_client(listener: Listener) -> None:
    """A client that is not ours: swaks speaks its own SMTP and reads our replies."""

    def run_swaks(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "swaks",
                "--server",
                f"{listener.host}:{listener.port}",
                "--to",
                "support@acme.example",
                "--from",
                "kim@customer.example",
                "--header",
                "Subject: Sent by swaks",
                "--body",
                "hello from swaks",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    first = await asyncio.to_thread(run_swaks, "--header", "Message-Id: <swaks-1@customer.example>")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "250 2.0.0 Accepted as delivery" in first.stdout
    reply = await asyncio.to_thread(
        run_swaks,
        "--header",
        "In-Reply-To: <swaks-1@customer.example>",
        "--header",
        "Message-Id: <swaks-2@customer.example>",
    )
    assert reply.returncode == 0, reply.stdout
    with listener.store.sessions() as session:
        rows = messages(session)
    assert [(r["outcome"], r["issue"]) for r in rows] == [("created_issue", 1), ("threaded", 1)]


async def test_unexpected_errors_answer_451_not_500(listener: Listener) -> None:
    from simulator.smtp.handler import IntakeHandler

    handler = IntakeHandler(listener.org, writer=None)  # type: ignore[arg-type]
    reply = await handler.handle_exception(RuntimeError("boom"))
    assert reply.startswith("451 4.3.0")


async def test_sessions_open_at_shutdown_get_451(db_url: str, org) -> None:
    store = open_store(db_url)
    await asyncio.to_thread(prepare, store, org)

    def open_session(port: int) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        client.ehlo("tests.localhost")
        client.mail("late@customer.example")
        client.rcpt("support@acme.example")
        return client

    async with intake_service(store, org, ListenerOptions(port=0)) as service:
        client = await asyncio.to_thread(open_session, service.port)
        await service.writer.close()
        code, reply = await asyncio.to_thread(
            client.data, compose("late@customer.example", to="support@acme.example")
        )
        client.close()
    assert code == 451, reply
    store.dispose()
