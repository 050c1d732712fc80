"""Crash safety, measured: SIGKILL a real listener under load and audit the store.

Several client threads send mail with unique Message-IDs to an `intake-sim
serve` child process and retry everything that was not answered 250 (a 451, a
reset connection, a refused connect while the listener is down). Meanwhile the
listener is killed with SIGKILL at random moments and restarted on a new port.
Afterwards the store is audited against what the clients saw:

- every acknowledged message is stored exactly once as a counted delivery, and
  the delivery id in its 250 reply names a row with its Message-ID;
- no message is stored as a counted delivery twice (a retry of a message that
  was committed before the kill is recorded as `duplicate`, which is correct);
- nothing is stored that no client sent.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from simulator.delivery.spool import Ack, drain, open_spool
from simulator.domain import Outcome
from simulator.errors import IntakeSimError
from simulator.org import load_org
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
from simulator.reliability.listener import ListenerProcess
from simulator.smtp.client import RETRY_TIMEOUT_SECONDS, SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.store.db import Store
from simulator.store.models import Delivery

INTAKE_ADDRESS = "support@acme.example"
RETRY_PAUSE_SECONDS = 0.05
SERVER_WAIT_SECONDS = 60


@dataclass(frozen=True)
class CrashTestOptions:
    db: str
    kills: int = 20
    clients: int = 4
    seed: int | None = None
    # Each kill comes a random time after the listener last (re)started.
    min_uptime: float = 0.3
    max_uptime: float = 1.5
    serve_args: tuple[str, ...] = ()
    ack: Ack = Ack.INTAKE


@dataclass
class CrashTestReport:
    run: str
    db: str
    kills: int = 0
    sent: int = 0  # distinct messages the clients sent (each until it was acknowledged)
    attempts: int = 0  # DATA attempts, retries included
    acknowledged: int = 0
    refused: int = 0  # 5xx answers: nothing of the crash test should get one
    stored: int = 0  # distinct messages stored as a counted (non-duplicate) delivery
    duplicates: int = 0  # rows recorded as `duplicate`: retries of committed messages
    lost: list[str] = field(default_factory=list)  # acknowledged, not stored
    doubled: list[str] = field(default_factory=list)  # stored as counted more than once
    wrong_ids: list[str] = field(default_factory=list)  # 250 named another row
    strangers: int = 0  # rows of this run that no client sent
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not (self.lost or self.doubled or self.wrong_ids or self.strangers or self.refused)
            and self.stored == self.acknowledged == self.sent
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "db": self.db,
            "kills": self.kills,
            "sent": self.sent,
            "attempts": self.attempts,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "lost": len(self.lost),
            "stored_twice": len(self.doubled),
            "wrong_delivery_ids": len(self.wrong_ids),
            "strangers": self.strangers,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
        }


def message(run: str, client: int, number: int) -> tuple[str, bytes]:
    """(Message-ID, bytes) of one crash-test message; each sender is new to the store."""
    message_id = f"{run}.{client}.{number}@crash.intake-sim.test"
    raw = (
        f"From: Client {client} <c{client}-{number}.{run}@customer.example>\r\n"
        f"To: {INTAKE_ADDRESS}\r\n"
        f"Subject: crash test {client}/{number}\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Message {number} of client {client} in run {run}.\r\n"
    ).encode()
    return message_id, raw


class _Listener:
    """The current address of the listener, and whether it is up, shared by the clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._address: tuple[str, int] = ("127.0.0.1", 0)

    def up(self, address: tuple[str, int]) -> None:
        with self._lock:
            self._address = address
        self._up.set()

    def down(self) -> None:
        self._up.clear()

    def address(self) -> tuple[str, int]:
        if not self._up.wait(SERVER_WAIT_SECONDS):
            raise IntakeSimError("the listener stayed down too long")
        with self._lock:
            return self._address


class _Client(threading.Thread):
    """Sends new messages until told to stop; each one is retried until it gets 250."""

    def __init__(self, index: int, run: str, listener: _Listener, stop: threading.Event) -> None:
        super().__init__(name=f"crash-client-{index}", daemon=True)
        self.index, self.run_id, self.listener, self.stop = index, run, listener, stop
        # Message-ID -> delivery id from the 250 (None: spooled, the id comes later)
        self.acked: dict[str, int | None] = {}
        self.refused: list[str] = []
        self.attempts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        client = SmtpClient(timeout=RETRY_TIMEOUT_SECONDS)
        number = 0
        try:
            while not self.stop.is_set():
                number += 1
                self._deliver(client, *message(self.run_id, self.index, number))
        except BaseException as exc:  # reported by the caller, not lost in a thread
            self.error = exc
        finally:
            client.close()

    def _deliver(self, client: SmtpClient, message_id: str, raw: bytes) -> None:
        mail = MailFile(message_id, raw, f"c{self.index}@customer.example")
        while True:
            self.attempts += 1
            reply = client.attempt(self.listener.address(), mail, INTAKE_ADDRESS)
            if reply.code == 250 and (reply.delivery_id is not None or reply.spooled):
                self.acked[message_id] = reply.delivery_id
                return
            if 500 <= reply.code < 600:
                self.refused.append(message_id)
                return
            time.sleep(RETRY_PAUSE_SECONDS)  # 4xx or no answer: try again


def run_crash_test(
    options: CrashTestOptions, progress: Callable[[str], None] = lambda _: None
) -> CrashTestReport:
    run = uuid.uuid4().hex[:12]
    dice = random.Random(options.seed)
    report = CrashTestReport(run=run, db=Store(options.db, writer=False).display_url)
    server = ListenerProcess(options.db, (*options.serve_args, "--ack", options.ack.value))
    listener, stop = _Listener(), threading.Event()
    started = time.monotonic()
    listener.up(server.start())
    clients = [_Client(i, run, listener, stop) for i in range(options.clients)]
    for client in clients:
        client.start()
    try:
        for kill in range(1, options.kills + 1):
            time.sleep(dice.uniform(options.min_uptime, options.max_uptime))
            listener.down()
            server.kill()
            report.kills = kill
            progress(f"kill {kill}/{options.kills}: {sum(len(c.acked) for c in clients)} acked")
            listener.up(server.start())
        # Let every client see the last listener before stopping the load.
        time.sleep(options.max_uptime)
    finally:
        stop.set()
        for client in clients:
            client.join(SERVER_WAIT_SECONDS * 2)
        server.stop()
    report.seconds = time.monotonic() - started
    failed = [c.error for c in clients if c.error is not None]
    if failed:
        raise IntakeSimError(f"a crash-test client failed: {failed[0]}")
    if options.ack is Ack.SPOOL:
        progress(f"draining the spool: {_drain(options.db)} message(s) were still spooled")
    audit(report, options.db, clients)
    return report


def _drain(db: str) -> int:
    """Run what the last listener left in the spool through intake, as `drain` would."""
    with Store(db) as store:
        spooled = open_spool(store)
        try:
            return drain(spooled, load_org(), DEFAULT_MIME_LIMITS)
        finally:
            spooled.dispose()


def audit(report: CrashTestReport, db: str, clients: list[_Client]) -> None:
    """Compare what the clients were told with what the store holds."""
    acked: dict[str, int | None] = {}
    for client in clients:
        acked.update(client.acked)
        report.refused += len(client.refused)
        report.attempts += client.attempts
    report.acknowledged = len(acked)
    report.sent = report.acknowledged + report.refused
    store = Store(db, writer=False)
    try:
        with store.read() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.message_id, Delivery.outcome).where(
                    Delivery.message_id.like(f"{report.run}.%")
                )
            ).all()
    finally:
        store.dispose()
    counted = Counter(mid for _, mid, outcome in rows if outcome != Outcome.DUPLICATE.value)
    by_id = {delivery_id: mid for delivery_id, mid, _ in rows}
    report.duplicates = sum(outcome == Outcome.DUPLICATE.value for *_, outcome in rows)
    report.stored = len(counted)
    report.lost = sorted(mid for mid in acked if counted[mid] == 0)
    report.doubled = sorted(mid for mid, n in counted.items() if n > 1)
    report.wrong_ids = sorted(
        mid for mid, did in acked.items() if did is not None and by_id.get(did) != mid
    )
    report.strangers = sum(1 for mid in counted if mid not in acked)
