"""`intake-sim ready`: the readiness check behind the compose healthcheck."""

from __future__ import annotations

import asyncio
import socket

from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.store import schema
from tests.support.listeners import Listener

runner = CliRunner()


async def ready(*args: str) -> tuple[int, str, str]:
    # In a thread: the listener under test runs on this test's event loop.
    result = await asyncio.to_thread(runner.invoke, app, ["ready", *args])
    return result.exit_code, result.stdout, result.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_ready_when_listener_greets_and_database_is_current(listener: Listener) -> None:
    code, out, err = await ready(
        "--host", listener.host, "--port", str(listener.port), "--db", listener.store.url
    )
    assert code == 0, err
    assert out.startswith(f"ready: smtp://{listener.host}:{listener.port} 220 ")
    assert f"database at schema {schema.head_revision()}" in out


async def test_not_ready_without_a_listener_or_with_an_empty_database(
    listener: Listener, tmp_path: object
) -> None:
    code, _, err = await ready("--port", str(closed_port()))
    assert code == 1
    assert err.startswith("Error: no SMTP listener at 127.0.0.1:")
    assert len(err.strip().splitlines()) == 1

    # The listener answers, but the named database is at no schema at all.
    empty = f"sqlite:///{tmp_path}/empty.db"
    code, _, err = await ready("--host", listener.host, "--port", str(listener.port), "--db", empty)
    assert code == 1
    assert err.strip().endswith("empty.db is empty: run `intake-sim db upgrade`")
