"""Schema migrations: upgrade head, no drift from the models, and the policy for
older databases (SQLite upgrades itself when written; others are refused)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.demo import sample_emails_dir
from simulator.store import schema
from simulator.store.db import Store

runner = CliRunner()
INITIAL = schema.INITIAL_REVISION
VERSIONS = schema.MIGRATIONS / "versions"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def current(url: str) -> dict[str, object]:
    code, out, err = run("db", "current", "--db", url, "--format", "json")
    assert code == 0, err
    return json.loads(out)[0]


def test_revision_files_are_date_first() -> None:
    names = sorted(p.name for p in VERSIONS.glob("*.py"))
    assert names, "no migrations shipped"
    for name in names:
        assert re.match(r"^\d{4}_\d\d_\d\d_\d{4}-[0-9a-f]{12}_\w+\.py$", name), name


def test_upgrade_head_matches_the_models(db_url: str) -> None:
    assert current(db_url)["current"] is None
    code, _, err = run("db", "upgrade", "--db", db_url)
    assert code == 0, err
    assert "upgraded from empty" in err
    state = current(db_url)
    assert state["current"] == state["head"] == schema.head_revision()
    assert state["up_to_date"] is True
    with Store(db_url) as store:
        # autogenerate compares the migrated database with the models: nothing to add.
        assert schema.differences(store.engine) == []
    code, _, err = run("db", "upgrade", "--db", db_url)
    assert code == 0 and "already current" in err


def seed_initial_schema(url: str, *, versioned: bool = True) -> None:
    """A database as intake-sim 0.1.0 left it: the initial schema and a seat history."""
    with Store(url) as store:
        schema.upgrade(store.engine, INITIAL)
        with store.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, email, name, role, origin, in_directory, logs_in, "
                    "created_at) VALUES (1, 'old@customer.example', '', 'customer', 'sender', "
                    "false, false, '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO issues (number, subject, submitter_id, created_at) "
                    "VALUES (1, 'old issue', 1, '2026-01-01 00:00:00')"
                )
            )
            for delta in (1, -1, 1):
                connection.execute(
                    text(
                        "INSERT INTO seat_events (at, user_id, model, delta, reason) "
                        "VALUES ('2026-01-01 00:00:00', 1, 'team', :delta, 'old')"
                    ),
                    {"delta": delta},
                )
            if not versioned:  # 0.1.0 made its tables without Alembic
                connection.execute(text("DROP TABLE alembic_version"))


def test_older_schema_is_refused_or_upgraded_and_history_is_kept(db_url: str) -> None:
    seed_initial_schema(db_url)
    head = schema.head_revision()
    sqlite = db_url.startswith("sqlite")

    # Listings never change a database: they name the command that does.
    code, _, err = run("users", "--db", db_url)
    assert code == 1
    assert err.strip() == (
        f"Error: {Store(db_url).display_url} is at schema {INITIAL}, intake-sim needs {head}: "
        f"run `intake-sim db upgrade --db {Store(db_url).display_url}`"
    )

    # A command that writes upgrades an SQLite file; PostgreSQL waits for `db upgrade`.
    mail = str(sample_emails_dir() / "01-new-plain-text.eml")
    code, _, err = run("ingest", mail, "--db", db_url)
    if sqlite:
        assert code == 0, err
    else:
        assert code == 1
        assert len(err.strip().splitlines()) == 1
        assert f"is at schema {INITIAL}, intake-sim needs {head}" in err
        code, _, err = run("db", "upgrade", "--db", db_url)
        assert code == 0, err
        with Store(db_url) as store, store.engine.connect() as connection:
            sequence = connection.execute(
                text("SELECT last_value, is_called FROM issues_number_seq")
            ).one()
        assert tuple(sequence) == (2, False)  # the next issue is number 2
        code, _, err = run("ingest", mail, "--db", db_url)
        assert code == 0, err
    assert current(db_url)["current"] == head
    # The new issue follows the old one (PostgreSQL's sequence was moved past it).
    code, out, err = run("issues", "--db", db_url, "--format", "json")
    assert [issue["number"] for issue in json.loads(out)] == [1, 2], err

    with Store(db_url) as store:
        with store.engine.begin() as connection:
            history = connection.execute(
                text("SELECT delta, transition FROM seat_events WHERE user_id = 1 ORDER BY seq")
            ).all()
        assert [tuple(row) for row in history] == [(1, 1), (-1, 2), (1, 3)]
        with pytest.raises(IntegrityError), store.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO seat_events (at, user_id, model, delta, reason, transition) "
                    "VALUES ('2026-01-02 00:00:00', 1, 'team', 1, 'again', 3)"
                )
            )


def test_unversioned_database_from_0_1_0_is_upgraded(db_url: str) -> None:
    seed_initial_schema(db_url, versioned=False)
    assert current(db_url)["current"] == INITIAL
    code, _, err = run("db", "upgrade", "--db", db_url)
    assert code == 0, err
    assert current(db_url)["up_to_date"] is True


def test_unknown_revision_is_refused(db_url: str) -> None:
    code, _, err = run("db", "upgrade", "--db", db_url)
    assert code == 0, err
    with Store(db_url) as store, store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'fffffffffff0'"))
    code, _, err = run("serve", "--db", db_url, "--port", "0")
    assert code == 1
    assert "is at schema fffffffffff0, which intake-sim" in err
    assert len(err.strip().splitlines()) == 1


def test_plain_head_is_alembics_head() -> None:
    """The head read from the revision files' text is the one Alembic finds."""
    assert schema.plain_head() == schema.head_revision()


def test_read_only_check_at_head_does_not_import_alembic(db_url: str) -> None:
    """A database at head passes the read-only check without Alembic (a tenth of a
    second of every read command's start); an older one still gets Alembic's answer."""
    with Store(db_url) as store:
        store.ensure_schema()
    check = (
        "import sys; from simulator.store.db import Store; s = Store(sys.argv[1], writer=False);"
        " s.check_schema(); s.dispose(); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check, db_url], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    with Store(db_url) as store, store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": INITIAL})
    done = subprocess.run([sys.executable, "-c", check, db_url], capture_output=True, text=True)
    assert done.returncode == 1
    assert "run `intake-sim db upgrade" in done.stderr
