"""Shared fixtures: a real listener on a free loopback port over a real database.

Every test that takes `db_url` (and so every `listener` test) runs twice: on a
fresh SQLite file, and on a fresh PostgreSQL database created for that test on
the server named by INTAKE_SIM_TEST_PG (skipped when it is unset).

Only fixtures and pytest hooks live here; the helpers behind them are in
tests/support/.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosmtpd
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from simulator.org import Org, load_org
from simulator.store.db import open_store
from tests.support.databases import BACKENDS, PG_ENV, PG_SKIP, fresh_database
from tests.support.listeners import Listener, running_listener
from tests.support.samples import org_file


def pytest_report_header() -> list[str]:
    server = os.environ.get(PG_ENV)
    shown = make_url(server).render_as_string(hide_password=True) if server else PG_SKIP
    return [
        f"sqlite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"aiosmtpd {aiosmtpd.__version__}",
        f"PostgreSQL under test: {shown}",
    ]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests about SQLite itself (its file lock, its file system)."""
    return f"sqlite:///{tmp_path / 'intake.db'}"


@pytest.fixture
def org(request: pytest.FixtureRequest) -> Org:
    """The sample org, or the org file named by `@pytest.mark.org("file.toml")`."""
    marker = request.node.get_closest_marker("org")
    return load_org(org_file(marker.args[0]) if marker else None)


@pytest.fixture
async def listener(db_url: str, org: Org) -> AsyncIterator[Listener]:
    store = open_store(db_url)
    async with running_listener(store, org) as running:
        yield running
    store.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database of its own, dropped afterwards (INTAKE_SIM_TEST_PG)."""
    base = os.environ.get("INTAKE_SIM_TEST_PG")
    if not base:
        pytest.skip(
            "INTAKE_SIM_TEST_PG is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"
        )
    name = f"intake_sim_t_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
