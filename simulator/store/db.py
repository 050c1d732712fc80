"""Engine and session factory: the one place that knows about connections.

Functions elsewhere take a Session and never commit; the unit of work is opened
at the pipeline's edge (one transaction per delivery or per batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from simulator.errors import ConfigError, StoreUnavailable
from simulator.store.models import Base

DEFAULT_DB_URL = "sqlite:///intake.db"
SQLITE_BUSY_TIMEOUT_MS = 5000


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


def make_engine(
    url: str, *, writer: bool = True, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine:
    """An engine for `url`; raises ConfigError for a malformed or unsupported URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}") from None
    try:
        engine = create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except (ImportError, ArgumentError) as exc:
        raise ConfigError(f"cannot use database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        _configure_sqlite(engine, write_lock_on_begin=writer, busy_timeout_ms=busy_timeout_ms)
    return engine


class Store:
    """An engine plus its session factory, with the schema created on open."""

    def __init__(
        self,
        url: str = DEFAULT_DB_URL,
        *,
        writer: bool = True,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    ) -> None:
        self.url = url
        self.engine = make_engine(url, writer=writer, busy_timeout_ms=busy_timeout_ms)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(self.failure("cannot open", exc)) from exc

    def has_schema(self) -> bool:
        try:
            return inspect(self.engine).has_table("deliveries")
        except SQLAlchemyError as exc:
            raise StoreUnavailable(self.failure("cannot open", exc)) from exc

    def failure(self, doing: str, exc: BaseException) -> str:
        return f"{doing} {self.display_url}: {describe_error(exc)}"

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

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


def describe_error(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement dump."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def open_store(
    url: str = DEFAULT_DB_URL, *, writer: bool = True, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Store:
    store = Store(url, writer=writer, busy_timeout_ms=busy_timeout_ms)
    store.create_schema()
    return store
