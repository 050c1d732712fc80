"""The web port shares its process with the SMTP listener, so it must never use the
descriptors SMTP needs: half-sent HTTP requests are capped and timed out, and a log
line that repeats in a loop is written a few times, not a million."""

from __future__ import annotations

import io
import logging
import smtplib
import socket
import time
from contextlib import ExitStack
from pathlib import Path

from simulator.logs import RepeatFilter
from tests.support.mail import compose
from tests.support.processes import intake_sim, smtp_port_in, web_port_in

HALF_SENT = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: the head never ends


def deliver(port: int) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        raw = compose("honest@customer.example", to="support@acme.example")
        code, _ = client.ehlo("tests.localhost")
        assert code == 250
        client.mail("honest@customer.example")
        client.rcpt("support@acme.example")
        return client.data(raw)[0]


def test_half_sent_http_requests_never_starve_smtp(tmp_path: Path) -> None:
    """400 half-sent requests against a process allowed 200 descriptors: before, it ran
    out (EMFILE), SMTP stopped greeting and the log filled with tracebacks. The web
    refuses what would eat into SMTP's reserve, and closes heads that never end."""
    db = f"sqlite:///{tmp_path / 'fd.db'}"
    args = ["serve", "--port", "0", "--web-port", "0", "--max-connections", "20"]
    args += ["--web-max-connections", "1000", "--web-header-timeout", "2"]
    wanted = {"smtp": smtp_port_in, "web": web_port_in}
    with intake_sim(args, wanted, db, open_files=200) as running, ExitStack() as held:
        refused = 0
        for _ in range(400):
            sock = held.enter_context(socket.create_connection(("127.0.0.1", running.ports["web"])))
            try:
                sock.sendall(HALF_SENT)
            except OSError:
                refused += 1
        assert deliver(running.ports["smtp"]) == 250
        started = time.monotonic()
        sock.settimeout(10)
        closed = sock.recv(1024)  # the last one: refused (503) or timed out, never kept
        assert time.monotonic() - started < 5
        assert closed == b"" or closed.startswith(b"HTTP/1.1 503"), closed
        assert deliver(running.ports["smtp"]) == 250
    assert sum(line.count("\n") for line in running.log) < 100, "".join(running.log)[-3000:]


def test_a_line_repeated_in_a_loop_is_written_a_few_times() -> None:
    now = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(shown=3, window=60, clock=lambda: now[0]))
    logger = logging.getLogger("tests.repeats")
    logger.addHandler(handler)
    logger.propagate = False
    try:

        def fail(attempt: int) -> None:
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.exception("accept failed on attempt %d", attempt)

        for n in range(10_000):
            fail(n)
        logger.error("another line")
        now[0] = 61.0  # a new window: written again, with the count of what was left out
        fail(10_000)
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    headlines = [line for line in lines if line.startswith(("accept", "another"))]
    assert headlines == [
        "accept failed on attempt 0",
        "accept failed on attempt 1",
        "accept failed on attempt 2",
        "another line",
        "accept failed on attempt 10000 (9997 more like this left out)",
    ]
