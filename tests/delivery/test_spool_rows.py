"""The SQLite spool's rows as the listener writes and prunes them: the receive time in
the text SQLAlchemy itself writes for a DateTime, so the processor's reads (through
SQLAlchemy) get the same moment back; a prune that writes little."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from simulator.delivery.spool_sqlite import PRUNE_DELETE, FileSpool, sqlite_datetime
from simulator.domain import Submission
from simulator.store.db import Store

DATETIME = sqlite.DATETIME()
WRITE = DATETIME.bind_processor(sqlite.dialect())
READ = DATETIME.result_processor(sqlite.dialect(), None)
ZONES = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
MOMENTS = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES
)


@given(MOMENTS)
def test_the_text_is_sqlalchemys_own(moment: datetime) -> None:
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None)
    assert WRITE is not None and READ is not None
    assert sqlite_datetime(naive_utc) == WRITE(naive_utc)
    assert READ(sqlite_datetime(naive_utc)) == naive_utc


def test_a_prune_does_not_write_each_freed_page(tmp_path: Path) -> None:
    """The listener prunes the SQLite spool as it appends; a DELETE that zeroed every
    page it freed wrote each to the WAL, two thirds of the prune's cost."""
    store = Store(f"sqlite:///{tmp_path / 'intake.db'}")
    spool = FileSpool(store)
    try:
        raw = b"Subject: rows\r\n\r\n" + b"x" * 2000
        item = Submission(raw, "a@customer.example", ["support@acme.example"], datetime.now(UTC))
        last = spool.append([item] * 400)[-1].spool_id
        spool.appender.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        pages = spool.appender.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        spool.appender.run(lambda c: c.execute(PRUNE_DELETE, (last,)))
        # (busy, frames in the WAL, frames checkpointed): the WAL holds what the DELETE wrote.
        _, written, _ = spool.appender.run(
            lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        )
        assert pages > 150
        assert written < pages / 10
    finally:
        spool.dispose()
        store.dispose()
