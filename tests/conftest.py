"""Shared fixtures: a real listener on a free loopback port over a real database.

Every test that takes `db_url` (and so every `listener` test) runs twice: on a
fresh SQLite file, and on a fresh PostgreSQL database created for that test on
the server named by INTAKE_SIM_TEST_PG (skipped when it is unset).
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosmtpd
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from simulator.org import Org, load_org
from simulator.pipeline.batch import prepare
from simulator.pipeline.parse import MimeLimits
from simulator.service import intake_service
from simulator.smtp.server import ListenerOptions
from simulator.store.db import Store, open_store

ORGS = Path(__file__).parent / "orgs"
PG_ENV = "INTAKE_SIM_TEST_PG"
PG_SKIP = f"set {PG_ENV}=postgresql+psycopg://... to run the PostgreSQL suite"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not os.environ.get(PG_ENV), reason=PG_SKIP),
    ),
]


def pytest_report_header() -> list[str]:
    server = os.environ.get(PG_ENV)
    shown = make_url(server).render_as_string(hide_password=True) if server else PG_SKIP
    return [
        f"sqlite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"aiosmtpd {aiosmtpd.__version__}",
        f"PostgreSQL under test: {shown}",
    ]


def pg_admin() -> sqlalchemy.Engine:
    """An autocommit engine on the server of INTAKE_SIM_TEST_PG, for CREATE/DROP DATABASE."""
    return sqlalchemy.create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards (PostgreSQL) or left in tmp."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'intake.db'}"
        return
    name = f"intake_sim_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = pg_admin()
    try:
        with admin.connect() as connection:
            # template0: never connected to, so a CREATE elsewhere cannot make this one fail.
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        url = make_url(os.environ[PG_ENV]).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def backend_of(url: str) -> str:
    return make_url(url).get_backend_name()


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


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests about SQLite itself (its file lock, its file system)."""
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
