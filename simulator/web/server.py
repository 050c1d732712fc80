"""The web server: uvicorn serving the app inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from simulator.errors import ConfigError


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def web_server(app: ASGIApp, host: str, port: int) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` on host:port (0 picks a free port) in the running loop; yields the address.

    We bind the socket ourselves so that a busy port is an OSError here, not an
    exit deep inside uvicorn, and so that port 0 reports the port it got.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the web view on {host}:{port}: {exc.strerror or exc}"
        ) from None
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web-server")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise ConfigError("the web server stopped while starting")
            await asyncio.sleep(0.01)
        yield sock.getsockname()[0], sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
