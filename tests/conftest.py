"""Shared fixtures: a real listener on a free loopback port over a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import smtplib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosmtpd
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from simulator.org import Org, load_org
from simulator.parse import MimeLimits
from simulator.smtp import ListenerOptions, intake_service
from simulator.store.db import Store, open_store
from simulator.writer import prepare

ORGS = Path(__file__).parent / "orgs"


def pytest_report_header() -> list[str]:
    return [
        f"sqlite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"aiosmtpd {aiosmtpd.__version__}",
        f"PostgreSQL under test: {os.environ.get('INTAKE_SIM_TEST_PG') or 'none'}",
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
    async with running_listener(store, org) as running:
        yield running
    store.dispose()


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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database of its own, dropped afterwards (INTAKE_SIM_TEST_PG)."""
    base = os.environ.get("INTAKE_SIM_TEST_PG")
    if not base:
        pytest.skip(
            "INTAKE_SIM_TEST_PG is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"
        )
    name = f"intake_sim_t_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


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
