"""`report --html FILE`: the one-page finance report, and the options it shares
with `forecast` (the scenario, the term, growth and price books)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.options import cli_errors, err, existing_db, flag_errors
from simulator.errors import ConfigError

ScenarioFile = Annotated[
    Path | None,
    typer.Option(
        "--scenario",
        envvar="INTAKE_SIM_SCENARIO",
        help="Scenario file (TOML), fitted by `fit` or written by hand. Default: the "
        "default traffic on the org.",
        dir_okay=False,
        exists=True,
    ),
]


def prices_option(command: str) -> Any:
    """`--prices FILE`, repeatable: each command has its own variable (env rule)."""
    return Annotated[
        list[str] | None,
        typer.Option(
            "--prices",
            envvar=f"INTAKE_SIM_{command.upper()}_PRICES",
            help="A price book, a shipped book's name or a .toml file (see "
            "docs/licensing-rules.md); repeat for several. Default: the org file's [pricing].",
        ),
    ]


def months_option(command: str) -> Any:
    """`--months N`, the term: sweep's --months means periods per volume, so each
    command that means a term has its own variable."""
    return Annotated[
        int,
        typer.Option(
            "--months",
            envvar=f"INTAKE_SIM_{command.upper()}_MONTHS",
            help="Contract term in calendar months (12, 24 and 36 are usual; 1-120).",
        ),
    ]


ForecastPricesOption = prices_option("forecast")
MonthsTerm = months_option("forecast")
ReportMonthsTerm = months_option("report")
GrowthOption = Annotated[
    str,
    typer.Option(
        "--growth",
        envvar="INTAKE_SIM_GROWTH",
        help="Yearly growth of the mail volume: 20%, 0.2, -5%, or fitted (the scenario's "
        "[fit] trend).",
    ),
]
CustomerGrowthOption = Annotated[
    str | None,
    typer.Option(
        "--customer-growth",
        envvar="INTAKE_SIM_CUSTOMER_GROWTH",
        help="Yearly growth of the customer population, as --growth. Default: as --growth.",
    ),
]
StartTerm = Annotated[
    str | None,
    typer.Option(
        "--start",
        envvar="INTAKE_SIM_FORECAST_START",
        help="First month of the term, ISO-8601 (default: the scenario's start).",
    ),
]


HtmlOption = Annotated[
    Path | None,
    typer.Option(
        "--html",
        envvar="INTAKE_SIM_REPORT_HTML",
        help="Write the one-page finance report (self-contained HTML, prints to at most 3 "
        "A4 pages) to this file: the decision, money per month, the forecast, what flips it.",
        dir_okay=False,
    ),
]


def finance_page(
    db: str,
    org: Path | None,
    html: Path,
    scenario: Path | None,
    months: int,
    growth: str,
    customer_growth: str | None,
    prices: list[str] | None,
) -> None:
    # Here, not at the top: `intake-sim --help` should not load SQLAlchemy or Jinja.
    from simulator.org import load_org
    from simulator.reports.finance import page
    from simulator.simulation import finance
    from simulator.simulation import forecast as fc

    with cli_errors():
        organisation = load_org(org)
        url = existing_db(db)
        with flag_errors("--prices"):
            books = fc.load_books(prices, organisation)
        if books:
            # The page's "now" figures and its forecast bill with the same prices.
            organisation = organisation.with_pricing(books[0].pricing, books[0].name)
        with flag_errors("--months"):
            fc.sweep.check_months(months)
        data = finance.gather(
            url, organisation, org, scenario, months, growth, customer_growth, books
        )
        try:
            html.write_text(page(data, organisation), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {html}: {exc.strerror or exc}") from None
    decision = data["forecast"]["sensitivity"]["decision"]
    err.print(
        f"wrote {html}: recommendation {data['report']['recommended_model']}, "
        f"{decision} cheaper over {months} months",
        highlight=False,
    )
