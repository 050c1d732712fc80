"""Readiness: is a listener up and able to store mail? For container healthchecks.

Like Mailpit's readyz: open an SMTP session and expect the 220 greeting, then
(when a database is named) check that the database answers and is at the
schema this intake-sim needs. Each failure is a NotReady with one line.
"""

from __future__ import annotations

from simulator.defaults import DEFAULT_TIMEOUT_SECONDS
from simulator.errors import IntakeSimError
from simulator.smtp.client import NoSession, SmtpClient
from simulator.store.db import Store
from simulator.store.schema import head_revision


class NotReady(IntakeSimError):
    """The listener or its database is not ready to accept mail."""


def check_smtp(host: str, port: int, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str:
    """The listener's greeting; NotReady unless it answers 220 and takes NOOP."""
    try:
        with SmtpClient(host, port, timeout) as client:
            noop = client.noop()
    except NoSession as exc:
        if exc.greeting_code is not None:
            raise NotReady(f"smtp://{host}:{port} greeted {exc.greeting_code}, not 220") from None
        raise NotReady(f"no SMTP listener at {host}:{port}: {exc.cause}") from None
    if noop != 250:
        raise NotReady(f"smtp://{host}:{port} answered NOOP with {noop}")
    return client.greeting


def check_database(url: str) -> str:
    """The database's schema revision; NotReady unless it answers and is current."""
    try:
        with Store(url, writer=False) as store:
            current = store.revision()
    except IntakeSimError as exc:
        raise NotReady(str(exc)) from None
    head = head_revision()
    if current is None:
        raise NotReady(f"{store.display_url} is empty: run `intake-sim db upgrade`")
    if current != head:
        raise NotReady(f"{store.display_url} is at schema {current}, intake-sim needs {head}")
    return current
