"""Live fuzzing: generated hostile mail over real SMTP, then an audit of the store.

Client threads send `MailFuzzer` messages to a listener (our own `serve` child
process on a fresh SQLite file, or one given by host and port). Afterwards:
every 250 names a delivery that is stored with an outcome, the listener still
answers, and no message got a 451 (which here could only be an internal error).
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from simulator.domain import Outcome
from simulator.reliability.fuzzmail import MailFuzzer
from simulator.reliability.listener import ListenerProcess
from simulator.smtp.client import RETRY_TIMEOUT_SECONDS, NoSession, SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.store.db import Store
from simulator.store.models import Delivery

INTAKE_ADDRESS = "support@acme.example"


@dataclass(frozen=True)
class FuzzOptions:
    messages: int = 100_000
    clients: int = 4
    seed: int = 0
    host: str | None = None  # None: start our own listener
    port: int | None = None
    db: str | None = None  # the running listener's store, to audit (with host and port)


@dataclass
class FuzzReport:
    sent: int = 0
    replies: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    accepted_ids: list[int] = field(default_factory=list)  # from the 250 replies
    recorded: int = 0  # accepted deliveries found in the store with an outcome
    missing: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    still_answers: bool = False
    audited: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        answered_all = self.replies[0] == 0 and self.replies[451] == 0
        complete = not self.audited or (not self.missing and self.recorded == self.accepted)
        return answered_all and complete and self.still_answers

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "replies": {str(code): n for code, n in sorted(self.replies.items())},
            "accepted": self.accepted,
            "recorded": self.recorded if self.audited else None,
            "missing": len(self.missing) if self.audited else None,
            "outcomes": dict(sorted(self.outcomes.items())),
            "still_answers": self.still_answers,
            "seconds": round(self.seconds, 1),
            "messages_per_second": round(self.sent / self.seconds) if self.seconds else 0,
            "ok": self.ok,
        }


class _Sender(threading.Thread):
    def __init__(self, index: int, count: int, seed: int, address: tuple[str, int]) -> None:
        super().__init__(name=f"fuzz-client-{index}", daemon=True)
        self.count, self.address = count, address
        self.fuzzer = MailFuzzer(random.Random(f"{seed}-{index}"))
        self.replies: Counter[int] = Counter()
        self.accepted: list[int] = []

    def run(self) -> None:
        client = SmtpClient(timeout=RETRY_TIMEOUT_SECONDS)
        try:
            for _ in range(self.count):
                raw = self.fuzzer.message()
                sender, recipients = self.fuzzer.envelope(INTAKE_ADDRESS)
                reply = client.attempt(self.address, MailFile("fuzz", raw, sender), *recipients)
                self.replies[reply.code] += 1
                if reply.delivery_id is not None:
                    self.accepted.append(reply.delivery_id)
        finally:
            client.close()


NO_TARPIT = ["--error-soft-limit", "0", "--error-hard-limit", "0"]


def run_fuzz(options: FuzzOptions) -> FuzzReport:
    with tempfile.TemporaryDirectory(prefix="intake-sim-fuzz-") as scratch:
        db = options.db
        server: ListenerProcess | None = None
        if options.host is None or options.port is None:
            db = f"sqlite:///{Path(scratch) / 'fuzz.db'}"  # always fresh: junk goes nowhere else
            # The error tarpit off: fuzzing sends hostile envelopes on purpose, and what
            # it checks is what becomes of each message, not how refusals are paced.
            server = ListenerProcess(db, NO_TARPIT)
            address = server.start()
        else:
            address = (options.host, options.port)
        try:
            report = _send_all(options, address)
            report.still_answers = _answers(address) and (server is None or server.running)
        finally:
            if server is not None:
                server.stop()
        if db is not None:
            _audit(report, db)
    return report


def _send_all(options: FuzzOptions, address: tuple[str, int]) -> FuzzReport:
    share, extra = divmod(options.messages, options.clients)
    senders = [
        _Sender(i, share + (i < extra), options.seed, address) for i in range(options.clients)
    ]
    started = time.monotonic()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    report = FuzzReport(seconds=time.monotonic() - started)
    for sender in senders:
        report.replies.update(sender.replies)
        report.accepted_ids.extend(sender.accepted)
    report.sent = sum(report.replies.values())
    report.accepted = len(report.accepted_ids)
    return report


def _answers(address: tuple[str, int]) -> bool:
    try:
        with SmtpClient(*address, timeout=10) as client:
            return client.noop() == 250
    except NoSession:
        return False


def _audit(report: FuzzReport, db: str) -> None:
    """Look up every accepted delivery id in the store, with its outcome."""
    store = Store(db, writer=False)
    try:
        with store.read() as session:
            stored = dict(session.execute(select(Delivery.id, Delivery.outcome)).all())
    finally:
        store.dispose()
    valid = {o.value for o in Outcome}
    found = [stored[i] for i in report.accepted_ids if stored.get(i) in valid]
    report.outcomes = Counter(found)
    report.recorded = len(found)
    report.missing = [i for i in report.accepted_ids if stored.get(i) not in valid]
    report.audited = True
