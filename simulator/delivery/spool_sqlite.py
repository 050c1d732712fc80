"""The SQLite spool: a file of its own beside the database (`<database>-spool`).

FileSpool appends to that file, processes its rows under the main database's
write lock and moves the mark (`spool_marks`) past them; the rows the mark has
passed are pruned by the listener and by `drain` (see simulator.delivery.spool).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from simulator.delivery.spool import (
    DriverAppender,
    SpoolBusy,
    SpoolReceipt,
    _spooled,
    _utc,
    _values,
    spool_insert,
)
from simulator.delivery.writer import DEFAULT_MAX_BATCH
from simulator.domain import Submission
from simulator.errors import ConfigError, StoreUnavailable
from simulator.org import Org
from simulator.pipeline.batch import process_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import MimeLimits
from simulator.store.db import Store
from simulator.store.models import SpoolMark, UTCDateTime

log = logging.getLogger("intake_sim.spool")

SPOOL_FILE_SUFFIX = "-spool"
# How often an appending listener deletes the SQLite spool rows the mark has passed.
PRUNE_SECONDS = 1.0
# The spool file's WAL is copied back into the file (checkpointed) by the processor,
# after each batch, in idle time: SQLite would otherwise do it in the committing
# connection every 1,000 pages (about 2,000 messages), on the listener's event loop,
# fsync included. The listener checkpoints only past this many pages (about 40 MiB),
# so the WAL stays bounded when no processor runs.
APPENDER_CHECKPOINT_PAGES = 10_000
# SQLite as Debian builds it zeroes every page a DELETE frees, and in WAL mode that is a
# page written to the WAL for each: two thirds of the cost of the listener's prune, 9 us
# a message. FAST zeroes only what costs no extra write. The pruned rows' bytes are kept
# in the main database's deliveries anyway (every delivery keeps its raw bytes).
APPENDER_SECURE_DELETE = "FAST"


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
    Column("peer", Text, nullable=False, server_default=""),
    sqlite_autoincrement=True,
)
# One row: this file's uuid, the key of its mark in the main database.
FILE_IDENTITY = Table(
    "spool_file",
    FILE_METADATA,
    Column("uuid", String(36), primary_key=True),
)


class FileSpool:
    """SQLite: a spool database file beside the main one (see simulator.delivery.spool)."""

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
                _add_peer_column(self.files)
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


PRUNE_DELETE = "DELETE FROM spool WHERE id <= ?"


def sqlite_datetime(naive_utc: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime writes and reads back (naive UTC, see
    UTCDateTime): `2026-12-03 06:00:00.000000`. isoformat, not strftime: a tenth of
    its cost, and the year is always four digits, as SQLAlchemy writes it."""
    return naive_utc.isoformat(" ", "microseconds")


def _checkpoint_late(store: Store) -> None:
    """The appending connections' settings: the late checkpoint, and deletes that do not
    write every freed page (see APPENDER_SECURE_DELETE)."""

    @event.listens_for(store.engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint = {APPENDER_CHECKPOINT_PAGES}")
        dbapi_connection.execute(f"PRAGMA secure_delete = {APPENDER_SECURE_DELETE}")


def _sqlite_append(connection: Any, items: list[Submission]) -> list[int]:
    """One multi-row INSERT per batch: the sqlite3 module gives up and retakes the GIL
    around every statement it runs, and on the listener each retake waits for the
    event loop, so one statement per batch instead of one per message (plus BEGIN
    and COMMIT) is what makes it cheap."""
    rows = spool_insert("?").partition("VALUES ")
    statement = rows[0] + rows[1] + ", ".join([rows[2]] * len(items))
    values = [value for item in items for value in _values(item, sqlite_datetime(_utc(item)))]
    # The engine runs the driver in autocommit mode, so this one statement is its own
    # transaction: all rows or none, committed when it returns.
    cursor = connection.cursor()
    cursor.execute(statement, values)
    last = cursor.lastrowid
    # Under the write lock, AUTOINCREMENT gives one statement's rows consecutive ids.
    return list(range(last - len(items) + 1, last + 1))


def _add_peer_column(files: Store) -> None:
    """A spool file written before the client's address was kept gains its column."""
    with files.engine.begin() as connection:
        columns = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(spool)")}
        if "peer" not in columns:
            connection.exec_driver_sql("ALTER TABLE spool ADD COLUMN peer TEXT NOT NULL DEFAULT ''")


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
        raise ConfigError("a spool needs a database file or PostgreSQL, not :memory:")
    return Path(database + SPOOL_FILE_SUFFIX)
