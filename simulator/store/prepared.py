"""Core statements compiled once per dialect and run on the Session's own DBAPI cursor.

Why it exists: intake's statements are small (an index probe, a one-row insert),
and SQLAlchemy's work around each execution -- the compiled-cache lookup, an
execution context, `construct_params`, the result's set-up, event dispatch --
cost more than the database itself. Profiled over 2,000 benchmark messages on
SQLite (about 6 statements each), `Connection.execute` took 0.82 s of the
processor's 2.1 s, sqlite3's `cursor.execute` 0.11 s of it.

A `Prepared` statement does that work once per dialect and set of given keys:
the SQL text, the order of its parameters, the scalar defaults of the columns an
insert leaves out, and the bind and result processors of its column types
(`UTCDateTime`, `CleanText`, SQLite's DateTime strings ...), taken from
SQLAlchemy's own compiler and types, so the values sent are the ones
`Connection.execute` would send (a property test writes random values both ways
and compares the stored rows). Per call it only processes the values and calls
`cursor.execute` on the connection the Session holds: the same transaction and
SAVEPOINT, no autoflush (as `session.connection().execute` has none). A failure
is raised as SQLAlchemy raises it (its own exception handling wraps it, and
invalidates a connection that was lost).

What it cannot reproduce runs the plain way, `session.connection().execute`:
expanding or literal-execute parameters, non-scalar defaults, a missing
required value (so the error is SQLAlchemy's own), echo, and a connection or
dialect whose execution events are listened to (so a listener sees every
statement).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert, Select
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]
Row = tuple[Any, ...]
_MISSING = object()


@dataclass(frozen=True)
class _Bind:
    """One parameter: its name, where its value comes from, and its bind processor."""

    name: str
    default: Any  # the bind's own value or the column's scalar default; _MISSING when required
    process: Processor | None


@dataclass
class _Plan:
    """A statement as compiled for one dialect and one set of given keys."""

    sql: str
    binds: tuple[_Bind, ...]  # in parameter order when positional
    required: frozenset[str]  # the names that have no value of their own
    positional: bool
    returns_id: bool  # an INSERT ... RETURNING (the primary key, or the columns asked)
    dialect: Dialect
    result_types: tuple[Any, ...]  # the column types of the rows it returns
    results: tuple[Processor | None, ...] | None = None  # set at the first execution

    def complete(self, given: Mapping[str, Any]) -> bool:
        """Whether `given` holds every value the statement requires."""
        return given.keys() >= self.required

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The DBAPI parameters for `given` (which is complete)."""
        values = [
            given.get(bind.name, bind.default)
            if bind.process is None
            else bind.process(given.get(bind.name, bind.default))
            for bind in self.binds
        ]
        if self.positional:
            return values
        return {bind.name: value for bind, value in zip(self.binds, values, strict=True)}

    def processed(self, row: Row | None, description: Any) -> Row | None:
        if row is None:
            return None
        if self.results is None:
            self.results = _result_processors(self, description)
        if not any(self.results):
            return tuple(row)
        return tuple(
            value if p is None else p(value) for p, value in zip(self.results, row, strict=True)
        )


def _result_processors(plan: _Plan, description: Any) -> tuple[Processor | None, ...]:
    """What SQLAlchemy's result applies to each column, for the driver's column types."""
    dialect = plan.dialect
    return tuple(
        type_.dialect_impl(dialect).result_processor(dialect, column[1])
        for type_, column in zip(plan.result_types, description, strict=True)
    )


class Prepared:
    """A Core statement run without SQLAlchemy's per-execution machinery (see the module)."""

    def __init__(self, statement: Select[Any] | Insert) -> None:
        self.statement = statement
        # An insert's SQL depends on the columns given; a select's does not.
        self._keyed = isinstance(statement, Insert)
        # dialect -> given keys -> plan, or None where this statement runs the plain way
        self._plans: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Plan | None]]
        self._plans = weakref.WeakKeyDictionary()
        self._last: tuple[Dialect | None, dict[tuple[str, ...], _Plan | None]] = (None, {})

    def first(self, session: Session, given: Mapping[str, Any]) -> Row | None:
        """The first row (as a tuple), or None."""
        return self._run(session, given, _first, _plain_first)

    def one(self, session: Session, given: Mapping[str, Any]) -> Row:
        """The one row a statement that always returns one (an aggregate, a scalar select)."""
        row = self.first(session, given)
        if row is None:
            raise LookupError("the statement returned no row")
        return row

    def insert(self, session: Session, given: Mapping[str, Any]) -> int:
        """Run an INSERT of one row; its integer primary key, or the first column its
        RETURNING names."""
        return int(self._run(session, given, _new_id, _plain_id))

    def execute(self, session: Session, given: Mapping[str, Any]) -> None:
        """Run a statement whose result is not read."""
        self._run(session, given, _nothing, _plain_nothing)

    def _run(
        self,
        session: Session,
        given: Mapping[str, Any],
        read: Callable[[_Plan, Any], Any],
        plain: Callable[[Connection, Any, Mapping[str, Any]], Any],
    ) -> Any:
        connection = session.connection()
        plan = None if _watched(connection) else self._plan(connection.dialect, given)
        if plan is None or not plan.complete(given):
            return plain(connection, self.statement, given)
        cursor = parameters = None
        try:
            parameters = plan.parameters(given)
            cursor = connection.connection.dbapi_connection.cursor()
            cursor.execute(plan.sql, parameters)
            return read(plan, cursor)
        except BaseException as exc:
            # SQLAlchemy's own handling: the same wrapped error (IntegrityError, a
            # StatementError for a value a type refuses, ...), and a connection found
            # lost is invalidated.
            connection._handle_dbapi_exception(exc, plan.sql, parameters, cursor, None)
        finally:
            if cursor is not None:
                cursor.close()

    def _plan(self, dialect: Dialect, given: Mapping[str, Any]) -> _Plan | None:
        last_dialect, by_keys = self._last
        # The last dialect is held (one per statement): a process mostly has one engine.
        if last_dialect is not dialect:
            by_keys = self._plans.setdefault(dialect, {})
            self._last = (dialect, by_keys)
        keys = tuple(given) if self._keyed else ()
        if keys not in by_keys:
            by_keys[keys] = _compile(self.statement, dialect, keys)
        return by_keys[keys]


def _watched(connection: Connection) -> bool:
    """Whether anything listens to statements run on `connection` (or logs them)."""
    if connection._echo or connection.dialect._has_events:
        return True
    if not (connection._has_events or connection.engine._has_events):
        return False
    events = connection.dispatch
    return bool(
        events.before_execute
        or events.after_execute
        or events.before_cursor_execute
        or events.after_cursor_execute
    )


def _compile(
    statement: Select[Any] | Insert, dialect: Dialect, keys: tuple[str, ...]
) -> _Plan | None:
    """The plan of `statement` for `dialect` given `keys`; None for what it cannot run."""
    is_insert = isinstance(statement, Insert)
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if is_insert else None)
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    if compiled.escaped_bind_names:
        return None
    defaults = _insert_defaults(compiled)
    if defaults is None:
        return None
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = compiled.positiontup if compiled.positional else list(by_name)
    binds = []
    for name in names or ():
        bind = by_name[name]
        if bind.expanding or bind.callable is not None:
            return None
        if name in defaults:
            default = defaults[name]
        elif bind.required:
            default = _MISSING
        else:
            default = bind.value
        binds.append(_Bind(name, default, bind.type.dialect_impl(dialect).bind_processor(dialect)))
    returning = list(compiled.effective_returning or ())
    columns = list(returning) if is_insert else list(statement.selected_columns)
    return _Plan(
        sql=compiled.string,
        binds=tuple(binds),
        required=frozenset(b.name for b in binds if b.default is _MISSING),
        positional=compiled.positional,
        returns_id=bool(returning),
        dialect=dialect,
        result_types=tuple(column.type for column in columns),
    )


def _insert_defaults(compiled: SQLCompiler) -> dict[str, Any] | None:
    """The scalar Python defaults of the columns an insert leaves out, by bind name;
    None when one is not a plain value (a callable, a sequence, a SQL expression)."""
    defaults = {}
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not default.is_scalar:
            return None
        defaults[column.key] = default.arg
    return defaults


def _first(plan: _Plan, cursor: Any) -> Row | None:
    return plan.processed(cursor.fetchone(), cursor.description)


def _new_id(plan: _Plan, cursor: Any) -> int:
    return cursor.fetchone()[0] if plan.returns_id else cursor.lastrowid


def _nothing(_plan: _Plan, _cursor: Any) -> None:
    return None


def _plain_first(connection: Connection, statement: Any, given: Mapping[str, Any]) -> Row | None:
    row = connection.execute(statement, given).first()
    return None if row is None else tuple(row)


def _plain_id(connection: Connection, statement: Any, given: Mapping[str, Any]) -> int:
    inserted = connection.execute(statement, given)
    if statement.returning_column_descriptions:
        return int(inserted.scalar_one())
    return int(inserted.inserted_primary_key[0])


def _plain_nothing(connection: Connection, statement: Any, given: Mapping[str, Any]) -> None:
    connection.execute(statement, given)
