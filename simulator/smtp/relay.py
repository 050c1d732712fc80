"""The outbox: automatic emails wait in the database until a relay takes them.

Intake writes outbox rows in the same transaction as the delivery that caused
them (see notify.py), so a mail is queued exactly when its cause is committed.
`OutboxSender` is the asyncio task that moves rows from `pending` to `sent` or
`failed`: it claims due rows, hands each to the relay over SMTP, and records the
result. All of that (database and SMTP) runs on one worker thread of its own,
so a slow or dead relay never blocks the listener's event loop or intake.

A relay that is down loses nothing: the row stays `pending`, `attempts` and
`last_error` say why, and it is tried again after an exponential back-off
(bounded: `RetryPolicy.max_attempts`, then `failed`). A permanent refusal (5xx)
fails the row at once. Delivery is at least once: a crash between the relay's
250 and our mark sends that row again once its claim lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from simulator.domain import OutboxStatus, Reason
from simulator.errors import ConfigError, IntakeSimError
from simulator.smtp.client import SMTPUTF8_UNSUPPORTED, SMTPUTF8_UNSUPPORTED_CODE, SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.store.db import Store, describe_error
from simulator.store.models import OutboxMessage

log = logging.getLogger("intake_sim.outbox")

CLAIM_LEASE = timedelta(minutes=2)  # a claimed row is left alone this long
ROUND_SIZE = 50
RELAY_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 5.0  # also picks up rows written by other processes (ingest, other listeners)
ERROR_MAX = 500
PENDING = OutboxStatus.PENDING.value
T = TypeVar("T")


@dataclass(frozen=True)
class Relay:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Relay:
        """`HOST:PORT` (IPv6 as `[::1]:1025`); ConfigError when it is not one."""
        host, _, port = text.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"a relay is HOST:PORT, such as 127.0.0.1:1025, not {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 2.0  # seconds before the second attempt, doubling after each
    max_delay: float = 300.0
    max_attempts: int = 10  # then the row is `failed`

    def delay(self, attempts: int) -> float:
        return min(self.first_delay * 2 ** max(attempts - 1, 0), self.max_delay)


@dataclass(frozen=True)
class Claimed:
    id: int
    recipient: str
    raw: bytes
    attempts: int


def claim_due(store: Store, now: datetime, limit: int = ROUND_SIZE) -> list[Claimed]:
    """Take up to `limit` due rows, leasing each so no other sender takes it meanwhile."""
    claimed: list[Claimed] = []
    with store.sessions.begin() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        ).all()
        for row in rows:
            # Conditional, so two listeners on one PostgreSQL never both take a row.
            taken = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.status == PENDING,
                    OutboxMessage.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=now + CLAIM_LEASE)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(Claimed(row.id, row.recipient, row.raw, row.attempts))
    return claimed


def record(
    store: Store, item: Claimed, code: int, reply: str, now: datetime, retry: RetryPolicy
) -> str:
    """Store one attempt's result; returns the row's new status."""
    attempts = item.attempts + 1
    values: dict[str, object] = {"attempts": attempts}
    if 200 <= code < 300:
        values |= {"status": OutboxStatus.SENT.value, "sent_at": now, "last_error": ""}
    elif (code, reply) == (SMTPUTF8_UNSUPPORTED_CODE, SMTPUTF8_UNSUPPORTED):
        # Not the recipient's fault and no retry will help: recorded, never sent.
        values |= {
            "status": OutboxStatus.SUPPRESSED.value,
            "last_error": Reason.SMTPUTF8_UNSUPPORTED.value,
        }
    else:
        error = (f"{code} {reply}" if code else reply).strip()[:ERROR_MAX]
        permanent = 500 <= code < 600
        if permanent or attempts >= retry.max_attempts:
            values |= {"status": OutboxStatus.FAILED.value, "last_error": error}
        else:
            later = now + timedelta(seconds=retry.delay(attempts))
            values |= {"next_attempt_at": later, "last_error": error}
    with store.sessions.begin() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == item.id).values(values))
    return str(values.get("status", PENDING))


def send_round(store: Store, relay: Relay, retry: RetryPolicy) -> dict[str, int]:
    """Send every due row once; returns how many ended in each status."""
    counts: dict[str, int] = {}
    claimed = claim_due(store, datetime.now(UTC))
    if not claimed:
        return counts
    address = (relay.host, relay.port)
    with SmtpClient(*address, timeout=RELAY_TIMEOUT_SECONDS) as client:
        for item in claimed:
            # Cannot connect: code 0, and this row waits for the next round.
            mail = MailFile(f"outbox#{item.id}", item.raw, "")
            result = client.attempt(address, mail, item.recipient)
            code, reply = result.code, result.reply
            status = record(store, item, code, reply, datetime.now(UTC), retry)
            counts[status] = counts.get(status, 0) + 1
            sent = status == OutboxStatus.SENT.value
            # A refusal or an unreachable relay is something to look at: a warning.
            log.log(
                logging.INFO if sent else logging.WARNING,
                "outbox #%d to %s: %s%s",
                item.id,
                item.recipient,
                status,
                "" if sent else f" ({code} {reply.strip()})",
            )
    return counts


def next_due_in(store: Store, now: datetime) -> float | None:
    """Seconds until the earliest pending row is due (0 if overdue); None if none is pending."""
    with store.sessions() as session:
        earliest = session.scalar(
            select(func.min(OutboxMessage.next_attempt_at)).where(OutboxMessage.status == PENDING)
        )
    return None if earliest is None else max((earliest - now).total_seconds(), 0.0)


def untried(store: Store) -> int:
    """Pending rows not yet tried once (queued, or claimed and being sent right now)."""
    with store.sessions() as session:
        count = session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.status == PENDING, OutboxMessage.attempts == 0
            )
        )
    return int(count or 0)


class OutboxSender:
    """The asyncio task that drains the outbox through a relay, off the event loop."""

    def __init__(
        self,
        store: Store,
        relay: Relay,
        retry: RetryPolicy | None = None,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.relay = relay
        self.retry = retry or RetryPolicy()
        self.poll = poll
        self.totals: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sender")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-sender")

    def wake(self) -> None:
        """Something was queued (called after COMMIT): look now rather than at the next poll."""
        self._wake.set()

    async def _in_thread(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _round(self) -> float:
        for status, n in send_round(self.store, self.relay, self.retry).items():
            self.totals[status] = self.totals.get(status, 0) + n
        due = next_due_in(self.store, datetime.now(UTC))
        return self.poll if due is None else min(due, self.poll)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delay = await self._in_thread(self._round)
            except (SQLAlchemyError, IntakeSimError) as exc:
                log.warning("outbox: %s; trying again in %.0f s", describe_error(exc), self.poll)
                delay = self.poll
            except Exception:  # a bug must not end sending for good
                log.exception("outbox round failed")
                delay = self.poll
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued row has had its first attempt (True), or `timeout` (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await self._in_thread(lambda: untried(self.store)) == 0:
                return True
            self.wake()
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        """Finish the round under way and stop; pending rows wait for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)
