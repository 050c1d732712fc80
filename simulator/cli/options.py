"""What the commands share: the options several take, the consoles, errors as one
line, a progress bar and the printers for results more than one command shows.

The environment rule (docs/cli.md): an option's variable is INTAKE_SIM_ + the long
flag in UPPER_SNAKE when the flag means the same in every command that has it;
where one command's flag means something else, that command's variable is
INTAKE_SIM_<COMMAND>_<FLAG>, so a variable set for one command never steers
another. The flag wins over the variable. RENAMED_ENV lists the variables a
command read before the rule, warned about when set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from simulator.cli.render import Format, render, report_tables, to_json
from simulator.errors import ConfigError, IntakeSimError
from simulator.reports.columns import MODEL_COLUMNS, OUTCOME_COLUMNS

if TYPE_CHECKING:
    from simulator.org import Org

# The library (SQLAlchemy, the org loader, rich's progress bar) is imported inside
# the functions that use it: `intake-sim --help` and `version` load none of it.

out = Console(soft_wrap=False)
err = Console(stderr=True)

DbOption = Annotated[
    str,
    typer.Option("--db", envvar="INTAKE_SIM_DB", help="Database URL (SQLite file or PostgreSQL)."),
]
OrgOption = Annotated[
    Path | None,
    typer.Option(
        "--org",
        envvar="INTAKE_SIM_ORG",
        help="Org file (TOML). Default: the sample org that ships with intake-sim.",
        dir_okay=False,
    ),
]
PricesOption = Annotated[
    str | None,
    typer.Option(
        "--prices",
        envvar="INTAKE_SIM_PRICES",
        help="Bill with this price book instead of the org file's [pricing]: a shipped "
        "book's name (see docs/licensing-rules.md) or a .toml file.",
    ),
]
FormatOption = Annotated[
    Format, typer.Option("--format", "-f", envvar="INTAKE_SIM_FORMAT", help="Output format.")
]
HostOption = Annotated[
    str, typer.Option("--host", envvar="INTAKE_SIM_HOST", help="Listener address.")
]
PortOption = Annotated[
    int,
    typer.Option(
        "--port",
        envvar="INTAKE_SIM_PORT",
        help="Listener port (0 picks a free one).",
        min=0,
        max=65535,
    ),
]
FormRateLimitOption = Annotated[
    int,
    typer.Option(
        envvar="INTAKE_SIM_FORM_RATE_LIMIT",
        help="Web form submissions allowed per email address per hour, its +tags "
        "counted as one (0 = no limit).",
        min=0,
    ),
]
FormClientRateLimitOption = Annotated[
    int,
    typer.Option(
        envvar="INTAKE_SIM_FORM_CLIENT_RATE_LIMIT",
        help="Web form submissions allowed per client IP address per hour, whatever "
        "addresses it types (0 = no limit).",
        min=0,
    ),
]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Tables: every cell whole, however wide (default: long addresses end in ...).",
    ),
]
WebMaxConnectionsOption = Annotated[
    int,
    typer.Option(
        envvar="INTAKE_SIM_WEB_MAX_CONNECTIONS",
        help="Concurrent web connections; more get 503 and are closed (0 = no limit).",
        min=0,
    ),
]
WebHeaderTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar="INTAKE_SIM_WEB_HEADER_TIMEOUT",
        help="Seconds a web request's header section may take to arrive, from the "
        "connection or the previous response; then the connection is closed (0 = no limit).",
        min=0,
    ),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
RelayOption = Annotated[
    str | None,
    typer.Option(
        "--relay",
        envvar="INTAKE_SIM_RELAY",
        help="Send automatic email (org file [notify]) through this SMTP relay, HOST:PORT. "
        "Without it, such mail waits in the outbox.",
    ),
]
PathsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Mail sources: .eml files (any name), folders, mbox files (also .gz/.xz), "
        "Maildir folders.",
        exists=True,
    ),
]


def plot_option(command: str) -> Any:
    """`--plot FILE.png`: each command draws its own chart, so each has its own variable."""
    own = f"INTAKE_SIM_{command.upper()}_PLOT"
    honoured = [old for old, new, read in RENAMED_ENV.get(command, []) if new == own and read]
    return Annotated[
        Path | None,
        typer.Option(
            "--plot",
            envvar=[own, *honoured],
            help="Also draw a chart to this file: .png (needs the plots extra), .svg or .html.",
            dir_okay=False,
        ),
    ]


# Variables a command read before the rule although they mean something else there:
# command -> (old variable, the command's own variable, whether the old one still works).
RENAMED_ENV: dict[str, list[tuple[str, str, bool]]] = {
    "web": [
        ("INTAKE_SIM_HOST", "INTAKE_SIM_WEB_HOST", False),
        ("INTAKE_SIM_PORT", "INTAKE_SIM_WEB_PORT", False),
    ],
    "simulate": [("INTAKE_SIM_PORT", "INTAKE_SIM_SIMULATE_PORT", False)],
    "report": [("INTAKE_SIM_PLOT", "INTAKE_SIM_REPORT_PLOT", False)],
    "sweep": [("INTAKE_SIM_PLOT", "INTAKE_SIM_SWEEP_PLOT", True)],
    "fuzz": [("INTAKE_SIM_SEED", "INTAKE_SIM_FUZZ_SEED", False)],
    "crash-test": [("INTAKE_SIM_SEED", "INTAKE_SIM_CRASH_TEST_SEED", False)],
}


def warn_renamed_env(command: str) -> None:
    """One stderr line per old variable set for `command` while its own is not."""
    for old, new, still_read in RENAMED_ENV.get(command, []):
        if old not in os.environ or new in os.environ:
            continue
        if still_read:
            note = f"{old} is deprecated for `{command}`; set {new} instead"
        else:
            note = f"`{command}` no longer reads {old} (it means something else there); set {new}"
        typer.echo(f"warning: {note}", err=True)


def existing_db(db: str) -> str:
    """`db`, unless it names a SQLite file that is not there: read-only commands
    refuse to invent an empty one."""
    from simulator.store.db import missing_sqlite_file

    path = missing_sqlite_file(db)
    if path is not None:
        raise ConfigError(
            f"no database at {path}: run `intake-sim serve`, `ingest` or `demo --db {db}` "
            "first, or pass --db"
        )
    return db


@contextmanager
def cli_errors() -> Iterator[None]:
    try:
        yield
    except IntakeSimError as exc:
        # Plain echo, not rich: an error is one line however narrow the terminal.
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


@contextmanager
def flag_errors(flag: str) -> Iterator[None]:
    """Name the flag a library ConfigError is about: `--relay: a relay is HOST:PORT ...`."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def setup_cli_logging(verbose: bool = False) -> None:
    from simulator.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields `advance(n=1)`. A total of None (mail streamed
    from a source not counted beforehand) shows the count so far."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=total == 0,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


def warn_pricing(org: Org) -> None:
    """One stderr line per price ladder of the org's that bills less for more seats."""
    from simulator.licensing.costs import pricing_warnings

    for warning in pricing_warnings(org.pricing):
        err.print(f"warning: {warning}", highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    out.file.write(to_json(value) + "\n")


def print_report(data: dict[str, Any], fmt: Format) -> None:
    """The licensing comparison: JSON as it is, a row per model as CSV, or two tables."""
    if fmt is Format.JSON:
        print_json(data)
    elif fmt is Format.CSV:
        from simulator.reports.summary import model_rows

        render(model_rows(data), MODEL_COLUMNS, fmt, out)
    else:
        for view in report_tables(data):
            out.print(view)


def print_outcomes(counts: Mapping[str, int], fmt: Format, title: str) -> None:
    rows = [{"outcome": k, "deliveries": v} for k, v in sorted(counts.items())]
    render(rows, OUTCOME_COLUMNS, fmt, out, title=title)
