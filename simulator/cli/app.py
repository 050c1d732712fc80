"""The one `intake-sim` app, the order `--help` lists its commands in, and `version`.

The commands live in one module per family (listener, mail, listings, simulate,
reliability, database, demo); each registers itself on `app` when
simulator.cli imports it. Library errors (IntakeSimError) become one
`Error: ...` line on stderr and exit status 1 (options.cli_errors).
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from simulator import __version__
from simulator.cli.options import out

# `intake-sim --help` lists the commands in this order, whichever module holds them.
COMMAND_ORDER = (
    "version",
    "serve",
    "crash-test",
    "fuzz",
    "web",
    "send",
    "ingest",
    "fetch",
    "drain",
    "report",
    "users",
    "issues",
    "messages",
    "ledger",
    "outbox",
    "demo",
    "simulate",
    "sweep",
    "ready",
    "db",
)


class OrderedCommands(TyperGroup):
    """Lists the commands in COMMAND_ORDER; one not named there comes after, as registered."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        rank = {name: index for index, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    cls=OrderedCommands,
    help="Email-intake licensing simulator: SMTP intake to issues, users and a seat ledger, "
    "with per-agent (Support) versus per-user (Team) cost reports.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.command()
def version() -> None:
    """Print the intake-sim version."""
    out.print(__version__)
