"""Schema versions: Alembic migrations shipped inside the package, configured in code.

No alembic.ini is needed: the script location is the package's own
`migrations/` folder, so an installed intake-sim can upgrade any database it
is pointed at. Policy (see docs/deploying.md): an empty database is
created by upgrading it to head; an older SQLite file is upgraded by the
commands that write; any other older database is refused until
`intake-sim db upgrade` has run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from simulator.store.models import Base

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: `intake-sim --help` and the read-only
# listings start without it (docs/benchmarks.md, start-up).

MIGRATIONS = Path(__file__).with_name("migrations")
# Revision files sort by date: 2026_11_28_0400-<rev>_<slug>.py
FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"
# One key for PostgreSQL's advisory lock, so that listeners starting side by side
# on a fresh database upgrade it one after the other, not at the same time.
PG_UPGRADE_LOCK_KEY = 0x1_7A4E_5153
# The schema intake-sim 0.1.0 created without migrations; such databases are stamped with it.
INITIAL_REVISION = "6f1c2a0b4d13"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", FILE_TEMPLATE)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


# A revision file's own lines, as `alembic revision` writes them and every file here has.
_REVISION = re.compile(r'^revision = "(\w+)"$', re.MULTILINE)
_PARENT = re.compile(r'^down_revision = (?:"(\w+)"|None)$', re.MULTILINE)


def plain_head() -> str | None:
    """The head as the revision files' text names it, without importing Alembic: the
    one revision no file names as its parent. None when any file is in another form
    (a merge of two parents, say) or the files have several heads: Alembic decides then.
    A test holds this to `head_revision()`."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, parent = _REVISION.findall(source), _PARENT.findall(source)
        if len(revision) != 1 or len(parent) != 1:
            return None
        revisions.add(revision[0])
        parents.add(parent[0])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_plain_head(engine: Engine) -> bool:
    """Whether the database is stamped with `plain_head()`, read with one SELECT.

    A read-only command that finds it so skips Alembic, whose import costs it a tenth
    of a second; False (any doubt, or an error) sends the caller to Alembic's answer."""
    head = plain_head()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            stamped = connection.execute(text("SELECT version_num FROM alembic_version"))
            return list(stamped.scalars()) == [head]
    except SQLAlchemyError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for an empty database."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None and inspect(connection).has_table("deliveries"):
        # Made by intake-sim 0.1.0, which created its tables without migrations.
        return INITIAL_REVISION
    return revision


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` in one transaction."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until COMMIT; whoever waits then finds the schema already there.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_UPGRADE_LOCK_KEY}
            )
        config = alembic_config(connection)
        unversioned = MigrationContext.configure(connection).get_current_revision() is None
        if unversioned and _revision(connection) == INITIAL_REVISION:
            command.stamp(config, INITIAL_REVISION)
        command.upgrade(config, revision)


def wait_for_upgrade(engine: Engine) -> None:
    """On PostgreSQL, wait until no other process holds the upgrade lock."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_UPGRADE_LOCK_KEY})


def differences(engine: Engine) -> list[object]:
    """What autogenerate would change to make the database match the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
        )
        return list(compare_metadata(context, Base.metadata))
