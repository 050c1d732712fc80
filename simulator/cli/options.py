"""What the commands share: the options several take, the consoles, errors as one
line, a progress bar and the printers for results more than one command shows.

Every option that has an environment variable is named INTAKE_SIM_ + the long
flag in UPPER_SNAKE; the flag wins over the variable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from simulator.cli.render import Format, render, report_tables, to_json
from simulator.errors import ConfigError, IntakeSimError
from simulator.logs import setup_logging
from simulator.reports.columns import MODEL_COLUMNS, OUTCOME_COLUMNS
from simulator.reports.summary import model_rows

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
        help="Web form submissions allowed per email address per hour (0 = no limit).",
        min=0,
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
    list[Path], typer.Argument(help=".eml files, folders of them, or mbox files.", exists=True)
]

PlotOption = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        envvar="INTAKE_SIM_PLOT",
        help="Also draw a PNG chart to this file.",
        dir_okay=False,
    ),
]


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
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields `advance(n=1)`."""
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


def print_json(value: Any) -> None:
    out.file.write(to_json(value) + "\n")


def print_report(data: dict[str, Any], fmt: Format) -> None:
    """The licensing comparison: JSON as it is, a row per model as CSV, or two tables."""
    if fmt is Format.JSON:
        print_json(data)
    elif fmt is Format.CSV:
        render(model_rows(data), MODEL_COLUMNS, fmt, out)
    else:
        for view in report_tables(data):
            out.print(view)


def print_outcomes(counts: Mapping[str, int], fmt: Format, title: str) -> None:
    rows = [{"outcome": k, "deliveries": v} for k, v in sorted(counts.items())]
    render(rows, OUTCOME_COLUMNS, fmt, out, title=title)
