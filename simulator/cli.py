"""The `intake-sim` command line: parse options, call the library, render.

Library errors (IntakeSimError) become one `Error: ...` line on stderr and
exit status 1. Every option that has an environment variable is named
INTAKE_SIM_ + the long flag in UPPER_SNAKE; the flag wins over the variable.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from simulator import __version__, reports
from simulator.demo import expected_outcome, run_demo, sample_mail
from simulator.errors import ConfigError, IntakeSimError
from simulator.org import Org, load_org
from simulator.render import Format, render, report_tables, to_json
from simulator.sending import SendResult, SmtpSender, load_mail
from simulator.smtp import (
    DEFAULT_HOST,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PORT,
    ListenerOptions,
    Relay,
    intake_service,
)
from simulator.store.db import DEFAULT_DB_URL, Store, open_store
from simulator.store.models import OutboxStatus
from simulator.writer import Submission, prepare, write_batch

app = typer.Typer(
    help="Email-intake licensing simulator: SMTP intake to issues, users and a seat ledger, "
    "with per-agent (Support) versus per-user (Team) cost reports.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
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

USER_COLUMNS = [
    "email",
    "name",
    "role",
    "origin",
    "support_seat",
    "team_seat",
    "first_seen",
    "messages",
]
ISSUE_COLUMNS = ["number", "subject", "submitter", "messages", "created_at"]
MESSAGE_COLUMNS = [
    "id",
    "received_at",
    "sender",
    "subject",
    "outcome",
    "reason",
    "issue",
    "message_id",
]
LEDGER_COLUMNS = ["seq", "at", "model", "user", "delta", "reason", "delivery"]
OUTBOX_COLUMNS = [
    "id",
    "created_at",
    "kind",
    "issue",
    "recipient",
    "subject",
    "status",
    "attempts",
    "last_error",
    "sent_at",
]
SEND_COLUMNS = ["source", "code", "reply"]


@contextmanager
def cli_errors() -> Iterator[None]:
    try:
        yield
    except IntakeSimError as exc:
        # Plain echo, not rich: an error is one line however narrow the terminal.
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter


def _reader(db: str) -> Store:
    """A store for read-only commands; refuses to invent an empty SQLite file."""
    if db.startswith("sqlite:///") and db != "sqlite:///:memory:":
        path = Path(db.removeprefix("sqlite:///"))
        if not path.exists():
            raise ConfigError(
                f"no database at {path}: run `intake-sim serve`, `ingest` or `demo --db {db}` "
                "first, or pass --db"
            )
    store = Store(db, writer=False)
    if not store.has_schema():
        raise ConfigError(f"{store.display_url} holds no intake-sim data yet")
    return store


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--as-of wants an ISO-8601 time such as 2026-11-28T12:00Z, not {value!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def version() -> None:
    """Print the intake-sim version."""
    out.print(__version__)


@app.command()
def serve(
    host: HostOption = DEFAULT_HOST,
    port: PortOption = DEFAULT_PORT,
    max_message_size: Annotated[
        int,
        typer.Option(
            envvar="INTAKE_SIM_MAX_MESSAGE_SIZE",
            help="Largest message in bytes; larger gets 552 (0 = no limit).",
            min=0,
        ),
    ] = DEFAULT_MAX_MESSAGE_SIZE,
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    relay: RelayOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the SMTP listener until interrupted; one log line per delivery."""
    _setup_logging(verbose)
    with cli_errors():
        organisation = load_org(org)
        relay_to = Relay.parse(relay) if relay else None
        store = open_store(db)
        for change in prepare(store, organisation):
            logging.info("directory: %s %s", change.user, change)
        options = ListenerOptions(host=host, port=port, max_message_size=max_message_size)
        try:
            asyncio.run(_serve(store, organisation, options, relay_to))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        finally:
            store.dispose()


async def _serve(
    store: Store, organisation: Org, options: ListenerOptions, relay: Relay | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with intake_service(store, organisation, options, relay) as service:
        logging.info(
            "listening on smtp://%s:%d (org %s, db %s)",
            service.host,
            service.port,
            organisation.name,
            store.display_url,
        )
        if organisation.notify.enabled:
            logging.info(
                "automatic email: %s",
                f"through relay {relay}" if relay else "queued in the outbox (no --relay)",
            )
        await stop.wait()
        logging.info("stopping: finishing queued deliveries")
    logging.info("stopped after %d deliveries", service.handler.accepted)


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
    """Send .eml files, folders of them, or mbox files to a listener over SMTP."""
    with cli_errors():
        recipients = to or [load_org(org).intake_addresses[0]]
        mail = load_mail(paths)
        results: list[SendResult] = []
        with SmtpSender(host, port) as sender, _progress("sending", len(mail)) as advance:
            for item in mail:
                results.append(sender.send(item, recipients))
                advance()
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
            "(for historical mail); default: now."
        ),
    ] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Run messages through the same intake pipeline as the listener, without SMTP."""
    with cli_errors():
        organisation = load_org(org)
        store = open_store(db)
        prepare(store, organisation)
        mail = load_mail(paths)
        counts: dict[str, int] = {}
        with _progress("ingesting", len(mail)) as advance:
            for start in range(0, len(mail), 200):
                chunk = mail[start : start + 200]
                batch = [
                    Submission(
                        m.raw,
                        m.envelope_from,
                        [organisation.intake_addresses[0]],
                        _receive_time(m.raw, use_date_header),
                    )
                    for m in chunk
                ]
                for result in write_batch(store, organisation, batch):
                    counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
                advance(len(chunk))
    rows = [{"outcome": k, "deliveries": v} for k, v in sorted(counts.items())]
    render(rows, ["outcome", "deliveries"], fmt, out, title=f"ingested {len(mail)} message(s)")


def _receive_time(raw: bytes, use_date_header: bool) -> datetime:
    if use_date_header:
        from simulator.parse import parse_message

        parsed = parse_message(raw, None).date
        if parsed is not None:
            return parsed
    return datetime.now(UTC)


@app.command()
def report(
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Seats as of this ISO-8601 time (default: now)."),
    ] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Seats, costs, break-even and advice for the Support and Team models."""
    with cli_errors():
        organisation = load_org(org)
        store = _reader(db)
        with store.read() as session:
            data = reports.report(session, organisation, _parse_time(as_of))
    _print_report(data, fmt)


def _print_report(data: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.JSON:
        out.file.write(to_json(data) + "\n")
    elif fmt is Format.CSV:
        rows = [
            {
                "model": model,
                **{k: data[model][k] for k in ("seats", "unit_price", "cost")},
                "cheaper": data["cheaper_model"] == model,
                "recommended": data["recommended_model"] == model,
            }
            for model in ("support", "team")
        ]
        render(rows, ["model", "seats", "unit_price", "cost", "cheaper", "recommended"], fmt, out)
    else:
        for view in report_tables(data):
            out.print(view)


@app.command()
def users(db: DbOption = DEFAULT_DB_URL, fmt: FormatOption = Format.TABLE) -> None:
    """Users: role, origin, and whether each is a paid seat under Support and Team."""
    _listing(db, fmt, reports.users, USER_COLUMNS, "users")


@app.command()
def issues(db: DbOption = DEFAULT_DB_URL, fmt: FormatOption = Format.TABLE) -> None:
    """Issues with their submitter and message count."""
    _listing(db, fmt, reports.issues, ISSUE_COLUMNS, "issues")


@app.command()
def messages(
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    outcome: Annotated[
        str | None,
        typer.Option(help="Only deliveries with this outcome (e.g. filtered, quarantined)."),
    ] = None,
) -> None:
    """Deliveries with their outcome and reason."""
    _listing(db, fmt, lambda s: reports.messages(s, outcome), MESSAGE_COLUMNS, "messages")


@app.command()
def ledger(
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    model: Annotated[str | None, typer.Option(help="Only this model: support or team.")] = None,
) -> None:
    """The seat ledger: every +1/-1 with its reason and causing delivery."""
    _listing(db, fmt, lambda s: reports.ledger(s, model), LEDGER_COLUMNS, "seat events")


@app.command()
def outbox(
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    status: Annotated[
        OutboxStatus | None, typer.Option(help="Only automatic emails in this status.")
    ] = None,
) -> None:
    """Automatic emails (acknowledgements, updates): status, attempts, last error."""
    wanted = status.value if status else None
    _listing(db, fmt, lambda s: reports.outbox(s, wanted), OUTBOX_COLUMNS, "outbox")


def _listing(db: str, fmt: Format, query: Any, columns: list[str], title: str) -> None:
    with cli_errors():
        store = _reader(db)
        with store.read() as session:
            rows = query(session)
    render(rows, columns, fmt, out, title=title)


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
    with cli_errors(), tempfile.TemporaryDirectory(prefix="intake-sim-demo-") as scratch:
        organisation = load_org(org)
        relay_to = Relay.parse(relay) if relay else None
        url = db or f"sqlite:///{Path(scratch) / 'demo.db'}"
        store = Store(url)
        if store.has_schema():
            raise ConfigError(f"{store.display_url} already holds data; the demo wants a new one")
        mail = sample_mail()
        with _progress("sending sample emails over SMTP", len(mail)) as advance:
            result = run_demo(store, organisation, mail, lambda _: advance(), relay_to)
        store.dispose()
    if fmt is Format.JSON:
        out.file.write(
            to_json(
                {
                    "listener": result.listener,
                    "messages": result.deliveries,
                    "issues": result.issues,
                    "users": result.users,
                    "report": result.report,
                    "outbox": result.outbox,
                }
            )
            + "\n"
        )
        return
    _print_demo(result, mail, fmt)
    _print_demo_outbox(result.outbox, fmt)
    if db:
        err.print(f"database kept at {db}; try `intake-sim users --db {db}`", highlight=False)


def _print_demo(result: Any, mail: list[Any], fmt: Format) -> None:
    err.print(f"sent {len(result.sent)} emails to {result.listener}", highlight=False)
    rows = []
    for item, sent, delivery in zip(mail, result.sent, result.deliveries, strict=False):
        expected = expected_outcome(item) or {}
        rows.append(
            {
                "email": Path(item.source).name,
                "reply": sent.code,
                "outcome": delivery["outcome"],
                "reason": delivery["reason"],
                "issue": delivery["issue"],
                "sender": delivery["sender"],
                "as expected": expected.get("outcome") in (None, delivery["outcome"]),
            }
        )
    render(rows, list(rows[0]) if rows else [], fmt, out, title="outcomes")
    render(result.issues, ISSUE_COLUMNS, fmt, out, title="issues")
    render(result.users, USER_COLUMNS[:-2], fmt, out, title="users")
    _print_report(result.report, fmt)


def _print_demo_outbox(rows: list[dict[str, Any]], fmt: Format) -> None:
    if rows:
        columns = ["kind", "issue", "recipient", "status", "attempts", "last_error"]
        render(rows, columns, fmt, out, title="automatic emails")
    waiting = sum(row["status"] == "pending" for row in rows)
    if waiting:
        err.print(
            f"{waiting} automatic email(s) wait in the outbox; `--relay HOST:PORT` sends them",
            highlight=False,
        )


@contextmanager
def _progress(label: str, total: int) -> Iterator[Any]:
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
