"""Storage outages: the listener answers 451, keeps answering, and resumes on its own.

SQLite locked by another connection, on a read-only file system, on a full
disk (small tmpfs); PostgreSQL unreachable (a closed port, then a forwarder
that is switched on and off) and its connections terminated while serving.
Mounts need root; without it those tests skip and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from simulator.org import Org
from simulator.reliability.listener import ListenerProcess
from simulator.smtp.client import SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.store.db import Store, open_store
from simulator.store.models import Delivery
from tests.support.listeners import running_listener, still_answers
from tests.support.mail import compose
from tests.support.tcpproxy import TcpProxy

INTAKE = "support@acme.example"


def mail(tag: str, body: str = "Hello, something is broken.") -> bytes:
    return compose(f"{tag}@customer.example", tag, f"{tag}@outage.test", to=INTAKE, body=body)


def stored(store: Store, message_id: str) -> int:
    """Counted deliveries (not `duplicate`) with this Message-ID."""
    counted = (Delivery.message_id == message_id, Delivery.outcome != "duplicate")
    with store.sessions() as session:
        return session.scalar(select(func.count(Delivery.id)).where(*counted)) or 0


async def test_sqlite_locked_elsewhere(sqlite_url: str, org: Org) -> None:
    store = open_store(sqlite_url, busy_timeout_ms=200)
    async with running_listener(store, org) as listener:
        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            code, reply = await listener.send(mail("locked"))
            assert (code, reply[:5]) == (451, "4.3.0"), reply
            await still_answers(listener)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        code, reply = await listener.send(mail("locked"))  # the client's retry
        assert code == 250, reply
    assert stored(store, "locked@outage.test") == 1
    store.dispose()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path`, always unmounted afterwards; skips when mounting is denied."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


async def test_sqlite_read_only_file_system(tmp_path: Path, org: Org) -> None:
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        store = open_store(f"sqlite:///{mnt / 'intake.db'}")
        async with running_listener(store, org) as listener:
            store.dispose()  # no file open for writing, so the remount is allowed
            remount(mnt, "ro")
            try:
                code, reply = await listener.send(mail("readonly"))
                assert code == 451, reply
                await still_answers(listener)
            finally:
                remount(mnt, "rw")
            code, reply = await listener.send(mail("readonly"))
            assert code == 250, reply
        assert stored(store, "readonly@outage.test") == 1
        store.dispose()


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


async def test_sqlite_disk_full(tmp_path: Path, org: Org) -> None:
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        store = open_store(f"sqlite:///{mnt / 'intake.db'}")
        big = "x" * 900 + "\r\n"
        raw = mail("diskfull", body=big * 300)  # ~270 KB: needs new pages
        async with running_listener(store, org) as listener:
            code, reply = await listener.send(mail("before-full"))
            assert code == 250, reply
            filler = fill(mnt)
            try:
                code, reply = await listener.send(raw)
                assert code == 451, reply
                await still_answers(listener)
            finally:
                filler.unlink()
            code, reply = await listener.send(raw)
            assert code == 250, reply
        assert stored(store, "diskfull@outage.test") == 1
        store.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def deliver(client: SmtpClient, address: tuple[str, int], raw: bytes) -> int:
    message = MailFile("outage", raw, "pg@customer.example")
    reply = await asyncio.to_thread(client.attempt, address, message, INTAKE)
    return reply.code


async def until_accepted(client: SmtpClient, address: tuple[str, int], raw: bytes) -> list[int]:
    """Retry as a client would, a few times; returns every code seen."""
    codes = [await deliver(client, address, raw)]
    while codes[-1] != 250 and len(codes) < 5:
        await asyncio.sleep(0.2)
        codes.append(await deliver(client, address, raw))
    return codes


async def test_postgresql_unreachable_then_back(pg_url: str) -> None:
    """`serve` starts with PostgreSQL out of reach, answers 451, and stores once it is back."""
    url = make_url(pg_url)
    port = free_port()  # nothing listens here until the forwarder is switched on
    proxy = TcpProxy(port, (url.host or "127.0.0.1", url.port or 5432))
    server = ListenerProcess(url.set(port=port).render_as_string(hide_password=False))
    address = await asyncio.to_thread(server.start)
    client = SmtpClient(timeout=15)
    try:
        assert await deliver(client, address, mail("pg-down")) == 451
        await proxy.start()
        codes = await until_accepted(client, address, mail("pg-down"))
        assert codes[-1] == 250, codes
        await proxy.stop()
        assert await deliver(client, address, mail("pg-cut")) == 451
        assert server.running
        await proxy.start()
        codes = await until_accepted(client, address, mail("pg-cut"))
        assert codes[-1] == 250, codes
    finally:
        client.close()
        await asyncio.to_thread(server.stop)
        await proxy.stop()
    store = Store(pg_url, writer=False)
    assert stored(store, "pg-down@outage.test") == 1
    assert stored(store, "pg-cut@outage.test") == 1
    store.dispose()


async def test_postgresql_connections_terminated(pg_url: str, org: Org) -> None:
    store = open_store(pg_url)
    database = make_url(pg_url).database
    admin = sqlalchemy.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with running_listener(store, org) as listener:
        assert (await listener.send(mail("before-terminate")))[0] == 250
        with admin.connect() as connection:
            killed = connection.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
            ).scalar()
        assert killed and killed >= 1
        codes = [(await listener.send(mail("after-terminate")))[0] for _ in range(2)]
        assert codes[0] in (250, 451) and 250 in codes, codes
    admin.dispose()
    assert stored(store, "after-terminate@outage.test") == 1
    store.dispose()
