"""The PostgreSQL spool: the `spool` table of the database itself.

TableSpool deletes the rows it processes in the transaction that stores their
deliveries; the listener appends on its event loop through psycopg's asyncio
connection (LoopAppender).

Several processors work at once, each on partitions of its own. Order matters
only within a conversation, and what orders intake is known when a message is
spooled: its sender (flood counts, who is new, which mail of theirs is first) and
the ids it answers. So each row carries its sender's partition (a hash of the
address, SPOOL_PARTITIONS of them) and its Message-ID and answered ids. A
processor holds partitions under transaction-scoped advisory locks, runs only
their rows and in spool order, and holds back a row whose original (or an earlier
copy of the same Message-ID) is still spooled, at a lower id, in a partition it
does not hold: such a row and the rest of its partition wait for a later batch.
Waits only ever point at lower spool ids, so the oldest row never waits and the
spool always drains. The guarantee this keeps is the one spool order gave: a
message spooled after another's 250 is never run before it when it answers it.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from simulator.defaults import SPOOL_PARTITIONS
from simulator.delivery.spool import (
    DriverAppender,
    Spooled,
    SpoolReceipt,
    _spooled,
    _utc,
    _values,
    spool_insert,
)
from simulator.delivery.writer import DEFAULT_MAX_BATCH
from simulator.domain import Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.pipeline.batch import process_batch
from simulator.pipeline.intake import MESSAGE_ID_MAX, DeliveryResult
from simulator.pipeline.parse import MimeLimits, mailbox_key, ordering
from simulator.store.db import PG_CONNECT_TIMEOUT_SECONDS, Store
from simulator.store.models import SpooledMessage, storable_text

log = logging.getLogger("intake_sim.spool")

# The first key of the two-key advisory locks on spool partitions (the second is the
# partition). Two-key locks never meet the one-key ones (schema.PG_UPGRADE_LOCK_KEY).
PG_SPOOL_PARTITION_LOCK = 0x7A4E_5154
# Answered ids kept per row: the original still spooled is the direct parent, or near it.
ANSWERS_KEPT = 20
ANSWER_SEPARATOR = "\n"  # an id holds no whitespace (parse._message_id drops it)

Identity = Callable[[str], str]


def partition_of(sender: str | None, identity: Identity | None = None) -> int:
    """The spool partition of a sender (normalised, as intake resolves it): one person,
    one partition, so that their mail is run in the order it came. A `+tag` does not
    count (it reaches the same mailbox), nor, given the org's `identity`, an alias.
    crc32, not hash(): every process must agree on it."""
    if not sender:
        return 0
    person = mailbox_key(identity(sender) if identity else sender)
    return zlib.crc32(person.encode("utf-8", "surrogatepass")) % SPOOL_PARTITIONS


@dataclass(frozen=True)
class Claimed:
    """A spooled message in a held partition, with what orders it."""

    spooled: Spooled
    partition: int
    message_id: str
    answers: tuple[str, ...]

    @property
    def spool_id(self) -> int:
        return self.spooled.spool_id

    @property
    def waits_on(self) -> tuple[str, ...]:
        """Ids whose earlier spooled message must run first: an original it answers,
        or a first copy of its own Message-ID (so that copy stays the one stored)."""
        return (self.message_id, *self.answers) if self.message_id else self.answers


class TableSpool:
    """PostgreSQL: the `spool` table of the database itself.

    `processors` is how many processors the caller runs on this database: each
    batch holds at most its share of the partitions, so that the others find
    partitions left when the backlog is small. `identity` (the org's) maps a
    sender's aliases onto one person when rows are appended."""

    def __init__(
        self, store: Store, *, processors: int = 1, identity: Identity | None = None
    ) -> None:
        self.store = store
        self.table = SpooledMessage.__table__
        self.processors = min(max(1, processors), SPOOL_PARTITIONS)
        self.share = math.ceil(SPOOL_PARTITIONS / self.processors)
        # Batches scanned for partitions: with one processor exactly one (spool order, as
        # ever); with more, twice their number, so that each finds a full batch beside
        # the partitions the others hold.
        self.window = 1 if self.processors == 1 else 2 * self.processors
        self.identity = identity
        self.appender = DriverAppender(store, self._append_rows)
        self.loop_appender = LoopAppender(store, self._rows)

    def _rows(self, items: list[Submission]) -> list[tuple[object, ...]]:
        return [(*_values(item, _utc(item)), *self._ordering(item)) for item in items]

    def _ordering(self, item: Submission) -> tuple[int, str, str]:
        """The row's partition, Message-ID and answered ids, read from its headers.

        Every id is cut to the length intake keeps whole: an index entry has a size
        limit, and one stranger's over-long id must not fail the whole append (a
        451 for every message of the batch). Cut alike on both sides, ids still
        match; two that share their first 255 characters only order more strictly."""
        found = ordering(item.raw, item.envelope_from)
        answers = ANSWER_SEPARATOR.join(a[:MESSAGE_ID_MAX] for a in found.answers[:ANSWERS_KEPT])
        return (
            partition_of(found.sender, self.identity),
            storable_text((found.message_id or "")[:MESSAGE_ID_MAX]),
            storable_text(answers),
        )

    def _append_rows(self, connection: Any, items: list[Submission]) -> list[int]:
        return _pg_append(connection, self._rows(items))

    def append(self, items: list[Submission]) -> list[SpoolReceipt]:
        return self.appender.append(items)

    async def append_on_loop(self, items: list[Submission]) -> list[SpoolReceipt] | None:
        return await self.loop_appender.append(items)

    async def close_on_loop(self) -> None:
        await self.loop_appender.close()

    def process(
        self, org: Org, mime_limits: MimeLimits, limit: int = DEFAULT_MAX_BATCH
    ) -> list[DeliveryResult]:
        """Run up to `limit` spooled messages of the partitions this processor can hold
        through intake and delete them, in one transaction; raises StoreUnavailable
        when it cannot commit. [] when every partition with rows is held elsewhere, or
        every row it holds waits for an original another processor holds."""

        def work(session: Session) -> list[DeliveryResult]:
            held, last = self._hold_partitions(session, limit)
            if not held:
                return []
            # Not past the rows scanned: a row spooled since then in a held partition
            # would jump ahead of older rows in the others.
            query = select(self.table).where(
                self.table.c.partition_key.in_(held), self.table.c.id <= last
            )
            claimed = [
                _claimed(row)
                for row in session.execute(query.order_by(self.table.c.id).limit(limit))
            ]
            runnable = self._runnable(session, claimed, held)
            if len(runnable) < len(claimed):
                log.debug(
                    "%d spooled message(s) wait for their originals", len(claimed) - len(runnable)
                )
            if not runnable:
                return []
            results = process_batch(session, org, [c.spooled.item for c in runnable], mime_limits)
            ids = [c.spool_id for c in runnable]
            session.execute(delete(self.table).where(self.table.c.id.in_(ids)))
            return results

        return self.store.transaction(work)

    def _hold_partitions(self, session: Session, limit: int) -> tuple[list[int], int]:
        """Lock partitions, those of the oldest rows first, until they hold `limit` of
        the rows scanned or this processor's share of partitions; with the last id
        scanned (see `window`: with one processor a batch is exactly the oldest
        `limit` rows, in spool order, as it always was).
        The locks end with the transaction; a lock taken means its last holder has
        committed, so the rows read next are what that holder left."""
        scan = select(self.table.c.id, self.table.c.partition_key).order_by(self.table.c.id)
        scanned = session.execute(scan.limit(limit * self.window)).all()
        rows_in: dict[int, int] = {}  # partition -> rows scanned, oldest partition first
        for row in scanned:
            rows_in[row.partition_key] = rows_in.get(row.partition_key, 0) + 1
        # One look at who holds what, so that a processor whose partitions are all held
        # elsewhere (it polls every HELD_POLL_SECONDS) does not try each of them in turn.
        taken = set(session.scalars(HELD_PARTITIONS, {"key": PG_SPOOL_PARTITION_LOCK}))
        held: list[int] = []
        rows = 0
        for partition, count in rows_in.items():
            if rows >= limit or len(held) >= self.share:
                break
            if partition not in taken and session.scalar(
                TRY_PARTITION_LOCK, {"key": PG_SPOOL_PARTITION_LOCK, "partition": partition}
            ):
                held.append(partition)
                rows += count
        return held, scanned[-1].id if scanned else 0

    def _runnable(
        self, session: Session, claimed: list[Claimed], held: Sequence[int]
    ) -> list[Claimed]:
        """The claimed rows that may run now, in spool order: not those whose original
        is still spooled at a lower id in a partition not held, nor whose original is
        held back here, nor any later row of a partition where one was held back."""
        wanted = {ident for c in claimed for ident in c.waits_on}
        earliest: dict[str, int] = {}
        if wanted:
            elsewhere = (
                select(self.table.c.message_id, func.min(self.table.c.id))
                .where(self.table.c.message_id.in_(wanted))
                .where(self.table.c.partition_key.not_in(held))
                .group_by(self.table.c.message_id)
            )
            earliest = {ident: first for ident, first in session.execute(elsewhere)}
        runnable: list[Claimed] = []
        waiting_partitions: set[int] = set()
        waiting_ids: set[str] = set()
        for c in claimed:
            waits = (
                c.partition in waiting_partitions
                or any(earliest.get(ident, c.spool_id) < c.spool_id for ident in c.waits_on)
                or not waiting_ids.isdisjoint(c.waits_on)
            )
            if not waits:
                runnable.append(c)
                continue
            waiting_partitions.add(c.partition)
            if c.message_id:
                waiting_ids.add(c.message_id)
        return runnable

    def backlog(self) -> int:
        with self.store.read() as session:
            return session.scalar(select(func.count()).select_from(self.table)) or 0

    def prune(self) -> int:
        return 0  # rows leave the table in the transaction that stores their deliveries

    def dispose(self) -> None:
        self.appender.close()  # the store is the caller's


class LoopAppender:
    """PostgreSQL appends on the listener's event loop, through psycopg's asyncio
    connection kept open between batches. Handing each batch to the writer thread
    costs the listener more CPU than the INSERT itself: the thread and the event loop
    pass the GIL back and forth around every network wait. Here the loop awaits the
    round trips and the COMMIT and serves other sessions meanwhile. A connection
    that fails is closed and the next batch opens a new one; the failure is a 451."""

    def __init__(
        self, store: Store, rows: Callable[[list[Submission]], list[tuple[object, ...]]]
    ) -> None:
        self.store = store
        self.rows = rows
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
            ids = await _pg_append_on_loop(self.connection, self.rows(items))
        except psycopg.Error as exc:
            await self.close()  # whatever state it is in, it is not reused
            raise StoreUnavailable(self.store.failure("cannot write the spool", exc)) from exc
        return [SpoolReceipt(i) for i in ids]

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()


# The spool's own columns, then what orders the row (TableSpool._ordering's, in order).
PG_APPEND = spool_insert("%s", ("partition_key", "message_id", "answers")) + " RETURNING id"
# Partitions other sessions of this database hold now (a two-key lock's second key is
# its objid); a lock taken or let go a moment later is found by the try itself.
HELD_PARTITIONS = text(
    "SELECT objid::integer FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
    " AND classid::bigint = :key AND granted AND database ="
    " (SELECT oid FROM pg_database WHERE datname = current_database())"
)
TRY_PARTITION_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(CAST(:key AS integer), CAST(:partition AS integer))"
)


def _claimed(row: Any) -> Claimed:
    answers = tuple(row.answers.split(ANSWER_SEPARATOR)) if row.answers else ()
    return Claimed(_spooled(row), row.partition_key, row.message_id, answers)


def _pg_append(connection: Any, rows: list[tuple[object, ...]]) -> list[int]:
    cursor = connection.cursor()
    # psycopg pipelines the statements and keeps one result set per row, in order.
    cursor.executemany(PG_APPEND, rows, returning=True)
    ids = [cursor.fetchone()[0]]
    while cursor.nextset():
        ids.append(cursor.fetchone()[0])
    connection.commit()
    return ids


async def _pg_append_on_loop(connection: Any, rows: list[tuple[object, ...]]) -> list[int]:
    """_pg_append through an asyncio connection."""
    cursor = connection.cursor()
    await cursor.executemany(PG_APPEND, rows, returning=True)
    ids = [(await cursor.fetchone())[0]]
    while cursor.nextset():
        ids.append((await cursor.fetchone())[0])
    await connection.commit()
    return ids
