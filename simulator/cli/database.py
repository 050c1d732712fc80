"""`intake-sim db`: where a database's schema stands, and bringing it up to date."""

from __future__ import annotations

import typer

from simulator.cli.app import HELP_OPTIONS, app
from simulator.cli.options import DbOption, FormatOption, cli_errors, err, out
from simulator.cli.render import Format, render
from simulator.defaults import DEFAULT_DB_URL

db_app = typer.Typer(
    help="The database schema: where a database stands, and bringing it up to date.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = DEFAULT_DB_URL) -> None:
    """Bring a database to the schema this intake-sim needs; an empty one is created."""
    from simulator.store.db import Store

    with cli_errors(), Store(db) as store:
        before = store.revision()
        store.upgrade()
        after = store.revision()
    change = "already current" if before == after else f"upgraded from {before or 'empty'}"
    err.print(f"{store.display_url}: schema {after} ({change})", highlight=False)


@db_app.command("current")
def db_current(db: DbOption = DEFAULT_DB_URL, fmt: FormatOption = Format.TABLE) -> None:
    """Show the schema a database is at and the one this intake-sim needs."""
    from simulator.store.schema import head_revision

    with cli_errors():
        current, shown = _current(db)
    head = head_revision()
    row = {"database": shown, "current": current, "head": head}
    render([{**row, "up_to_date": current == head}], [*row, "up_to_date"], fmt, out)


def _current(db: str) -> tuple[str | None, str]:
    """The revision and display URL; a missing SQLite file is at none and stays missing."""
    from simulator.store.db import Store, missing_sqlite_file

    if missing_sqlite_file(db) is not None:
        return None, db
    with Store(db, writer=False) as store:
        return store.revision(), store.display_url
