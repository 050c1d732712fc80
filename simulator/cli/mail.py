"""Mail from files: `send` delivers it to a listener over SMTP, `ingest` runs it
through the pipeline directly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    DbOption,
    FormatOption,
    HostOption,
    OrgOption,
    PathsArgument,
    PortOption,
    cli_errors,
    err,
    out,
    print_outcomes,
    progress,
)
from simulator.cli.render import Format, render
from simulator.defaults import DEFAULT_DB_URL, DEFAULT_HOST, DEFAULT_PORT
from simulator.reports.columns import SEND_COLUMNS

if TYPE_CHECKING:
    from simulator.pipeline.intake import DeliveryResult

# The library is imported inside the commands: `intake-sim --help` loads none of it.


@app.command()
def send(
    paths: PathsArgument,
    host: HostOption = DEFAULT_HOST,
    port: PortOption = DEFAULT_PORT,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to", help="Recipient (repeatable). Default: the org's first intake address."
        ),
    ] = None,
    org: OrgOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Send mail (.eml files, folders, mbox, Maildir) to a listener over SMTP."""
    from simulator.org import load_org
    from simulator.smtp.client import send_all
    from simulator.smtp.sources import read_mail

    with cli_errors():
        recipients = to or [load_org(org).intake_addresses[0]]
        mail = read_mail(paths)
        with progress("sending", None) as advance:
            results = send_all(host, port, mail, recipients, lambda _: advance())
    rows = [{"source": r.source, "code": r.code, "reply": r.reply} for r in results]
    render(rows, SEND_COLUMNS, fmt, out, title="sent")
    refused = sum(not r.accepted for r in results)
    err.print(f"{len(results) - refused} accepted, {refused} refused", highlight=False)
    if refused:
        raise typer.Exit(2)


@app.command()
def ingest(
    paths: PathsArgument,
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    use_date_header: Annotated[
        bool,
        typer.Option(
            help="Take each message's receive time from its Date header "
            "(for historical mail; directory seats then start at the earliest message "
            "unless the org file dates them); default: now."
        ),
    ] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Run messages through the same intake pipeline as the listener, without SMTP."""
    from simulator.org import load_org
    from simulator.pipeline import batch
    from simulator.pipeline.batch import earliest_date, file_submissions, outcome_counts, prepare
    from simulator.smtp.sources import read_mail
    from simulator.store.db import open_store

    with cli_errors(), ExitStack() as cleanup:
        organisation = load_org(org)
        mail = read_mail(paths)  # every source checked before the database is touched
        # Imported history: directory seats start with the earliest message, not now.
        start = earliest_date(read_mail(paths)) if use_date_header else None
        store = open_store(db)
        cleanup.callback(store.dispose)
        prepare(store, organisation, start=start)
        counts: Counter[str] = Counter()
        with progress("ingesting", None) as advance:

            def count(results: Sequence[DeliveryResult]) -> None:
                counts.update(outcome_counts(results))
                advance(len(results))

            submissions = file_submissions(mail, organisation, use_date_header)
            batch.ingest(store, organisation, submissions, on_batch=count)
    print_outcomes(counts, fmt, f"ingested {counts.total()} message(s)")
