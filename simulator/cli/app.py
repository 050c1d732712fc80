"""The one `intake-sim` app, the order `--help` lists its commands in, and `version`.

The commands live in one module per family (listener, mail, listings, show, simulate,
reliability, database, demo); each registers itself on `app` when
simulator.cli imports it. Library errors (IntakeSimError) become one
`Error: ...` line on stderr and exit status 1 (options.cli_errors); so do usage
errors (an unknown option, a bad choice, a missing argument), which `main` catches.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # newer typer ships its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

from simulator import __version__
from simulator.cli.options import out, warn_renamed_env

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
    "show",
    "demo",
    "simulate",
    "sweep",
    "fit",
    "forecast",
    "ready",
    "db",
)


class OrderedCommands(TyperGroup):
    """Lists the commands in COMMAND_ORDER; one not named there comes after, as registered."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        rank = {name: index for index, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name:
            warn_renamed_env(name)
        return name, command, rest


# `-h` as well as `--help`, on every command and group.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    cls=OrderedCommands,
    context_settings=HELP_OPTIONS,
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


def _print_version(wanted: bool) -> None:
    if wanted:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False,
        "--version",
        help="Print the intake-sim version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """Email-intake licensing simulator."""


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: the app, with click's usage errors as one `Error:` line, status 1."""
    if list(sys.argv[1:] if argv is None else argv) in (["version"], ["--version"]):
        # Answered before the app runs, as `version` would answer: running any command
        # makes Typer build its parameter checks on pydantic, a tenth of a second or more
        # for one line of output.
        out.print(__version__)
        sys.exit(0)
    command = typer.main.get_command(app)
    try:
        status = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="intake-sim",
            standalone_mode=False,
        )
    except click_errors.NoArgsIsHelpError as exc:
        # A bare `intake-sim` (or `intake-sim db`) shows its help, as --help does.
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        status = 0
    except click_errors.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        typer.echo(f"Error: {' '.join(exc.format_message().split())}{where}", err=True)
        status = 1
    except click_errors.ClickException as exc:
        typer.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
        status = 1
    except typer.Abort:
        typer.echo("Error: aborted", err=True)
        status = 1
    sys.exit(status if isinstance(status, int) else 0)
