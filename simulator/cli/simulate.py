"""Synthetic traffic: `simulate` runs it through intake (directly or over SMTP) and
reports; `sweep` prices seats across monthly volumes."""

from __future__ import annotations

import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    FormatOption,
    HostOption,
    OrgOption,
    PricesOption,
    cli_errors,
    err,
    flag_errors,
    out,
    plot_option,
    print_json,
    print_report,
    progress,
    warn_pricing,
)
from simulator.cli.render import Format, render
from simulator.defaults import DEFAULT_HOST
from simulator.errors import ConfigError, IntakeSimError
from simulator.reports.columns import SWEEP_COLUMNS, SWEEP_MONTH_COLUMNS

if TYPE_CHECKING:
    from simulator.org import Org
    from simulator.simulation.traffic import TrafficParams

# The simulation, SQLAlchemy and the charts are imported inside the commands, so that
# `intake-sim --help` loads none of them.


class Via(StrEnum):
    DIRECT = "direct"
    SMTP = "smtp"


ScenarioOption = Annotated[
    Path | None,
    typer.Option(
        "--scenario",
        envvar="INTAKE_SIM_SCENARIO",
        help="Scenario file (TOML): an org and [traffic]; flags given here override it.",
        dir_okay=False,
        exists=True,
    ),
]


def _traffic_option(kind: Any, flag: str, text: str) -> Any:
    """A traffic flag: unset (None) leaves the scenario's or the default value."""
    envvar = "INTAKE_SIM_" + flag.upper().replace("-", "_")
    return Annotated[kind | None, typer.Option(f"--{flag}", envvar=envvar, help=text)]


EmailsOption = _traffic_option(int, "emails", "Emails to generate.")
DaysOption = _traffic_option(float, "days", "Span of the traffic in days.")
SeedOption = _traffic_option(int, "seed", "Random seed: same seed, same mail.")
StartOption = _traffic_option(str, "start", "Simulated start, ISO-8601 (default 2026-01-01).")
CustomersOption = _traffic_option(int, "customers", "Customers who write again (Zipf).")
NewSenderOption = _traffic_option(
    float, "new-sender-share", "Chance a customer mail is from someone never seen (0-1)."
)
InternalOption = _traffic_option(float, "internal-share", "Share of mail from colleagues (0-1).")
ReplyOption = _traffic_option(float, "reply-share", "Share of follow-ups (0-1).")
CcOption = _traffic_option(float, "cc-per-message", "Mean Cc'd colleagues per message.")
NoiseOption = _traffic_option(
    str, "noise", "Noise shares, e.g. auto_reply=0.05,bounce=0.02,list=0.01,no_reply=0.02."
)


def _traffic(
    scenario: Path | None, org: Path | None, given: dict[str, Any], prices: str | None = None
) -> tuple[Org, TrafficParams]:
    """The org and traffic: the scenario's (if any), then the flags that were given;
    billed by the `--prices` book when one is named."""
    from simulator.org import with_price_book
    from simulator.reports.summary import parse_as_of
    from simulator.simulation.scenario import merge_traffic, parse_noise

    if given.get("start") is not None:
        with flag_errors("--start"):
            given = {**given, "start": parse_as_of(given["start"], "start")}
    if given.get("noise") is not None:
        with flag_errors("--noise"):
            given = {**given, "noise": parse_noise(given["noise"])}
    organisation, params = merge_traffic(scenario, org, given)
    with flag_errors("--prices"):
        organisation = with_price_book(organisation, prices)
    warn_pricing(organisation)
    return organisation, params


@app.command()
def simulate(
    scenario: ScenarioOption = None,
    emails: EmailsOption = None,
    days: DaysOption = None,
    seed: SeedOption = None,
    start: StartOption = None,
    customers: CustomersOption = None,
    new_sender_share: NewSenderOption = None,
    internal_share: InternalOption = None,
    reply_share: ReplyOption = None,
    cc_per_message: CcOption = None,
    noise: NoiseOption = None,
    via: Annotated[
        Via, typer.Option(envvar="INTAKE_SIM_VIA", help="In-process, or over SMTP.")
    ] = Via.DIRECT,
    host: HostOption = DEFAULT_HOST,
    port: Annotated[
        int | None,
        typer.Option(
            envvar="INTAKE_SIM_SIMULATE_PORT",
            help="With --via smtp: a running listener's port (it should run with "
            "--use-date-header). Default: a listener of our own on a free port.",
            min=1,
            max=65535,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(envvar="INTAKE_SIM_CONCURRENCY", help="SMTP client threads.", min=1)
    ] = 4,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="INTAKE_SIM_SIMULATE_DB",
            help="Database to fill (must be new), or with --port the listener's database "
            "to report from. Default: a temporary SQLite file.",
        ),
    ] = None,
    org: OrgOption = None,
    prices: PricesOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Synthetic traffic through the intake pipeline (direct or over SMTP), then the report."""
    given = {
        "emails": emails,
        "days": days,
        "seed": seed,
        "start": start,
        "customers": customers,
        "new_sender_share": new_sender_share,
        "internal_share": internal_share,
        "reply_share": reply_share,
        "cc_per_message": cc_per_message,
        "noise": noise,
    }
    from simulator.simulation.run import final_report, run_direct, run_own_listener, send_smtp
    from simulator.store.db import Store

    with cli_errors(), tempfile.TemporaryDirectory(prefix="intake-sim-simulate-") as scratch:
        organisation, params = _traffic(scenario, org, given, prices)
        external = via is Via.SMTP and port is not None
        if external and db is None:
            raise ConfigError("--port sends to a running listener: pass --db, its database")
        store = Store(db or f"sqlite:///{Path(scratch) / 'simulate.db'}")
        if not external and store.revision() is not None:
            raise ConfigError(f"{store.display_url} already holds data; simulate wants a new one")
        began = time.perf_counter()
        with progress(f"simulating {via.value}", params.emails) as advance:
            if via is Via.DIRECT:
                run_direct(store, organisation, params, advance)
            elif external:
                _, refused = send_smtp(host, port, organisation, params, concurrency, advance)
                if refused:
                    raise IntakeSimError(f"the listener refused {refused} message(s)")
            else:
                run_own_listener(store, organisation, params, concurrency, advance)
        elapsed = time.perf_counter() - began
        data = final_report(store, organisation, params)
        store.dispose()
    rate = params.emails / elapsed if elapsed > 0 else 0.0
    err.print(
        f"{params.emails} message(s) {via.value} in {elapsed:.2f} s: {rate:,.0f} messages/s",
        highlight=False,
    )
    print_report(data, fmt)


MonthsOption = Annotated[
    int,
    typer.Option(
        "--months",
        envvar="INTAKE_SIM_MONTHS",
        help="Periods of traffic per volume, the customer base carried over; "
        "shows every month's bill and the contract total.",
    ),
]


@app.command()
def sweep(
    volumes: Annotated[
        str,
        typer.Option(envvar="INTAKE_SIM_VOLUMES", help="Monthly email volumes, comma-separated."),
    ] = "100,1000,10000,100000,1000000",
    months: MonthsOption = 1,
    scenario: ScenarioOption = None,
    seed: SeedOption = None,
    customers: CustomersOption = None,
    new_sender_share: NewSenderOption = None,
    internal_share: InternalOption = None,
    reply_share: ReplyOption = None,
    cc_per_message: CcOption = None,
    noise: NoiseOption = None,
    org: OrgOption = None,
    prices: PricesOption = None,
    fmt: FormatOption = Format.TABLE,
    plot: plot_option("sweep") = None,  # type: ignore[valid-type]
) -> None:
    """Seats and cost per model for each monthly volume, over one or more months: the
    cheaper model, the margin, the exact crossover and a recommendation."""
    from simulator.reports.plots import plot_sweep
    from simulator.simulation import sweep as volume

    given = {
        "seed": seed,
        "customers": customers,
        "new_sender_share": new_sender_share,
        "internal_share": internal_share,
        "reply_share": reply_share,
        "cc_per_message": cc_per_message,
        "noise": noise,
        "days": 30.0,  # a volume is per month
    }
    with cli_errors():
        organisation, params = _traffic(scenario, org, given, prices)
        with flag_errors("--volumes"):
            wanted = volume.parse_volumes(volumes)
        with flag_errors("--months"):
            volume.check_months(months)
        began = time.perf_counter()
        with progress("sweeping", sum(wanted) * months) as advance:
            data = volume.sweep(params, organisation, wanted, months, advance)
        elapsed = time.perf_counter() - began
        rows, cross = data["volumes"], data["crossover"]
        sentence = volume.crossover_sentence(cross, rows, organisation)
        if plot is not None:
            plot_sweep(rows, cross["volume"] if cross else None, organisation, plot)
    err.print(
        f"swept {len(rows)} volume(s) x {months} month(s), {sum(wanted) * months:,} messages "
        f"in {elapsed:.2f} s; {sentence}",
        highlight=False,
        soft_wrap=True,
    )
    if fmt is Format.JSON:
        print_json({k: v for k, v in data.items() if k != "crossover_rows"})
        return
    table = volume.flat_rows(volume.with_crossover(data))
    render(table, SWEEP_COLUMNS, fmt, out, title=f"{organisation.name}")
    if fmt is Format.TABLE:
        if months > 1:
            render(volume.month_rows(rows), SWEEP_MONTH_COLUMNS, fmt, out, title="By month")
        out.print(sentence, highlight=False, soft_wrap=True)
        for reason in data["recommendation"]["reasons"][1:]:
            out.print(f"- {reason}", highlight=False, soft_wrap=True)
