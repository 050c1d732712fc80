"""Batches through the pipeline: the unit of work at the pipeline's edge.

`process_batch` runs deliveries inside the caller's open transaction, under one
SAVEPOINT; when a delivery trips an unexpected error, the batch runs again with a
SAVEPOINT per delivery, so that one is rolled back alone and stored as
quarantined while its batch-mates go on; it never commits. `write_batch` and
`ingest` are the edge: they open one transaction per batch through
`Store.transaction` and commit it. `ingest` is what every path that
is not the listener (files, `simulate --via direct`) feeds its submissions to;
`file_submissions` turns mail read from files into them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from simulator.domain import Channel, Outcome, Reason, Submission
from simulator.org import Org
from simulator.pipeline import intake, signing
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.ledger import SeatChange, reconcile_directory
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS, MimeLimits, date_header, receive_time
from simulator.store.db import Store
from simulator.store.models import Delivery

log = logging.getLogger("intake_sim.writer")
DEFAULT_BATCH = 200


class RawMail(Protocol):
    """A message as read from a file: its bytes and its envelope sender."""

    @property
    def raw(self) -> bytes: ...

    @property
    def envelope_from(self) -> str: ...


def prepare(
    store: Store, org: Org, at: datetime | None = None, start: datetime | None = None
) -> list[SeatChange]:
    """Bring the schema up (or refuse an old one), make the signing secret, and
    reconcile the directory from the org file.

    `start` is the earliest moment of the history about to be imported: a
    directory seat the ledger has never held, and whose entry has no `since`,
    starts there rather than at `at`."""
    store.ensure_schema()
    moment = at or datetime.now(UTC)

    def work(session: Session) -> list[SeatChange]:
        signing.database_secret(session, moment)
        return reconcile_directory(session, org, moment, start)

    return store.transaction(work)


def write_batch(
    store: Store,
    org: Org,
    batch: list[Submission],
    mime_limits: MimeLimits = DEFAULT_MIME_LIMITS,
) -> list[DeliveryResult]:
    """Process a batch in one transaction; raises StoreUnavailable if it cannot commit.

    A batch that loses a race to another listener on the same database is
    rolled back whole and run again (Store.transaction).
    """
    return store.transaction(lambda session: process_batch(session, org, batch, mime_limits))


def process_batch(
    session: Session,
    org: Org,
    batch: list[Submission],
    mime_limits: MimeLimits = DEFAULT_MIME_LIMITS,
) -> list[DeliveryResult]:
    """Run every delivery of `batch` inside the caller's open transaction; never commits.

    The batch first runs under one SAVEPOINT. Should any delivery trip an
    unexpected error, that SAVEPOINT is rolled back and the batch runs again with
    a SAVEPOINT per delivery (see the module docstring), so the one at fault is
    quarantined alone: two statements per delivery saved when nothing fails, and
    every delivery takes the same steps either way. A storage error propagates,
    and the caller must roll the whole transaction back.
    """
    try:
        with session.begin_nested():
            return [_intake(session, org, item, mime_limits) for item in batch]
    except SQLAlchemyError:
        raise  # storage trouble is not the messages' fault: fail the batch (451, retry)
    except Exception:
        log.info("a delivery failed in its batch; running the batch one delivery at a time")
    return [_process_one(session, org, item, mime_limits) for item in batch]


def _intake(
    session: Session, org: Org, item: Submission, mime_limits: MimeLimits
) -> DeliveryResult:
    # Thread CPU, not wall time: waits for the GIL or the disk are not this message's cost.
    began = time.thread_time()
    result = intake.process(
        session,
        org,
        item.raw,
        item.envelope_from,
        item.recipients,
        item.received_at,
        item.channel,
        mime_limits,
        item.peer,
    )
    result.cost_seconds = time.thread_time() - began
    return result


def _process_one(
    session: Session, org: Org, item: Submission, mime_limits: MimeLimits
) -> DeliveryResult:
    try:
        with session.begin_nested():
            return _intake(session, org, item, mime_limits)
    except SQLAlchemyError:
        # Storage trouble is not the message's fault: fail the batch (451, retry).
        raise
    except Exception:
        log.exception("intake failed on one delivery; storing it as quarantined")
        with session.begin_nested():
            return _quarantine_raw(session, item)


def _quarantine_raw(session: Session, item: Submission) -> DeliveryResult:
    """Keep the bytes of a delivery the pipeline could not handle, for a later look."""
    delivery = Delivery(
        received_at=item.received_at,
        envelope_from=item.envelope_from or "",
        recipients=",".join(item.recipients),
        message_id=intake.derived_message_id(item.raw),
        outcome=Outcome.QUARANTINED.value,
        reason=Reason.INTERNAL_ERROR.value,
        size=len(item.raw),
        channel=item.channel.value,
        raw=item.raw,
        peer=item.peer,
    )
    session.add(delivery)
    session.flush()
    return DeliveryResult(delivery.id, Outcome.QUARANTINED, Reason.INTERNAL_ERROR, None)


def ingest(
    store: Store,
    org: Org,
    submissions: Iterable[Submission],
    on_batch: Callable[[Sequence[DeliveryResult]], None] | None = None,
    mime_limits: MimeLimits = DEFAULT_MIME_LIMITS,
    batch_size: int = DEFAULT_BATCH,
) -> int:
    """Run `submissions` through intake, one committed transaction per batch.

    `submissions` is consumed lazily, so a generator of a million messages never
    sits in memory at once. `on_batch` sees each batch's results after its commit.
    Returns how many submissions were processed.
    """
    done = 0
    items = iter(submissions)
    while batch := list(islice(items, batch_size)):
        results = write_batch(store, org, batch, mime_limits)
        done += len(results)
        if on_batch is not None:
            on_batch(results)
    return done


def file_submissions(
    mail: Iterable[RawMail], org: Org, use_date_header: bool = False
) -> Iterator[Submission]:
    """Mail read from files as `ingest` submissions: to the org's first intake address,
    received now, or at its Date header with `use_date_header` (historical mail)."""
    recipients = [org.intake_addresses[0]]
    for item in mail:
        received_at = receive_time(item.raw, use_date_header)
        yield Submission(item.raw, item.envelope_from, recipients, received_at, Channel.INGEST)


def earliest_date(mail: Iterable[RawMail]) -> datetime | None:
    """The earliest Date header among `mail` (one pass, one message at a time)."""
    dates = (date_header(item.raw) for item in mail)
    return min((d for d in dates if d is not None), default=None)


def outcome_counts(results: Iterable[DeliveryResult]) -> Counter[str]:
    """How many of `results` got each outcome."""
    return Counter(result.outcome.value for result in results)
