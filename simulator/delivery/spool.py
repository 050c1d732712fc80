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
  the transaction that stores their deliveries. Several processors (several
  listeners) take turns under an advisory lock, so messages run in spool order:
  a reply spooled after its original's 250 is never run before it.
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
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from simulator.delivery.writer import DEFAULT_MAX_BATCH
from simulator.domain import Channel, Submission
from simulator.errors import ConfigError, StoreUnavailable
from simulator.logs import setup_logging
from simulator.org import Org
from simulator.pipeline.batch import process_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import MimeLimits
from simulator.store.db import PG_CONNECT_TIMEOUT_SECONDS, Store
from simulator.store.models import SpooledMessage, SpoolMark, UTCDateTime

log = logging.getLogger("intake_sim.spool")
T = TypeVar("T")

# The advisory lock that lets one spool processor at a time work on a PostgreSQL database.
PG_SPOOL_LOCK_KEY = 0x1_7A4E_5154
# An SMTP envelope address cannot hold a line break; a comma it can (quoted local part).
RECIPIENT_SEPARATOR = "\n"
SPOOL_FILE_SUFFIX = "-spool"
# The processor yields the CPU to the listener: acknowledging is what clients wait for,
# and the backlog it leaves is worked off as soon as the listener is idle.
PROCESSOR_NICENESS = 19
# How often an appending listener deletes the SQLite spool rows the mark has passed.
PRUNE_SECONDS = 1.0
SQLITE_BUSY = 5  # the primary result code; extended codes keep it in the low byte
# The spool file's WAL is copied back into the file (checkpointed) by the processor,
# after each batch, in idle time: SQLite would otherwise do it in the committing
# connection every 1,000 pages (about 2,000 messages), on the listener's event loop,
# fsync included. The listener checkpoints only past this many pages (about 40 MiB),
# so the WAL stays bounded when no processor runs.
APPENDER_CHECKPOINT_PAGES = 10_000
# How long an idle processor sleeps when nobody wakes it (another listener's spool rows).
POLL_SECONDS = 0.5
# After a storage failure the processor waits this long before trying again.
RETRY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 30.0


class Ack(StrEnum):
    """When the listener answers 250 (`serve --ack`)."""

    INTAKE = "intake"  # after the pipeline's transaction has committed the delivery
    SPOOL = "spool"  # after the raw message is committed to the spool


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


class TableSpool:
    """PostgreSQL: the `spool` table of the database itself."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = SpooledMessage.__table__
        self.appender = DriverAppender(store, _pg_append)
        self.loop_appender = LoopAppender(store)

    def append(self, items: list[Submission]) -> list[SpoolReceipt]:
        return self.appender.append(items)

    async def append_on_loop(self, items: list[Submission]) -> list[SpoolReceipt] | None:
        return await self.loop_appender.append(items)

    async def close_on_loop(self) -> None:
        await self.loop_appender.close()

    def process(
        self, org: Org, mime_limits: MimeLimits, limit: int = DEFAULT_MAX_BATCH
    ) -> list[DeliveryResult]:
        """Run up to `limit` spooled messages through intake and delete them, in one
        transaction; raises StoreUnavailable when it cannot commit."""

        def work(session: Session) -> list[DeliveryResult]:
            # One processor at a time, in spool order, as on SQLite: a reply spooled
            # after its original's 250 must not be run before it by another processor.
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SPOOL_LOCK_KEY})
            query = select(self.table).order_by(self.table.c.id).limit(limit)
            claimed = [_spooled(row) for row in session.execute(query)]
            if not claimed:
                return []
            results = process_batch(session, org, [s.item for s in claimed], mime_limits)
            ids = [s.spool_id for s in claimed]
            session.execute(delete(self.table).where(self.table.c.id.in_(ids)))
            return results

        return self.store.transaction(work)

    def backlog(self) -> int:
        with self.store.read() as session:
            return session.scalar(select(func.count()).select_from(self.table)) or 0

    def prune(self) -> int:
        return 0  # rows leave the table in the transaction that stores their deliveries

    def dispose(self) -> None:
        self.appender.close()  # the store is the caller's


FILE_METADATA = MetaData()
# AUTOINCREMENT: ids are never reused after rows are deleted, so the mark stays right.
FILE_SPOOL = Table(
    "spool",
    FILE_METADATA,
    Column("id", Integer, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("envelope_from", Text, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)
# One row: this file's uuid, the key of its mark in the main database.
FILE_IDENTITY = Table(
    "spool_file",
    FILE_METADATA,
    Column("uuid", String(36), primary_key=True),
)


class FileSpool:
    """SQLite: a spool database file beside the main one (see the module's doc)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        url = f"sqlite:///{spool_file_path(store.url)}"
        self.files = Store(url, busy_timeout_ms=store.busy_timeout_ms)
        # Reads must not take the file's write lock, which the listener's appends need,
        # nor the main database's, which a processor holds while it runs a batch.
        self.reader = Store(url, writer=False, busy_timeout_ms=store.busy_timeout_ms)
        self.marks = Store(store.url, writer=False, busy_timeout_ms=store.busy_timeout_ms)
        self.appender = DriverAppender(self.files, _sqlite_append)
        # The listener's event loop appends through a connection that never waits for a
        # lock (busy_timeout 0): see append_now.
        self.nowait_files = Store(url, busy_timeout_ms=0)
        self.nowait = DriverAppender(self.nowait_files, _sqlite_append)
        for appending in (self.files, self.nowait_files):
            _checkpoint_late(appending)
        self._uuid: str | None = None
        self._pruned_to = 0  # the mark of the last prune: nothing below it is left
        self._pruned_at = -PRUNE_SECONDS  # monotonic time of the last prune

    @property
    def uuid(self) -> str:
        """The file's identity, creating the file on first use (so a listener whose
        disk is full at start still starts, and answers 451 until it is not)."""
        if self._uuid is None:
            try:
                FILE_METADATA.create_all(self.files.engine, checkfirst=True)
            except SQLAlchemyError as exc:
                raise StoreUnavailable(self.files.failure("cannot create the spool", exc)) from exc
            self._uuid = self.files.transaction(_file_uuid)
        return self._uuid

    def append(self, items: list[Submission]) -> list[SpoolReceipt]:
        assert self.uuid  # the file and its table exist
        receipts = self.appender.append(items)
        self._prune_after_append(self.appender)
        return receipts

    def append_now(self, items: list[Submission]) -> list[SpoolReceipt] | None:
        """Append on the caller's thread without waiting for the file's write lock; None
        when another writer holds it (nothing written), so the caller can hand the batch
        to a thread that may wait. The listener calls this on its event loop: an INSERT
        of a batch takes a fraction of a millisecond (no fsync: WAL, synchronous=NORMAL),
        less than handing it to a thread costs while the loop keeps the GIL busy."""
        if self._uuid is None:
            return None  # creating the file (which may fail) is the waiting path's job
        try:
            receipts = self.nowait.append(items)
        except SpoolBusy:
            return None
        self._prune_after_append(self.nowait)
        return receipts

    async def append_on_loop(self, items: list[Submission]) -> list[SpoolReceipt] | None:
        return self.append_now(items)  # never waits: see append_now

    async def close_on_loop(self) -> None:
        pass  # append_now's connection is a DriverAppender's, closed by dispose

    def _prune_after_append(self, appender: DriverAppender) -> None:
        """Prune at most every PRUNE_SECONDS. The rows are committed and their 250s are
        due: a failed clean-up is not a 451; the rows stay skipped under the mark and go
        with a later prune."""
        if time.monotonic() - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = time.monotonic()
        try:
            self.prune(appender)
        except SpoolBusy:
            pass  # another writer has the file; next time
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.warning("processed spool rows not deleted yet: %s", exc)

    def process(
        self, org: Org, mime_limits: MimeLimits, limit: int = DEFAULT_MAX_BATCH
    ) -> list[DeliveryResult]:
        """Run the oldest spooled messages past the mark through intake, moving the mark
        in the same transaction. The done rows stay in the spool file until the
        listener prunes them, so the processor never takes the file's write lock."""
        spool_file = self.uuid
        with self.reader.read() as session:
            query = select(FILE_SPOOL).where(FILE_SPOOL.c.id > self.done(spool_file))
            query = query.order_by(FILE_SPOOL.c.id).limit(limit)
            rows = [_spooled(row) for row in session.execute(query)]
        if not rows:
            return []
        last = rows[-1].spool_id

        def work(session: Session) -> list[DeliveryResult]:
            done = self._mark(session, spool_file)
            todo = [s.item for s in rows if s.spool_id > done]
            results = process_batch(session, org, todo, mime_limits) if todo else []
            if last > done:
                session.merge(SpoolMark(spool_file=spool_file, last_id=last))
            return results

        results = self.store.transaction(work)
        self._checkpoint()
        return results

    def _checkpoint(self) -> None:
        """Copy the spool file's WAL back into it (see APPENDER_CHECKPOINT_PAGES). A
        PASSIVE checkpoint takes no write lock: appends go on meanwhile."""
        try:
            connection = self.reader.engine.raw_connection()
            try:
                connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
        except (SQLAlchemyError, sqlite3.Error) as exc:  # the next batch tries again
            log.debug("spool file not checkpointed: %s", exc)

    @staticmethod
    def _mark(session: Session, spool_file: str) -> int:
        mark = session.get(SpoolMark, spool_file)
        return mark.last_id if mark is not None else 0

    def done(self, spool_file: str) -> int:
        """The mark as committed: every row up to it has its delivery."""
        with self.marks.read() as session:
            return self._mark(session, spool_file)

    def backlog(self) -> int:
        done = self.done(self.uuid)
        with self.reader.read() as session:
            waiting = select(func.count()).where(FILE_SPOOL.c.id > done)
            return session.scalar(waiting) or 0

    def prune(self, appender: DriverAppender | None = None) -> int:
        """Delete the rows the mark has passed; how many were deleted."""
        done = self.done(self.uuid)
        if done <= self._pruned_to:
            return 0
        gone = (appender or self.appender).run(
            lambda connection: connection.execute(PRUNE_DELETE, (done,)).rowcount
        )
        self._pruned_to = done
        return int(gone)

    def dispose(self) -> None:
        if self._uuid is not None:  # this object used the file: leave it holding what waits
            self._pruned_at = -PRUNE_SECONDS
            self._prune_after_append(self.appender)
        self.appender.close()
        self.nowait.close()
        self.nowait_files.dispose()
        self.files.dispose()
        self.reader.dispose()
        self.marks.dispose()


SPOOL_INSERT = (
    "INSERT INTO spool (received_at, envelope_from, recipients, channel, raw) "
    "VALUES ({0}, {0}, {0}, {0}, {0})"
)
PRUNE_DELETE = "DELETE FROM spool WHERE id <= ?"
# The text form SQLAlchemy's SQLite DateTime reads back (naive UTC, see UTCDateTime).
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


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


def _checkpoint_late(store: Store) -> None:
    @event.listens_for(store.engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint = {APPENDER_CHECKPOINT_PAGES}")


def _sqlite_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == SQLITE_BUSY


class LoopAppender:
    """PostgreSQL appends on the listener's event loop, through psycopg's asyncio
    connection kept open between batches. Handing each batch to the writer thread
    costs the listener more CPU than the INSERT itself: the thread and the event loop
    pass the GIL back and forth around every network wait. Here the loop awaits the
    round trips and the COMMIT and serves other sessions meanwhile. A connection
    that fails is closed and the next batch opens a new one; the failure is a 451."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.connection: Any = None

    async def append(self, items: list[Submission]) -> list[SpoolReceipt]:
        import psycopg

        if self.connection is None or self.connection.closed:
            self.connection = None
            dialect, url = self.store.engine.dialect, self.store.engine.url
            args, options = dialect.create_connect_args(url)
            options["connect_timeout"] = PG_CONNECT_TIMEOUT_SECONDS
            try:
                self.connection = await psycopg.AsyncConnection.connect(*args, **options)
            except psycopg.Error as exc:
                raise StoreUnavailable(self.store.failure("cannot open the spool", exc)) from exc
        try:
            ids = await _pg_append_on_loop(self.connection, items)
        except psycopg.Error as exc:
            await self.close()  # whatever state it is in, it is not reused
            raise StoreUnavailable(self.store.failure("cannot write the spool", exc)) from exc
        return [SpoolReceipt(i) for i in ids]

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()


def _utc(item: Submission) -> datetime:
    """The receive time as naive UTC, the way UTCDateTime columns hold it."""
    return item.received_at.astimezone(UTC).replace(tzinfo=None)


def _values(item: Submission, received_at: object) -> tuple[object, ...]:
    row = _row(item)
    row["received_at"] = received_at
    return tuple(row.values())


def _sqlite_append(connection: Any, items: list[Submission]) -> list[int]:
    """One multi-row INSERT per batch: the sqlite3 module gives up and retakes the GIL
    around every statement it runs, and on the listener each retake waits for the
    event loop, so one statement per batch instead of one per message (plus BEGIN
    and COMMIT) is what makes it cheap."""
    rows = SPOOL_INSERT.format("?").partition("VALUES ")
    statement = rows[0] + rows[1] + ", ".join([rows[2]] * len(items))
    values = [
        value for item in items for value in _values(item, _utc(item).strftime(SQLITE_DATETIME))
    ]
    # The engine runs the driver in autocommit mode, so this one statement is its own
    # transaction: all rows or none, committed when it returns.
    cursor = connection.cursor()
    cursor.execute(statement, values)
    last = cursor.lastrowid
    # Under the write lock, AUTOINCREMENT gives one statement's rows consecutive ids.
    return list(range(last - len(items) + 1, last + 1))


PG_APPEND = SPOOL_INSERT.format("%s") + " RETURNING id"


def _pg_rows(items: list[Submission]) -> list[tuple[object, ...]]:
    return [_values(item, _utc(item)) for item in items]


def _pg_append(connection: Any, items: list[Submission]) -> list[int]:
    cursor = connection.cursor()
    # psycopg pipelines the statements and keeps one result set per row, in order.
    cursor.executemany(PG_APPEND, _pg_rows(items), returning=True)
    ids = [cursor.fetchone()[0]]
    while cursor.nextset():
        ids.append(cursor.fetchone()[0])
    connection.commit()
    return ids


async def _pg_append_on_loop(connection: Any, items: list[Submission]) -> list[int]:
    """_pg_append through an asyncio connection."""
    cursor = connection.cursor()
    await cursor.executemany(PG_APPEND, _pg_rows(items), returning=True)
    ids = [(await cursor.fetchone())[0]]
    while cursor.nextset():
        ids.append((await cursor.fetchone())[0])
    await connection.commit()
    return ids


def _file_uuid(session: Session) -> str:
    found = session.scalar(select(FILE_IDENTITY.c.uuid))
    if found is None:
        found = str(uuid.uuid4())
        session.execute(insert(FILE_IDENTITY).values(uuid=found))
    return found


def spool_file_path(url: str) -> Path:
    """Where a SQLite database's spool lives: `intake.db` -> `intake.db-spool`."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ConfigError("--ack spool needs a database file or PostgreSQL, not :memory:")
    return Path(database + SPOOL_FILE_SUFFIX)


def open_spool(store: Store) -> Spool:
    return FileSpool(store) if store.is_sqlite else TableSpool(store)


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
            time.sleep(POLL_SECONDS)  # rows another processor holds: wait for it
        done += len(results)
        if on_batch is not None and results:
            on_batch(results)


# --- the processor process ------------------------------------------------------------


@dataclass(frozen=True)
class ProcessorConfig:
    """Everything the processor process needs; it is pickled into the child."""

    url: str
    org: Org
    mime_limits: MimeLimits
    busy_timeout_ms: int
    log_level: int


def run_processor(config: ProcessorConfig, wakeups: Connection, ready: Connection) -> None:
    """The processor's main loop, in its own process, until the listener closes the
    wake-up pipe (a clean stop) or dies (the kernel closes it)."""
    setup_logging(config.log_level)
    _yield_the_cpu()
    store = Store(config.url, busy_timeout_ms=config.busy_timeout_ms)
    ready.send_bytes(b"ready")  # imports done: the listener may open its port
    ready.close()
    spool: Spool | None = None
    pause = 0.0  # nothing to wait for while a backlog is being worked off
    try:
        while _listener_there(wakeups.fileno(), pause):
            try:
                spool = spool or open_spool(store)
                results = spool.process(config.org, config.mime_limits)
            except StoreUnavailable as exc:
                log.warning("spool not processed: %s", exc)
                store.dispose()
                pause = RETRY_SECONDS
                continue
            for result in results:
                log.info(result.log_line())
            pause = 0.0 if results else POLL_SECONDS
    finally:
        if spool is not None:
            spool.dispose()
        store.dispose()


def _yield_the_cpu() -> None:
    """The lowest priority this process can give itself. On Linux SCHED_IDLE, beyond
    nice 19: a waking listener or client always preempts it, and the scheduler
    counts a core running only it as idle when it places them."""
    os.nice(PROCESSOR_NICENESS)
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is None:
        return
    try:
        os.sched_setscheduler(0, idle, os.sched_param(0))
    except OSError as exc:  # a container may forbid it; nice 19 still holds
        log.debug("spool processor stays at nice %d: %s", PROCESSOR_NICENESS, exc)


def _listener_there(fd: int, timeout: float) -> bool:
    """Wait up to `timeout` for a wake-up; False once the pipe is closed (stop)."""
    if not wait([fd], timeout):
        return True
    return os.read(fd, 65536) != b""  # b"": end of file, every write end is closed


class SpoolProcessor:
    """The listener's handle on its processor process: start, wake, stop.

    A pipe carries the wake-ups, one byte each, and not a shared lock or event:
    a listener killed while holding one would leave the processor stuck on it,
    whereas a pipe whose writer dies simply reads as closed, so the processor
    stops when its listener is gone however that happened.
    """

    def __init__(self, config: ProcessorConfig) -> None:
        # spawn, not fork: the listener has an event loop and threads a fork would copy.
        context: Any = multiprocessing.get_context("spawn")
        self._wakeups, self._waker = context.Pipe(duplex=False)
        self._ready, self._ready_writer = context.Pipe(duplex=False)
        self._process = context.Process(
            target=run_processor,
            args=(config, self._wakeups, self._ready_writer),
            name="intake-sim-spool",
            daemon=True,
        )

    def start(self) -> None:
        """Start the process and wait until it has imported what it needs, so that its
        start-up (a second or so of CPU) is over before the listener takes mail."""
        self._process.start()
        # The child has its own copies; ours would hide a pipe the child closed.
        self._wakeups.close()
        self._ready_writer.close()
        # Never block the event loop: a full pipe already holds enough wake-ups.
        os.set_blocking(self._waker.fileno(), False)
        try:
            if not self._ready.poll(STOP_TIMEOUT_SECONDS):
                raise EOFError
            self._ready.recv_bytes()
        except (EOFError, OSError):
            # The listener still spools; the next processor or `drain` runs the messages.
            log.warning("spool processor did not start; messages stay spooled")
        finally:
            self._ready.close()
        log.info("spool processor started (pid %s)", self._process.pid)

    def wake(self) -> None:
        try:
            os.write(self._waker.fileno(), b"!")
        except BlockingIOError:
            pass
        except OSError as exc:  # the processor is gone; the spool keeps what we accept
            log.warning("spool processor unreachable (%s); messages stay spooled", exc)

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def stop(self) -> None:
        """Close the pipe: the processor finishes the batch in hand and exits; what is
        left stays in the spool for the next processor or `intake-sim drain`."""
        self._waker.close()
        self._process.join(STOP_TIMEOUT_SECONDS)
        if self._process.is_alive():
            log.warning("spool processor did not stop in time; terminating it")
            self._process.terminate()
            self._process.join()
