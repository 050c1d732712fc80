"""Group commit: deliveries that arrive together are written in one transaction.

One thread owns the database writes. While it commits a batch, new deliveries
queue up; the next batch takes all of them (up to `max_batch`). Each delivery
runs inside its own SAVEPOINT, so a delivery that trips an unexpected error is
rolled back alone and stored as quarantined, while its batch-mates go on.
Callers are answered only after the batch's COMMIT returns: a 250 is never
given for something that is not on disk. When the commit fails, every member
of the batch gets StoreUnavailable (a 451), and nothing of the batch remains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from simulator.domain import Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.pipeline.batch import DEFAULT_BATCH, prepare, write_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS, MimeLimits
from simulator.store.db import Store

log = logging.getLogger("intake_sim.writer")
DEFAULT_MAX_BATCH = DEFAULT_BATCH


# A DeliveryResult, or a spool receipt when the writer only spools.
Pending = tuple[Submission, "asyncio.Future[Any]"]


class GroupCommitWriter:
    """Asyncio front of `write_batch`: `submit()` returns once the delivery is committed."""

    def __init__(
        self,
        store: Store,
        org: Org,
        max_batch: int = DEFAULT_MAX_BATCH,
        *,
        mime_limits: MimeLimits | None = None,
        prepared: bool = True,
        on_queued: Callable[[], None] | None = None,
        spool_batch: Callable[[list[Submission]], list[Any]] | None = None,
        spool_now: Callable[[list[Submission]], Awaitable[list[Any] | None]] | None = None,
    ) -> None:
        self.store = store
        self.org = org
        self.max_batch = max_batch
        self.mime_limits = mime_limits or DEFAULT_MIME_LIMITS
        # False while the store could not be prepared (down at start): retried per batch.
        self.prepared = prepared
        # Called after a COMMIT that left work for another party (automatic email queued,
        # or spooled messages), so that party looks at once.
        self.on_queued = on_queued
        # `serve --ack spool`: store the raw messages only (spool.append), not run intake.
        self.spool_batch = spool_batch
        # Its fast path, awaited on the event loop first: None means "use the thread".
        self.spool_now = spool_now
        # None is the stop sign: everything queued before it is still written.
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-writer")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def submit(self, item: Submission) -> Any:
        if self._closing:
            # A session still open at shutdown gets a retry, not a hang.
            raise StoreUnavailable("the listener is shutting down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            pending: list[Pending] = []
            entry = await self._queue.get()
            # Let the sessions whose DATA arrived in this same turn of the event loop
            # queue theirs too: one turn costs microseconds, and fewer, fuller batches
            # mean fewer hand-offs to the writer thread, which cost more than the writes.
            await asyncio.sleep(0)
            while entry is not None:
                pending.append(entry)
                if len(pending) >= self.max_batch or self._queue.empty():
                    break
                entry = self._queue.get_nowait()
            stopping = entry is None
            if pending:
                await self._write(pending)

    async def _write(self, pending: list[Pending]) -> None:
        items = [item for item, _ in pending]
        loop = asyncio.get_running_loop()
        try:
            results = await self._spool_on_loop(items)
            if results is None:
                results = await loop.run_in_executor(self._executor, self._write_batch, items)
        except Exception as exc:  # StoreUnavailable, or a bug: neither may kill the writer
            if not isinstance(exc, StoreUnavailable):
                log.exception("batch of %d failed", len(items))
            else:
                log.warning("batch of %d not stored: %s", len(items), exc)
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        if self.on_queued is not None and (
            self.spool_batch is not None or any(r.notifications for r in results)
        ):
            self.on_queued()
        for (_, future), result in zip(pending, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _spool_on_loop(self, items: list[Submission]) -> list[Any] | None:
        if self.spool_now is None or not self.prepared:
            return None
        return await self.spool_now(items)

    def _write_batch(self, items: list[Submission]) -> list[Any]:
        """On the writer thread: prepare the store first if that has not worked yet."""
        try:
            if not self.prepared:
                for change in prepare(self.store, self.org):
                    log.info("directory: %s %s", change.user, change)
                self.prepared = True
                log.info("storage is back: %s prepared", self.store.display_url)
            if self.spool_batch is not None:
                return self.spool_batch(items)
            began = time.perf_counter()
            results = write_batch(self.store, self.org, items, self.mime_limits)
            _share_batch_time(items, results, time.perf_counter() - began)
            return results
        except StoreUnavailable:
            # Drop pooled connections: one opened while the file was read-only, or whose
            # server went away, would keep failing after the storage is back.
            self.store.dispose()
            raise

    async def close(self) -> None:
        """Write everything already queued, then stop the writer thread."""
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
        self._executor.shutdown(wait=True)


def _share_batch_time(
    items: list[Submission], results: list[DeliveryResult], seconds: float
) -> None:
    """Add to each delivery's cost its share, by size, of the batch's time outside
    intake: the COMMIT, mostly, whose time grows with the bytes it writes and which
    every delivery of the batch waits for."""
    rest = seconds - sum(result.cost_seconds for result in results)
    size = sum(len(item.raw) for item in items)
    if rest <= 0 or not size:
        return
    for item, result in zip(items, results, strict=True):
        result.cost_seconds += rest * len(item.raw) / size
