"""Shared fixtures: a real listener on a free loopback port over a real SQLite file."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtpd
import pytest
import sqlalchemy

from simulator.org import Org, load_org
from simulator.smtp import ListenerOptions, intake_service
from simulator.store.db import Store, open_store
from simulator.writer import prepare

ORGS = Path(__file__).parent / "orgs"


def pytest_report_header() -> list[str]:
    return [
        f"sqlite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"aiosmtpd {aiosmtpd.__version__}",
    ]


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


def org_file(name: str) -> Path:
    return ORGS / name


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intake.db'}"


@pytest.fixture
def org(request: pytest.FixtureRequest) -> Org:
    """The sample org, or the org file named by `@pytest.mark.org("file.toml")`."""
    marker = request.node.get_closest_marker("org")
    return load_org(org_file(marker.args[0]) if marker else None)


@pytest.fixture
async def listener(db_url: str, org: Org) -> AsyncIterator[Listener]:
    store = open_store(db_url)
    await asyncio.to_thread(prepare, store, org)
    async with intake_service(store, org, ListenerOptions(port=0)) as service:
        yield Listener(service.host, service.port, store, org)
    store.dispose()


def compose(
    sender: str,
    subject: str = "Help",
    message_id: str | None = None,
    *,
    to: str = "desk@globex.test",
    headers: dict[str, str] | None = None,
    body: str = "Hello, something is broken.",
) -> bytes:
    """A small RFC 5322 message with CRLF line endings."""
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Sat, 28 Nov 2026 10:00:00 +0000",
    ]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()
