"""What a database holds: `report` (the licensing comparison, or by month) and the
listings `users`, `issues`, `messages`, `ledger` and `outbox`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.finance import (
    CustomerGrowthOption,
    GrowthOption,
    HtmlOption,
    ReportMonthsTerm,
    ScenarioFile,
    finance_page,
)
from simulator.cli.options import (
    DbOption,
    FormatOption,
    OrgOption,
    PricesOption,
    WideOption,
    cli_errors,
    existing_db,
    flag_errors,
    out,
    plot_option,
    print_json,
    print_report,
    warn_pricing,
)
from simulator.cli.render import Format, compare_table, render
from simulator.defaults import DEFAULT_DB_URL
from simulator.domain import LicenseModel, OutboxStatus, Outcome
from simulator.errors import ConfigError
from simulator.reports.columns import (
    COMPARE_COLUMNS,
    ISSUE_COLUMNS,
    LEDGER_COLUMNS,
    MONTH_COLUMNS,
    OUTBOX_COLUMNS,
    USER_COLUMNS,
    message_columns,
)

if TYPE_CHECKING:
    from simulator.org import Org

# The library (SQLAlchemy, the reports) is imported inside the commands, so that
# `intake-sim --help` loads none of it.

Listing = Callable[..., list[dict[str, Any]]]


class Period(StrEnum):
    MONTH = "month"


@app.command()
def report(
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Seats as of this ISO-8601 time (default: now)."),
    ] = None,
    fmt: FormatOption = Format.TABLE,
    by: Annotated[
        Period | None,
        typer.Option("--by", help="A row per calendar month: seats, bills, senders, new users."),
    ] = None,
    plot: plot_option("report") = None,  # type: ignore[valid-type]
    prices: PricesOption = None,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            envvar="INTAKE_SIM_COMPARE",
            help="Price books to bill the same ledger with, side by side, comma-separated "
            "(names or .toml files), e.g. zendesk-support-team,freshdesk-growth.",
        ),
    ] = None,
    html: HtmlOption = None,
    scenario: ScenarioFile = None,
    months: ReportMonthsTerm = 12,
    growth: GrowthOption = "0",
    customer_growth: CustomerGrowthOption = None,
) -> None:
    """Seats, costs, break-even and advice for the Support and Team models."""
    if html is not None:
        books = [prices] if prices else None
        finance_page(db, org, html, scenario, months, growth, customer_growth, books)
        return
    from simulator.org import load_org, with_price_book
    from simulator.reports import rows, summary

    with cli_errors():
        if by is None and plot is not None:
            raise ConfigError("--plot draws the monthly series: add --by month")
        if compare is not None and (by is not None or prices is not None):
            raise ConfigError("--compare prices one report with several books: drop --by/--prices")
        with flag_errors("--prices"):
            organisation = with_price_book(load_org(org), prices)
        url = existing_db(db)
        with flag_errors("--as-of"):
            moment = summary.parse_as_of(as_of)
        if compare is not None:
            _print_comparison(url, organisation, compare, moment, fmt)
            return
        warn_pricing(organisation)
        if by is not None:
            by_month = partial(summary.by_month, org=organisation, as_of=moment)
            _print_months(rows.read_from(url, by_month), organisation, fmt, plot)
            return
        report_at = partial(summary.report, org=organisation, as_of=moment)
        data = rows.read_from(url, report_at)
    print_report(data, fmt)


def _print_comparison(url: str, organisation: Org, compare: str, moment: Any, fmt: Format) -> None:
    from simulator.org import load_price_book
    from simulator.reports import rows, summary

    names = [name.strip() for name in compare.split(",") if name.strip()]
    if not names:
        raise ConfigError("--compare: name at least one price book")
    with flag_errors("--compare"):
        books = [load_price_book(name, organisation.licensing.billing) for name in names]
    compared = partial(summary.compare_books, org=organisation, books=books, as_of=moment)
    data = rows.read_from(url, compared)
    for book in data["books"]:
        for warning in book["warnings"]:
            typer.echo(f"warning: {book['book']}: {warning}", err=True)
    if fmt is Format.JSON:
        print_json(data)
    elif fmt is Format.CSV:
        render(summary.compare_rows(data), COMPARE_COLUMNS, fmt, out)
    else:
        out.print(compare_table(data))


def _print_months(
    months: list[dict[str, Any]], organisation: Org, fmt: Format, plot: Path | None
) -> None:
    from simulator.reports import summary
    from simulator.reports.plots import plot_months

    if plot is not None:
        plot_months(months, organisation, plot)
    if fmt is Format.JSON:
        print_json(months)
        return
    title = f"{organisation.name} by month"
    render(summary.month_rows(months), MONTH_COLUMNS, fmt, out, title=title)


@app.command()
def users(
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    fmt: FormatOption = Format.TABLE,
    wide: WideOption = False,
) -> None:
    """Users: role, origin, and whether each is a paid seat under Support and Team (the
    Team seat as the org's [licensing] rules read the ledger, as `report` counts it)."""
    from simulator.org import load_org
    from simulator.reports import summary

    with cli_errors():
        organisation = load_org(org)
    _stream(db, fmt, partial(summary.iter_users, org=organisation), USER_COLUMNS, "users", wide)


@app.command()
def issues(
    db: DbOption = DEFAULT_DB_URL, fmt: FormatOption = Format.TABLE, wide: WideOption = False
) -> None:
    """Issues with their submitter and message count."""
    from simulator.reports import rows

    _listing(db, fmt, rows.issues, ISSUE_COLUMNS, "issues", wide)


@app.command()
def messages(
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    outcome: Annotated[
        Outcome | None,
        typer.Option(help="Only deliveries with this outcome (e.g. filtered, quarantined)."),
    ] = None,
    wide: WideOption = False,
) -> None:
    """Deliveries with their outcome and reason."""
    from simulator.reports import rows

    wanted = outcome.value if outcome else None
    _listing(db, fmt, partial(rows.messages, outcome=wanted), message_columns, "messages", wide)


@app.command()
def ledger(
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    model: Annotated[LicenseModel | None, typer.Option(help="Only this model.")] = None,
    wide: WideOption = False,
) -> None:
    """The seat ledger: every +1/-1 with its reason and causing delivery."""
    from simulator.reports import rows

    wanted = model.value if model else None
    _listing(db, fmt, partial(rows.ledger, model=wanted), LEDGER_COLUMNS, "seat events", wide)


@app.command()
def outbox(
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    status: Annotated[
        OutboxStatus | None, typer.Option(help="Only automatic emails in this status.")
    ] = None,
    wide: WideOption = False,
) -> None:
    """Automatic emails (acknowledgements, updates): status, attempts, last error."""
    from simulator.reports import rows

    wanted = status.value if status else None
    _listing(db, fmt, partial(rows.outbox, status=wanted), OUTBOX_COLUMNS, "outbox", wide)


def _stream(
    db: str,
    fmt: Format,
    query: Callable[..., Iterable[dict[str, Any]]],
    columns: list[str],
    title: str,
    wide: bool,
) -> None:
    """`_listing` for a listing as large as a table of the database: JSON and CSV are
    written inside the read, as the rows come, so memory holds a batch of rows rather
    than the listing (a table still lays out every row first)."""
    from simulator.reports import rows

    def write(session: Any) -> None:
        render(query(session), columns, fmt, out, title=title, wide=wide)

    with cli_errors():
        rows.read_from(existing_db(db), write)


def _listing(
    db: str,
    fmt: Format,
    query: Listing,
    columns: list[str] | Callable[[list[dict[str, Any]]], list[str]],
    title: str,
    wide: bool,
) -> None:
    """Read `query`'s rows and render them; `columns` may be chosen from the rows."""
    from simulator.reports import rows

    with cli_errors():
        found = rows.read_from(existing_db(db), query)
    chosen = columns if isinstance(columns, list) else columns(found)
    render(found, chosen, fmt, out, title=title, wide=wide)
