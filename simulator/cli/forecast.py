"""The decision over a contract: `fit` (a scenario file from the mail a database
holds) and `forecast` (seats and cost per month over a term, and what would flip it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    DbOption,
    OrgOption,
    cli_errors,
    err,
    existing_db,
    out,
    print_json,
)
from simulator.cli.render import Format, render
from simulator.errors import ConfigError
from simulator.org import load_org
from simulator.reports import rows
from simulator.simulation import fit as fitting
from simulator.store.db import DEFAULT_DB_URL

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
