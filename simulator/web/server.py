"""The web server: uvicorn serving the app inside the caller's event loop.

The web port shares its process, and so its file descriptors, with the SMTP
listener. A connection past `max_connections`, or one that would eat into the
descriptors kept for SMTP, gets a 503 and is closed at once; a request whose
header section is not complete `header_timeout` seconds after the connection
(or the previous response) is closed. Half-sent requests could otherwise hold
descriptors until the process had none left and SMTP stopped greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
from collections.abc import AsyncIterator, Iterator

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from simulator.errors import ConfigError
from simulator.web.options import WEB_HEADER_TIMEOUT_SECONDS, WEB_MAX_CONNECTIONS

log = logging.getLogger("intake_sim.web")
ACCEPT_BURST = 1  # connections asyncio accepts per turn of the event loop
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def open_descriptors() -> int | None:
    """How many file descriptors this process has open; None where that cannot be seen."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def descriptors_short(reserve: int) -> bool:
    """Whether one more descriptor would eat into the `reserve` kept for others."""
    if not reserve:
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = open_descriptors()
    return used is not None and soft != resource.RLIM_INFINITY and used + reserve >= soft


def guarded_protocol(
    max_connections: int, header_timeout: float, reserve: int
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with the connection cap, reserve and header deadline."""

    class Guarded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            crowded = bool(max_connections) and len(self.connections) > max_connections
            if crowded or descriptors_short(reserve):
                transport.write(_BUSY)
                transport.close()
                return
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request's head is in
                self._stop()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            self._stop()
            if header_timeout and not self.transport.is_closing():
                self._deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _stop(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE:
                self.transport.close()

    return Guarded


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def web_server(
    app: ASGIApp,
    host: str,
    port: int,
    max_connections: int = WEB_MAX_CONNECTIONS,
    header_timeout: float = WEB_HEADER_TIMEOUT_SECONDS,
    descriptor_reserve: int = 0,
) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` on host:port (0 picks a free port) in the running loop; yields the address.

    `descriptor_reserve` file descriptors are left for the rest of the process
    (the SMTP listener's sessions): a web connection that would use one gets 503.

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
        http=guarded_protocol(max_connections, header_timeout, descriptor_reserve),
        # asyncio accepts up to `backlog` connections in one go before any protocol
        # sees one; one at a time keeps the reserve check ahead of the descriptors,
        # and a flood of web connections from delaying SMTP sessions, which share the
        # event loop: 16 at a time (each accepted, refused with 503 and closed) put a
        # millisecond and more between two turns of the loop, and honest SMTP clients'
        # p99 latency went from 11 to 20 ms beside 2,000 half-sent requests.
        backlog=ACCEPT_BURST,
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
        # The queue of connections not yet accepted costs the process no descriptor:
        # let it be long again (asyncio set it to the accept burst).
        sock.listen(socket.SOMAXCONN)
        yield sock.getsockname()[0], sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
