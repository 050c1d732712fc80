"""The decision over a contract: `fit` (a scenario file from the mail a database
holds) and `forecast` (seats and cost per month over a term, and what would flip it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simulator.cli.app import app
from simulator.cli.finance import (
    CustomerGrowthOption,
    ForecastPricesOption,
    GrowthOption,
    MonthsTerm,
    ScenarioFile,
    StartTerm,
)
from simulator.cli.options import (
    DbOption,
    FormatOption,
    OrgOption,
    cli_errors,
    err,
    existing_db,
    flag_errors,
    out,
    plot_option,
    print_json,
)
from simulator.cli.render import Format, render
from simulator.defaults import DEFAULT_DB_URL
from simulator.errors import ConfigError

if TYPE_CHECKING:
    from simulator.simulation import forecast as fc

# The library is imported inside the commands: `intake-sim --help` loads none of it.

FORECAST_COLUMNS = [
    "price_book",
    "month",
    "emails",
    "support_billed",
    "support_cost",
    "team_billed",
    "team_cost",
    "cheaper_model",
]

FIT_COLUMNS = ["table", "parameter", "value", "measured"]


@app.command()
def fit(
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            envvar="INTAKE_SIM_FIT_OUTPUT",
            help="Write the scenario file (TOML) here. Default: standard output.",
            dir_okay=False,
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(envvar="INTAKE_SIM_FIT_NAME", help="The scenario's name.")
    ] = "Fitted traffic",
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            envvar="INTAKE_SIM_FIT_FORMAT",
            help="Print the fitted figures as a table, JSON or CSV instead of the TOML.",
        ),
    ] = None,
) -> None:
    """Estimate a scenario file (traffic shape, Zipf skew, noise) from the deliveries."""
    from simulator.org import load_org
    from simulator.reports import rows
    from simulator.simulation import fit as fitting

    with cli_errors():
        organisation = load_org(org)
        url = existing_db(db)
        facts, notified = rows.read_from(
            url, lambda s: (fitting.read_facts(s), fitting.notifications(s))
        )
        fitted = fitting.fit_facts(facts, organisation, notified)
        text = fitting.scenario_toml(fitted, org, name)
        if output is not None:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(
        f"fitted {len(fitted.months)} month(s) ({fitted.span}); skew "
        f"{fitted.values['zipf_exponent'].value:g}, deviance "
        f"{fitted.extra['zipf_deviance_per_class'].value:g} per class"
        + (f"; wrote {output}" if output else ""),
        highlight=False,
    )
    if fmt is Format.JSON:
        print_json({"parameters": fitting.fit_rows(fitted), "months": fitted.monthly})
    elif fmt is not None:
        render(fitting.fit_rows(fitted), FIT_COLUMNS, fmt, out, title="fitted traffic")
    elif output is None:
        out.file.write(text)


def forecast_terms(
    scenario: Path | None,
    org: Path | None,
    months: int,
    growth: str,
    customer_growth: str | None,
    start: str | None,
) -> fc.Terms:
    """The forecast's question from the options (shared with `report --html`)."""
    from simulator.reports.summary import parse_as_of
    from simulator.simulation import forecast as fc
    from simulator.simulation.scenario import merge_traffic

    organisation, params = merge_traffic(scenario, org, {})
    with flag_errors("--growth"):
        volume = fc.parse_growth(growth, scenario)
    with flag_errors("--customer-growth"):
        customers = (
            volume if customer_growth is None else fc.parse_growth(customer_growth, scenario)
        )
    with flag_errors("--start"):
        moment = parse_as_of(start, "start")
    return fc.Terms(params, organisation, months, volume, customers, moment).check()


@app.command()
def forecast(
    scenario: ScenarioFile = None,
    org: OrgOption = None,
    months: MonthsTerm = 12,
    growth: GrowthOption = "0",
    customer_growth: CustomerGrowthOption = None,
    start: StartTerm = None,
    prices: ForecastPricesOption = None,
    sensitivity: Annotated[
        bool,
        typer.Option(
            "--sensitivity",
            help="Also find, for each assumption, how far it must move to flip the cheaper "
            "model over the term (first price book), ranked.",
        ),
    ] = False,
    tornado: Annotated[
        Path | None,
        typer.Option(
            "--tornado",
            envvar="INTAKE_SIM_FORECAST_TORNADO",
            help="With --sensitivity: draw the tornado chart to this file (.png, .svg, .html).",
            dir_okay=False,
        ),
    ] = None,
    fmt: FormatOption = Format.TABLE,
    plot: plot_option("forecast") = None,  # type: ignore[valid-type]
) -> None:
    """Seats and cost per month per model over a contract term, per price book."""
    from simulator.reports.charts import save as save_chart
    from simulator.reports.plots import save_forecast_chart, tornado_chart
    from simulator.simulation import forecast as fc
    from simulator.simulation import sensitivity as sv

    with cli_errors():
        terms = forecast_terms(scenario, org, months, growth, customer_growth, start)
        with flag_errors("--prices"):
            books = fc.load_books(prices, terms.org)
        if tornado is not None and not sensitivity:
            raise ConfigError("--tornado draws the sensitivity: add --sensitivity")
        data = fc.forecast(terms, books)
        if sensitivity:
            first = books[0] if books else fc.org_book(terms.org)
            data["sensitivity"] = sv.sensitivity(terms, first)
            if tornado is not None:
                save_chart(tornado_chart(data["sensitivity"]), tornado)
        if plot is not None:
            save_forecast_chart(data, plot)
    if fmt is Format.JSON:
        print_json(data)
        return
    render(fc.flat_months(data), FORECAST_COLUMNS, fmt, out, title=f"{terms.org.name}: forecast")
    if fmt is Format.TABLE:
        for book in data["forecasts"]:
            out.print(fc.term_sentence(book), highlight=False, soft_wrap=True)
    if "sensitivity" in data:
        found = data["sensitivity"]
        render(sv.flat_rows(found), sv.SENSITIVITY_COLUMNS, fmt, out, title="What flips it")
        if fmt is Format.TABLE:
            out.print(sv.summary(found), highlight=False, soft_wrap=True)
