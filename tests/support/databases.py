"""Databases under test: the SQLite/PostgreSQL backends and fresh databases on either."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.store.db import Store

PG_ENV = "INTAKE_SIM_TEST_PG"
PG_SKIP = f"set {PG_ENV}=postgresql+psycopg://... to run the PostgreSQL suite"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not os.environ.get(PG_ENV), reason=PG_SKIP),
    ),
]


def pg_admin() -> sqlalchemy.Engine:
    """An autocommit engine on the server of INTAKE_SIM_TEST_PG, for CREATE/DROP DATABASE."""
    return sqlalchemy.create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards (PostgreSQL) or left in tmp."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'intake.db'}"
        return
    name = f"intake_sim_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = pg_admin()
    try:
        with admin.connect() as connection:
            # template0: never connected to, so a CREATE elsewhere cannot make this one fail.
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        url = make_url(os.environ[PG_ENV]).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def backend_of(url: str) -> str:
    return make_url(url).get_backend_name()


def prepared_sqlite(folder: Path, org: Org, at: datetime) -> Iterator[Store]:
    """A fixture's body: a new SQLite store in `folder`, prepared for `org` at `at`."""
    store = Store(f"sqlite:///{folder / 'intake.db'}")
    prepare(store, org, at)
    yield store
    store.dispose()
