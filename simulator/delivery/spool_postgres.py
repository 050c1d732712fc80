"""The PostgreSQL spool: the `spool` table of the database itself.

TableSpool deletes the rows it processes in the transaction that stores their
deliveries, one processor at a time under an advisory lock; the listener appends
on its event loop through psycopg's asyncio connection (LoopAppender).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from simulator.delivery.spool import (
    SPOOL_INSERT,
    DriverAppender,
    SpoolReceipt,
    _spooled,
    _utc,
    _values,
)
from simulator.delivery.writer import DEFAULT_MAX_BATCH
from simulator.domain import Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.pipeline.batch import process_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import MimeLimits
from simulator.store.db import PG_CONNECT_TIMEOUT_SECONDS, Store
from simulator.store.models import SpooledMessage

# The advisory lock that lets one spool processor at a time work on a PostgreSQL database.
PG_SPOOL_LOCK_KEY = 0x1_7A4E_5154


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
