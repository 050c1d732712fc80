"""`intake-sim demo`: the sample emails over SMTP to a listener of its own, then
what came of them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    FormatOption,
    OrgOption,
    RelayOption,
    cli_errors,
    err,
    flag_errors,
    out,
    print_json,
    print_report,
    progress,
)
from simulator.cli.render import Format, render
from simulator.errors import ConfigError
from simulator.reports.columns import (
    DEMO_ISSUE_COLUMNS,
    DEMO_OUTBOX_COLUMNS,
    DEMO_USER_COLUMNS,
)

if TYPE_CHECKING:
    from simulator.demo import DemoResult
    from simulator.smtp.mailfiles import MailFile


@app.command()
def demo(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="INTAKE_SIM_DEMO_DB",
            help="Keep the demo's database at this URL (must be new). "
            "Default: a temporary SQLite file.",
        ),
    ] = None,
    org: OrgOption = None,
    relay: RelayOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """The whole story: a listener on a free port, the sample emails over SMTP, the result."""
    # Here, not at the top: `intake-sim --help` should not load the listener or SQLAlchemy.
    from simulator.demo import run_demo, sample_mail
    from simulator.org import load_org
    from simulator.smtp.relay import Relay
    from simulator.store.db import Store

    with cli_errors(), tempfile.TemporaryDirectory(prefix="intake-sim-demo-") as scratch:
        organisation = load_org(org)
        with flag_errors("--relay"):
            relay_to = Relay.parse(relay) if relay else None
        url = db or f"sqlite:///{Path(scratch) / 'demo.db'}"
        store = Store(url)
        if store.revision() is not None:
            raise ConfigError(f"{store.display_url} already holds data; the demo wants a new one")
        mail = sample_mail()
        with progress("sending sample emails over SMTP", len(mail)) as advance:
            result = run_demo(store, organisation, mail, lambda _: advance(), relay_to)
        store.dispose()
    if fmt is Format.JSON:
        print_json(result.as_dict())
        return
    _print_demo(result, mail, fmt)
    if db:
        err.print(f"database kept at {db}; try `intake-sim users --db {db}`", highlight=False)


def _print_demo(result: DemoResult, mail: list[MailFile], fmt: Format) -> None:
    err.print(f"sent {len(result.sent)} emails to {result.listener}", highlight=False)
    outcomes = result.outcomes(mail)
    render(outcomes, list(outcomes[0]) if outcomes else [], fmt, out, title="outcomes")
    render(result.issues, DEMO_ISSUE_COLUMNS, fmt, out, title="issues")
    render(result.users, DEMO_USER_COLUMNS, fmt, out, title="users")
    _print_demo_outbox(result, fmt)
    # The comparison comes last: it is what the demo is for.
    print_report(result.report, fmt)


def _print_demo_outbox(result: DemoResult, fmt: Format) -> None:
    if result.outbox:
        render(result.outbox, DEMO_OUTBOX_COLUMNS, fmt, out, title="automatic emails")
    waiting = result.waiting()
    if waiting:
        err.print(
            f"{waiting} automatic email(s) wait in the outbox; `--relay HOST:PORT` sends them",
            highlight=False,
        )
