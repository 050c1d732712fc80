"""The SQLite spool row's receive time is written in the text SQLAlchemy itself writes
for a DateTime, so the processor's reads (through SQLAlchemy) get the same moment back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from simulator.delivery.spool_sqlite import sqlite_datetime

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
