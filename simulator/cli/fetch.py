"""`fetch`: pull a mailbox's mail from an IMAP or POP3 server through intake, read-only."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    DbOption,
    FormatOption,
    OrgOption,
    cli_errors,
    print_outcomes,
    progress,
)
from simulator.cli.render import Format
from simulator.defaults import DEFAULT_DB_URL
from simulator.domain import MailProtocol, Security
from simulator.errors import ConfigError

if TYPE_CHECKING:
    from simulator.pipeline.intake import DeliveryResult

PASSWORD_ENV = "INTAKE_SIM_FETCH_PASSWORD"


@app.command()
def fetch(
    host: Annotated[str, typer.Argument(help="The mailbox server's name or address.")],
    user: Annotated[
        str, typer.Option("--user", envvar="INTAKE_SIM_FETCH_USER", help="Login name.")
    ],
    protocol: Annotated[
        MailProtocol, typer.Option("--protocol", help="IMAP (folders, UIDs) or POP3 (UIDL).")
    ] = MailProtocol.IMAP,
    port: Annotated[
        int,
        typer.Option(
            "--port", help="Server port. Default: 993/995 with tls, 143/110 otherwise.", min=0
        ),
    ] = 0,
    security: Annotated[
        Security,
        typer.Option(
            "--security",
            help="tls (IMAPS/POP3S), starttls, or plain (no encryption: only when asked).",
        ),
    ] = Security.TLS,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Do not check the server's certificate (a lab server)."),
    ] = False,
    cafile: Annotated[
        Path | None,
        typer.Option(
            "--cafile",
            help="Trust this CA or self-signed certificate (PEM).",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    folder: Annotated[
        list[str] | None,
        typer.Option("--folder", help="IMAP folder to read (repeatable). Default: INBOX."),
    ] = None,
    all_folders: Annotated[
        bool, typer.Option("--all-folders", help="Read every IMAP folder the account has.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only mail the server received at or after this time (ISO-8601)."
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Only mail the server received before this time (ISO-8601)."),
    ] = None,
    password_env: Annotated[
        str,
        typer.Option(
            "--password-env", help="Environment variable holding the password.", metavar="NAME"
        ),
    ] = PASSWORD_ENV,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help="File whose first line is the password.",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Pull mail from an IMAP or POP3 mailbox through intake, read-only; a second run
    fetches only what is new."""
    # Here, not at the top: `intake-sim --help` should not load SQLAlchemy.
    from simulator.org import load_org
    from simulator.pipeline.batch import outcome_counts
    from simulator.reports.summary import parse_as_of
    from simulator.smtp.fetch import Account, Window
    from simulator.smtp.fetch import fetch as pull
    from simulator.store.db import open_store

    with cli_errors(), ExitStack() as cleanup:
        if protocol is MailProtocol.POP3 and (folder or all_folders):
            raise ConfigError("--folder and --all-folders are for IMAP; POP3 has one mailbox")
        window = Window(parse_as_of(since, "--since"), parse_as_of(before, "--before"))
        account = Account(
            protocol,
            host,
            user,
            _password(password_env, password_file),
            port,
            security,
            verify=not insecure,
            cafile=cafile,
        )
        organisation = load_org(org)
        store = open_store(db)
        cleanup.callback(store.dispose)
        counts: Counter[str] = Counter()
        with progress(f"fetching from {host}", None) as advance:

            def count(results: Sequence[DeliveryResult]) -> None:
                counts.update(outcome_counts(results))
                advance(len(results))

            folders = folder or ["INBOX"]
            pull(store, organisation, account, folders, all_folders, window, count)
    print_outcomes(counts, fmt, f"fetched {counts.total()} message(s)")


def _password(variable: str, file: Path | None) -> str:
    """From the file, else the environment variable, else a prompt on a terminal."""
    if file is not None:
        lines = file.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    if os.environ.get(variable):
        return os.environ[variable]
    if not sys.stdin.isatty():
        raise ConfigError(
            f"no password: set {variable}, give --password-file, or run on a terminal"
        )
    return str(typer.prompt("Password", hide_input=True, err=True))
