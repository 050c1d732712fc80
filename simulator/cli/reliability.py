"""Proof that acknowledged mail survives: `crash-test` (SIGKILL under load, then an
audit) and `fuzz` (hostile mail over SMTP)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import FormatOption, cli_errors, err, flag_errors, out, print_json
from simulator.cli.render import Format, render
from simulator.domain import Ack
from simulator.errors import ConfigError
from simulator.reports.columns import FIGURE_COLUMNS


@app.command("crash-test")
def crash_test(
    kills: Annotated[
        int, typer.Option(envvar="INTAKE_SIM_KILLS", help="How many SIGKILLs.", min=0)
    ] = 20,
    clients: Annotated[
        int,
        typer.Option(envvar="INTAKE_SIM_CLIENTS", help="Concurrent SMTP clients.", min=1),
    ] = 4,
    seed: Annotated[
        int | None,
        typer.Option(envvar="INTAKE_SIM_CRASH_TEST_SEED", help="Seed for the kill times."),
    ] = None,
    max_uptime: Annotated[
        float,
        typer.Option(
            envvar="INTAKE_SIM_MAX_UPTIME",
            help="Each kill comes 0.3 s up to this many seconds after the listener started.",
            min=0.3,
        ),
    ] = 1.5,
    chaos: Annotated[
        list[str] | None,
        typer.Option(
            envvar="INTAKE_SIM_CHAOS",
            help="Also inject faults in the listener (as serve --chaos; use 4xx codes, "
            "which clients retry); repeatable.",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL to run against (its crash-test rows stay in it). "
            "Default: a fresh temporary SQLite file. Deliberately no environment "
            "variable: INTAKE_SIM_DB may name real intake data.",
        ),
    ] = None,
    ack: Annotated[
        Ack,
        typer.Option(
            help="The listener's `serve --ack` mode; with `spool` the spool is drained "
            "before the audit.",
            case_sensitive=False,
        ),
    ] = Ack.INTAKE,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Kill a real listener with SIGKILL under load, restart it, and audit the store."""
    # Here, not at the top: `intake-sim --help` should not load the listener.
    from simulator.reliability.crashtest import CrashTestOptions, run_crash_test
    from simulator.smtp.chaos import parse_rule

    with cli_errors(), tempfile.TemporaryDirectory(prefix="intake-sim-crash-") as scratch:
        db = db or f"sqlite:///{Path(scratch) / 'crash.db'}"
        with flag_errors("--chaos"):
            rules = [parse_rule(rule) for rule in chaos or []]
        serve_args = tuple(arg for rule in rules for arg in ("--chaos", rule.text))
        options = CrashTestOptions(
            db=db,
            kills=kills,
            clients=clients,
            seed=seed,
            max_uptime=max_uptime,
            serve_args=serve_args,
            ack=ack,
        )
        result = run_crash_test(options, lambda line: err.print(line, highlight=False))
    _print_figures(result.as_dict(), fmt, "crash test")
    for label, items in (
        ("lost", result.lost),
        ("stored twice", result.doubled),
        ("wrong delivery id", result.wrong_ids),
    ):
        for item in items[:20]:
            err.print(f"{label}: {item}", highlight=False)
    if not result.ok:
        raise typer.Exit(2)


def _print_figures(figures: dict[str, Any], fmt: Format, title: str) -> None:
    """One run's figures: a JSON object, or a two-column table / CSV."""
    if fmt is Format.JSON:
        print_json(figures)
        return
    rows = [{"figure": key, "value": value} for key, value in figures.items()]
    render(rows, FIGURE_COLUMNS, fmt, out, title=title)


@app.command()
def fuzz(
    messages: Annotated[
        int, typer.Option(envvar="INTAKE_SIM_MESSAGES", help="How many messages.", min=1)
    ] = 100_000,
    clients: Annotated[
        int,
        typer.Option(envvar="INTAKE_SIM_CLIENTS", help="Concurrent SMTP clients.", min=1),
    ] = 4,
    seed: Annotated[int, typer.Option(envvar="INTAKE_SIM_FUZZ_SEED", help="Generator seed.")] = 0,
    # No environment variables for the target: INTAKE_SIM_HOST/PORT/DB may name a
    # real listener and real data, and fuzzing fills them with junk.
    host: Annotated[
        str | None,
        typer.Option(
            help="A running listener to fuzz (with --port). Default: start our own "
            "on a fresh temporary SQLite file.",
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Its port.", min=1, max=65535)] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="With --host/--port: that listener's database, to check every 250 was recorded.",
        ),
    ] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Send generated hostile mail over SMTP; check every 250 is recorded and the
    listener still answers."""
    from simulator.reliability.fuzz import FuzzOptions, run_fuzz

    with cli_errors():
        if (host is None) != (port is None):
            raise ConfigError("--host and --port go together")
        if db is not None and host is None:
            raise ConfigError("--db names a running listener's database: add --host and --port")
        result = run_fuzz(
            FuzzOptions(messages=messages, clients=clients, seed=seed, host=host, port=port, db=db)
        )
    _print_figures(result.as_dict(), fmt, "fuzz")
    if not result.ok:
        raise typer.Exit(2)
