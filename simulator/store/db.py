"""Engine and session factory: the one place that knows about connections.

Functions elsewhere take a Session and never commit; the unit of work is opened
at the pipeline's edge (one transaction per delivery or per batch).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from simulator import __version__
from simulator.defaults import DEFAULT_DB_URL, SQLITE_BUSY_TIMEOUT_MS
from simulator.errors import ConfigError, SchemaMismatch, StoreUnavailable
from simulator.store import schema

log = logging.getLogger("intake_sim.store")

PG_CONNECT_TIMEOUT_SECONDS = 10
# How often a transaction that lost a race to another writer is run again.
CONFLICT_ATTEMPTS = 5
# SQLSTATEs a rerun can cure: unique_violation, serialization_failure, deadlock_detected.
PG_CONFLICTS = frozenset({"23505", "40001", "40P01"})
SQLITE_CONFLICTS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})

T = TypeVar("T")


def _configure_sqlite(
    engine: Engine, *, write_lock_on_begin: bool, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    """WAL, foreign keys, a busy timeout, and transactions that really BEGIN.

    pysqlite defers BEGIN until the first write, which breaks SAVEPOINT and lets
    two writers deadlock on lock upgrade; SQLAlchemy's documented remedy is to
    take over BEGIN ourselves. A writer asks for the write lock up front
    (BEGIN IMMEDIATE) so it waits on busy_timeout instead of failing mid-way.
    WAL with synchronous=NORMAL survives a process crash, not a power loss.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if _is_file_database(engine):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if write_lock_on_begin else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _is_file_database(engine: Engine) -> bool:
    database = engine.url.database
    return bool(database) and database != ":memory:"


def _url_hint(url: str) -> str:
    """A bare path is the commonest slip: show its URL form."""
    if "://" in url or not url.strip():
        return ""
    return f"; an SQLite file is written sqlite:///{Path(url).expanduser()}"


def missing_sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names, when it is not there; None for anything else.

    Read-only commands check this first: opening the URL would create the file."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    path = Path(url.removeprefix("sqlite:///"))
    return None if path.exists() else path


def make_engine(
    url: str, *, writer: bool = True, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine:
    """An engine for `url`; raises ConfigError for a malformed or unsupported URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}{_url_hint(url)}") from None
    backend = parsed.get_backend_name()
    # Without a timeout an unreachable PostgreSQL host hangs start-up for minutes.
    connect_args = (
        {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS} if backend == "postgresql" else {}
    )
    try:
        # pre_ping: after a PostgreSQL restart, the next batch reconnects instead of failing.
        engine = create_engine(parsed, pool_pre_ping=backend != "sqlite", connect_args=connect_args)
    except ImportError as exc:
        # PostgreSQL's driver is an extra, so the demo's install stays small.
        hint = (
            " (install it with: pip install 'intake-sim[postgresql]')"
            if backend != "sqlite"
            else ""
        )
        raise ConfigError(f"cannot use database URL {url!r}: {exc}{hint}") from None
    except ArgumentError as exc:
        raise ConfigError(f"cannot use database URL {url!r}: {exc}") from None
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        _configure_sqlite(engine, write_lock_on_begin=writer, busy_timeout_ms=busy_timeout_ms)
    return engine


class Store:
    """An engine plus its session factory; open_store() also brings the schema up."""

    def __init__(
        self,
        url: str = DEFAULT_DB_URL,
        *,
        writer: bool = True,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    ) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.engine = make_engine(url, writer=writer, busy_timeout_ms=busy_timeout_ms)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def revision(self) -> str | None:
        """The schema revision the database is at; None when it is empty."""
        try:
            return schema.current_revision(self.engine)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(self.failure("cannot open", exc)) from exc

    def upgrade(self) -> None:
        """Bring the database to the schema this intake-sim needs (creating it if empty)."""
        try:
            schema.upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(self.failure("cannot upgrade", exc)) from exc

    def ensure_schema(self) -> None:
        """For commands that write: create an empty database, upgrade an older
        SQLite file, and refuse any other database not at the current schema."""
        current, head = self.revision(), schema.head_revision()
        if current == head:
            return
        self._refuse_unknown(current)
        if current is not None and not self.is_sqlite:
            # A listener started beside us may be upgrading right now: let it finish.
            schema.wait_for_upgrade(self.engine)
            current = self.revision()
            if current == head:
                return
            raise SchemaMismatch(self._outdated(current, head))
        if current is not None:
            log.info("upgrading %s from schema %s to %s", self.display_url, current, head)
        self.upgrade()

    def check_schema(self) -> None:
        """For commands that only read: the database must hold data at the current schema."""
        if schema.at_plain_head(self.engine):
            return
        current, head = self.revision(), schema.head_revision()
        if current is None:
            raise ConfigError(f"{self.display_url} holds no intake-sim data yet")
        self._refuse_unknown(current)
        if current != head:
            raise SchemaMismatch(self._outdated(current, head))

    def _refuse_unknown(self, current: str | None) -> None:
        if current is not None and current not in schema.known_revisions():
            raise SchemaMismatch(
                f"{self.display_url} is at schema {current}, which intake-sim {__version__} "
                "does not know (made by a newer version?)"
            )

    def _outdated(self, current: str, head: str) -> str:
        return (
            f"{self.display_url} is at schema {current}, intake-sim needs {head}: "
            f"run `intake-sim db upgrade --db {self.display_url}`"
        )

    def failure(self, doing: str, exc: BaseException) -> str:
        return f"{doing} {self.display_url}: {describe_error(exc)}"

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def transaction(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction and commit; rerun it when it lost a race.

        Several listeners may write one PostgreSQL database. When two of them
        create the same fact at once, a unique key fails one transaction (or
        the server aborts it as a deadlock); everything it did is rolled back
        and `work` runs again from the start, now seeing the other's committed
        rows. After CONFLICT_ATTEMPTS, or on any other storage error, raises
        StoreUnavailable (the listener answers 451 and the client retries).
        """
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                with self.sessions.begin() as session:
                    return work(session)
            except SQLAlchemyError as exc:
                if attempt == CONFLICT_ATTEMPTS or not is_conflict(exc):
                    raise StoreUnavailable(self.failure("cannot write", exc)) from exc
                log.info("lost a race to another writer (%s); rerunning", describe_error(exc))
                # A little jitter, so that two losers of a deadlock do not meet again.
                time.sleep(random.uniform(0, 0.01 * attempt))
        raise AssertionError("unreachable")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; storage errors become StoreUnavailable."""
        try:
            with self.sessions() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreUnavailable(self.failure("cannot read", exc)) from exc

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Close pooled connections now: PostgreSQL ones are sessions on the server.
        self.dispose()


def is_conflict(exc: BaseException) -> bool:
    """True for errors that running the same transaction again can cure."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return sqlstate in PG_CONFLICTS
    name = getattr(orig, "sqlite_errorname", "")
    return name in SQLITE_CONFLICTS or name.startswith("SQLITE_BUSY")


def describe_error(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement dump."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def open_store(
    url: str = DEFAULT_DB_URL, *, writer: bool = True, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Store:
    """A store whose schema is current (see Store.ensure_schema)."""
    store = Store(url, writer=writer, busy_timeout_ms=busy_timeout_ms)
    try:
        store.ensure_schema()
    except BaseException:
        store.dispose()
        raise
    return store
