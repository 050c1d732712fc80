"""The spool: answer 250 once the raw message is committed, run intake just after.

Intake costs several times the CPU of the SMTP exchange itself, so a listener
that runs the pipeline before its 250 acknowledges a fraction of what aiosmtpd
alone could. With `serve --ack spool` the group-commit writer only INSERTs the
raw bytes and envelope into a spool (still one COMMIT per batch, still 451 when
that fails), and a spool processor in its own process -- so it runs on another
core and never holds the listener's GIL -- takes the oldest messages in arrival
order and runs them through the same pipeline as `--ack intake`.

Every spooled message becomes exactly one delivery, whatever is killed when:

- PostgreSQL: the spool is the `spool` table. The processor deletes the rows in
  the transaction that stores their deliveries. Several processors (`serve
  --processors`, several listeners) work at once on partitions of the spool, by
  sender, each holding its partitions under advisory locks: one sender's mail
  runs in spool order, and a reply spooled after its original's 250 is never run
  before it, whichever partitions the two are in (see spool_postgres.py).
- SQLite: a single writer lock per file would make the listener wait for every
  processor transaction, so the spool is a file of its own beside the database
  (`<database>-spool`). Its rows cannot be deleted in the main transaction;
  instead that transaction moves a mark (`spool_marks`) past them, and rows at
  or below the mark are skipped. Processors on one file take turns under the
  main database's BEGIN IMMEDIATE and read the mark inside it, so two never run
  the same row. The rows the mark has passed are deleted by the listener (at
  most once a second, as it appends) and by `drain`, never by the processor:
  the processor runs at the lowest priority, and a write lock on the spool file
  held by a process the scheduler has set aside would stall every append.

This module holds what both backends share: the receipts, the Spool protocol,
the driver-level appender, open_spool and drain. The backends are
spool_sqlite.py (FileSpool) and spool_postgres.py (TableSpool); the processor
process is processor.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from simulator.delivery.writer import DEFAULT_MAX_BATCH
from simulator.domain import Ack as Ack  # `--ack` is parsed before this module loads
from simulator.domain import Channel, Submission
from simulator.errors import ConfigError, StoreUnavailable
from simulator.org import Org
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import MimeLimits
from simulator.store.db import Store

T = TypeVar("T")

# An SMTP envelope address cannot hold a line break; a comma it can (quoted local part).
RECIPIENT_SEPARATOR = "\n"
SQLITE_BUSY = 5  # the primary result code; extended codes keep it in the low byte
# How long an idle processor sleeps when nobody wakes it (another listener's spool rows).
POLL_SECONDS = 0.5
# How long it sleeps when rows wait but others hold them (another processor's batch, a
# reply whose original another processor is running): about a tenth of a batch's time.
HELD_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class SpoolReceipt:
    """What the listener knows after the COMMIT: the spool row that holds the message."""

    spool_id: int

    def log_line(self) -> str:
        return f"spooled={self.spool_id}"


@dataclass(frozen=True)
class Spooled:
    spool_id: int
    item: Submission


def _row(item: Submission) -> dict[str, Any]:
    return {
        "received_at": item.received_at,
        "envelope_from": item.envelope_from or "",
        "recipients": RECIPIENT_SEPARATOR.join(item.recipients),
        "channel": item.channel.value,
        "raw": item.raw,
        "peer": item.peer,
    }


def _spooled(row: Any) -> Spooled:
    return Spooled(
        row.id,
        Submission(
            raw=row.raw,
            envelope_from=row.envelope_from or None,
            recipients=row.recipients.split(RECIPIENT_SEPARATOR) if row.recipients else [],
            received_at=row.received_at,
            channel=Channel(row.channel),
            peer=row.peer or "",
        ),
    )


class SpoolBusy(StoreUnavailable):
    """Another writer held the SQLite spool file's write lock; nothing was written."""


class Spool(Protocol):
    def append(self, items: list[Submission]) -> list[SpoolReceipt]: ...

    async def append_on_loop(self, items: list[Submission]) -> list[SpoolReceipt] | None: ...

    async def close_on_loop(self) -> None: ...

    def process(
        self, org: Org, mime_limits: MimeLimits, limit: int = DEFAULT_MAX_BATCH
    ) -> list[DeliveryResult]: ...

    def backlog(self) -> int: ...

    def prune(self) -> int: ...

    def dispose(self) -> None: ...


# The columns `_values` fills, in its order.
SPOOL_COLUMNS = ("received_at", "envelope_from", "recipients", "channel", "raw", "peer")


def spool_insert(placeholder: str, more: tuple[str, ...] = ()) -> str:
    """The INSERT of one spool row in the driver's `placeholder` style: SPOOL_COLUMNS,
    then `more` (what a backend adds after them)."""
    columns = SPOOL_COLUMNS + more
    marks = ", ".join([placeholder] * len(columns))
    return f"INSERT INTO spool ({', '.join(columns)}) VALUES ({marks})"


class DriverAppender:
    """Appends through one driver connection kept open between batches (used by one
    thread: the listener's writer). This INSERT is the listener's only per-message
    storage work under `--ack spool`; going around SQLAlchemy's statement machinery
    and the pool's per-checkout ping halves its CPU cost. A connection that fails
    is thrown away and the next batch opens a new one; the failure is a 451."""

    def __init__(self, store: Store, append: Callable[[Any, list[Submission]], list[int]]) -> None:
        self.store = store
        self.append_rows = append
        self.connection: Any = None

    def append(self, items: list[Submission]) -> list[SpoolReceipt]:
        return [SpoolReceipt(i) for i in self.run(lambda c: self.append_rows(c, items))]

    def run(self, work: Callable[[Any], T]) -> T:
        """`work` on the kept connection; driver errors become StoreUnavailable, and
        SpoolBusy when SQLite's write lock was taken (the statement wrote nothing)."""
        store = self.store
        try:
            self.connection = self.connection or store.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(store.failure("cannot open the spool", exc)) from exc
        try:
            return work(self.connection)
        except store.engine.dialect.loaded_dbapi.Error as exc:
            if _sqlite_busy(exc):  # the connection is sound: keep it
                raise SpoolBusy(store.failure("spool file busy", exc)) from exc
            self.connection.invalidate()  # whatever state it is in, it is not reused
            self.connection = None
            raise StoreUnavailable(store.failure("cannot write the spool", exc)) from exc

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _sqlite_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == SQLITE_BUSY


def _utc(item: Submission) -> datetime:
    """The receive time as naive UTC, the way UTCDateTime columns hold it."""
    return item.received_at.astimezone(UTC).replace(tzinfo=None)


def _values(item: Submission, received_at: object) -> tuple[object, ...]:
    row = _row(item)
    row["received_at"] = received_at
    return tuple(row.values())


def check_processors(store: Store, processors: int) -> None:
    """Refuse a processor count the store cannot use: SQLite has one writer at a time,
    so a second processor would only queue on its lock."""
    if processors < 1:
        raise ConfigError("at least one spool processor is needed")
    if processors > 1 and store.is_sqlite:
        raise ConfigError("SQLite keeps one writer: more than one processor needs PostgreSQL")


def open_spool(store: Store, org: Org | None = None, processors: int = 1) -> Spool:
    """The spool of `store`. An appender passes its org, so that PostgreSQL rows are
    partitioned by person (aliases merged); a processor says how many processors
    share the database, so that each leaves partitions to the others."""
    # The backends import this module's shared pieces, so they are imported here.
    from simulator.delivery.spool_postgres import TableSpool
    from simulator.delivery.spool_sqlite import FileSpool

    if store.is_sqlite:
        return FileSpool(store)
    return TableSpool(store, processors=processors, identity=org.identity if org else None)


def drain(
    spool: Spool,
    org: Org,
    mime_limits: MimeLimits,
    on_batch: Callable[[Sequence[DeliveryResult]], None] | None = None,
) -> int:
    """Process the spool until it is empty; the number of messages processed."""
    done = 0
    while True:
        results = spool.process(org, mime_limits)
        spool.prune()
        if not results:
            if not spool.backlog():
                return done
            time.sleep(HELD_POLL_SECONDS)  # rows another processor holds: wait for it
        done += len(results)
        if on_batch is not None and results:
            on_batch(results)
