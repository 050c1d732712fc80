"""Several `intake-sim serve` processes on one database, fed racing deliveries.

Real processes, real SMTP, one database: the same new sender and the same
Message-ID delivered to every listener at the same instant, a sender whose
first mails reach every listener at once, and replies to one issue arriving
together. Each fact must exist exactly once afterwards: one user, one issue,
one seat event per change of a seat. Database constraints decide the races;
the losing transaction is rolled back and run again (Store.transaction).
On SQLite the writers queue on the file's lock instead, and the same counts
must hold.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from simulator.domain import LicenseModel
from simulator.pipeline import ledger
from simulator.pipeline.ledger import SeatChange
from simulator.reliability.listener import listening_address
from simulator.store.db import Store, open_store
from simulator.store.models import Delivery, Issue, SeatEvent, User
from tests.support.databases import BACKENDS, PG_ENV, PG_SKIP, fresh_database
from tests.support.mail import compose
from tests.support.spool import wait_until_drained

LISTENERS = 3
ROUNDS = 4  # new sender + same Message-ID at every listener, once per round
INTAKE = "support@acme.example"
# The sample org's directory: 3 agents, eli (logs in), dana (does not log in).
DIRECTORY_USERS = 5
DIRECTORY_SEAT_EVENTS = 3 + 4  # Support: 3 agents; Team: 3 agents + eli


@dataclass
class ServeProcess:
    """`python -m simulator serve --port 0` with its stderr drained on a thread."""

    db: str
    ack: str = "intake"
    lines: list[str] = field(default_factory=list)
    address: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_SIM_")}
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "simulator", "serve", "--port", "0"),
                *("--db", self.db, "--ack", self.ack),
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready = threading.Event()
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            found = listening_address(line)
            if found and self.address is None:
                self.address = found
                self.ready.set()
        self.ready.set()  # exited: do not keep anyone waiting

    def wait_listening(self) -> tuple[str, int]:
        self.ready.wait(timeout=60)
        assert self.address, "serve did not start:\n" + "".join(self.lines)
        return self.address

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.drain.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture(params=["intake", "spool"], ids=["ack-intake", "ack-spool"])
def ack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def listeners(
    request: pytest.FixtureRequest, tmp_path: Path, ack: str
) -> Iterator[list[ServeProcess]]:
    """LISTENER serve processes started together on one fresh database; with
    `--ack spool` their spool processors race each other too."""
    with fresh_database(request.param, tmp_path) as url:
        servers = [ServeProcess(url, ack) for _ in range(LISTENERS)]
        try:
            for server in servers:
                server.wait_listening()
            yield servers
        finally:
            codes = [server.stop() for server in servers]
        assert codes == [0] * LISTENERS, "".join(line for s in servers for line in s.lines)


def race(jobs: list[tuple[tuple[str, int], bytes]]) -> list[int]:
    """Open every SMTP transaction up to DATA, then send all the DATA at once."""
    start = threading.Barrier(len(jobs))
    codes: list[int] = [0] * len(jobs)

    def deliver(index: int, address: tuple[str, int], raw: bytes) -> None:
        with smtplib.SMTP(*address, timeout=60) as client:
            client.ehlo("race.localhost")
            client.mail("racer@race.example")
            client.rcpt(INTAKE)
            start.wait(timeout=30)
            codes[index] = client.data(raw)[0]

    threads = [
        threading.Thread(target=deliver, args=(i, address, raw))
        for i, (address, raw) in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return codes


def test_racing_listeners_store_each_fact_once(listeners: list[ServeProcess]) -> None:
    addresses = [server.wait_listening() for server in listeners]
    codes: list[int] = []
    # 1. A new sender's message, same Message-ID, at every listener at once.
    for n in range(ROUNDS):
        raw = compose(f"new{n}@race.example", f"Race {n}", f"race-{n}@race.example", to=INTAKE)
        codes += race([(address, raw) for address in addresses])
    # 2. One new sender, a different message at every listener at once.
    codes += race(
        [
            (address, compose("burst@race.example", f"Burst {i}", f"burst-{i}@race", to=INTAKE))
            for i, address in enumerate(addresses)
        ]
    )
    # 3. A directory employee who does not log in: her first mails make one Team seat.
    codes += race(
        [
            (address, compose("dana@acme.example", f"Dana {i}", f"dana-{i}@acme", to=INTAKE))
            for i, address in enumerate(addresses)
        ]
    )
    # 4. Replies to the first issue from new senders, all at once.
    codes += race(
        [
            (
                address,
                compose(
                    f"reply{i}@race.example",
                    "Re: Race 0",
                    f"reply-{i}@race.example",
                    to=INTAKE,
                    headers={"In-Reply-To": "<race-0@race.example>"},
                ),
            )
            for i, address in enumerate(addresses)
        ]
    )
    assert codes == [250] * len(codes)

    with Store(listeners[0].db, writer=False) as store:
        wait_until_drained(store)
    with Store(listeners[0].db, writer=False) as store, store.sessions() as session:
        deliveries = session.scalars(select(Delivery)).all()
        users = session.scalars(select(User.email)).all()
        issues = session.scalars(select(Issue)).all()
        events = session.execute(
            select(User.email, SeatEvent.model, SeatEvent.delta, SeatEvent.reason).join(
                User, User.id == SeatEvent.user_id
            )
        ).all()

    outcomes = Counter(d.outcome for d in deliveries)
    assert len(deliveries) == LISTENERS * ROUNDS + 3 * LISTENERS
    assert outcomes == {
        "created_issue": ROUNDS + 2 * LISTENERS,  # one per round, burst's and dana's mails
        "duplicate": (LISTENERS - 1) * ROUNDS,
        "threaded": LISTENERS,
    }
    assert len(users) == len(set(users)) == DIRECTORY_USERS + ROUNDS + 1 + LISTENERS
    assert len(issues) == ROUNDS + 2 * LISTENERS
    first_issue = next(d.issue_number for d in deliveries if d.message_id == "race-0@race.example")
    assert {d.issue_number for d in deliveries if d.outcome == "threaded"} == {first_issue}

    per_seat = Counter((email, model) for email, model, _, _ in events)
    assert max(per_seat.values()) == 1, per_seat.most_common(3)
    assert all(delta == 1 for _, _, delta, _ in events)
    first_emails = ROUNDS + 1 + 1 + LISTENERS  # new senders, burst, dana, repliers
    assert len(events) == DIRECTORY_SEAT_EVENTS + first_emails
    assert ("dana@acme.example", "team", 1, "first_email") in events

    lost = sum("lost a race" in line for server in listeners for line in server.lines)
    print(f"{len(deliveries)} deliveries through {LISTENERS} listeners, {lost} race(s) rerun")


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=PG_SKIP)
def test_racing_transactions_append_a_seat_change_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two transactions both see "no seat" and both append +1: the unique key
    (user, model, transition) fails one; its rerun sees the seat and appends nothing.

    PostgreSQL only: SQLite's writers never overlap (BEGIN IMMEDIATE), so two
    could not both read before either writes.
    """
    with fresh_database("postgresql", tmp_path) as url:
        stores = [open_store(url), Store(url)]
        try:
            with stores[0].sessions.begin() as session:
                user = User(email="x@race.example", role="customer", origin="sender")
                user.created_at = datetime.now(UTC)
                session.add(user)
                session.flush()
                user_id = user.id
            both_read = threading.Barrier(2)
            runs: list[SeatChange | None] = []
            reads = []
            seat_state = ledger.seat_state

            def read_then_wait(*args: Any) -> tuple[bool, int]:
                state = seat_state(*args)
                reads.append(state)
                if len(reads) <= 2:
                    both_read.wait(timeout=30)  # neither appends before both have read
                return state

            monkeypatch.setattr(ledger, "seat_state", read_then_wait)

            def append(session: Session) -> None:
                user = session.get_one(User, user_id)
                change = ledger.set_seat(session, user, LicenseModel.TEAM, True, "first_email", at)
                runs.append(change)

            at = datetime.now(UTC)
            threads = [threading.Thread(target=s.transaction, args=(append,)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            with stores[0].sessions() as session:
                events = session.scalars(select(SeatEvent.transition)).all()
        finally:
            for store in stores:
                store.dispose()
    assert events == [1]
    # Both read "no seat"; the loser's append failed on the key (it waited for the
    # winner's commit), and its rerun found the seat held.
    assert reads == [(False, 0), (False, 0), (True, 1)]
    assert [change is not None for change in runs] == [True, False]
