"""The `intake-sim` command line: parse options, call the library, render.

Library errors (IntakeSimError) become one `Error: ...` line on stderr and
exit status 1. Every option that has an environment variable is named
INTAKE_SIM_ + the long flag in UPPER_SNAKE; the flag wins over the variable.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy.orm import Session

from simulator import __version__
from simulator.cli.render import Format, render, report_tables, to_json
from simulator.delivery import spool
from simulator.delivery.spool import Ack
from simulator.demo import expected_outcome, run_demo, sample_mail
from simulator.domain import Channel, OutboxStatus, Submission
from simulator.errors import ConfigError, IntakeSimError
from simulator.logs import setup_logging
from simulator.org import Org, load_org
from simulator.pipeline.batch import prepare, write_batch
from simulator.pipeline.parse import (
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MimeLimits,
    parse_message,
)
from simulator.reliability.crashtest import CrashTestOptions, run_crash_test
from simulator.reliability.fuzz import FuzzOptions, run_fuzz
from simulator.reports import rows as reports
from simulator.reports.plots import plot_months, plot_sweep
from simulator.service import prepare_or_wait, run_listener, run_web
from simulator.simulation import sweep as volume
from simulator.simulation.run import final_report, run_direct, run_own_listener, send_smtp
from simulator.simulation.scenario import load_scenario, traffic_params
from simulator.simulation.sweep import parse_volumes
from simulator.simulation.traffic import TrafficParams
from simulator.smtp.chaos import Chaos, parse_rule
from simulator.smtp.mailfiles import SendResult, SmtpSender, load_mail
from simulator.smtp.readiness import DEFAULT_TIMEOUT_SECONDS, check_database, check_smtp
from simulator.smtp.relay import Relay
from simulator.smtp.server import (
    DEFAULT_HOST,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PORT,
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
    MAX_HEADER_SIZE,
    MAX_HEADERS,
    MAX_RECIPIENTS,
    SESSION_TIMEOUT_SECONDS,
    ListenerOptions,
)
from simulator.store.db import DEFAULT_DB_URL, SQLITE_BUSY_TIMEOUT_MS, Store, open_store
from simulator.store.schema import head_revision
from simulator.web.app import DEFAULT_FORM_RATE_LIMIT, DEFAULT_WEB_PORT, WebOptions

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
FormRateLimitOption = Annotated[
    int,
    typer.Option(
        envvar="INTAKE_SIM_FORM_RATE_LIMIT",
        help="Web form submissions allowed per email address per hour (0 = no limit).",
        min=0,
    ),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
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

PlotOption = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        envvar="INTAKE_SIM_PLOT",
        help="Also draw a PNG chart to this file.",
        dir_okay=False,
    ),
]


class Period(StrEnum):
    MONTH = "month"


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
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def _reading(db: str) -> Iterator[Session]:
    """A session for read-only commands; refuses to invent an empty SQLite file."""
    if db.startswith("sqlite:///") and db != "sqlite:///:memory:":
        path = Path(db.removeprefix("sqlite:///"))
        if not path.exists():
            raise ConfigError(
                f"no database at {path}: run `intake-sim serve`, `ingest` or `demo --db {db}` "
                "first, or pass --db"
            )
    store = Store(db, writer=False)
    try:
        store.check_schema()
        with store.read() as session:
            yield session
    finally:
        store.dispose()  # PostgreSQL connections are closed, not left to the collector


@app.command()
def version() -> None:
    """Print the intake-sim version."""
    out.print(__version__)


def _limit(flag: str, unit: str, what: str) -> Any:
    """A `serve` limit option: env var by the naming rule, unit and 0 in the help."""
    return typer.Option(
        flag,
        envvar="INTAKE_SIM_" + flag.removeprefix("--").replace("-", "_").upper(),
        help=f"{what} ({unit}; 0 = no limit).",
        min=0,
        show_default=True,
        rich_help_panel="Limits",
    )


# Shared by `serve` and `drain`: a spool must be run with the limits it was taken in with.
MimeDepthOption = Annotated[
    int, _limit("--max-mime-depth", "levels", "MIME nesting; deeper is quarantined")
]
MimePartsOption = Annotated[
    int, _limit("--max-mime-parts", "parts", "MIME parts; more are quarantined")
]


@app.command()
def serve(
    host: HostOption = DEFAULT_HOST,
    port: PortOption = DEFAULT_PORT,
    max_message_size: Annotated[
        int, _limit("--max-message-size", "bytes", "Largest message; larger gets 552")
    ] = DEFAULT_MAX_MESSAGE_SIZE,
    idle_timeout: Annotated[
        float, _limit("--idle-timeout", "seconds", "Wait for a command; then 421 4.4.2")
    ] = IDLE_TIMEOUT_SECONDS,
    session_timeout: Annotated[
        float, _limit("--session-timeout", "seconds", "Whole session; then 421 4.4.2")
    ] = SESSION_TIMEOUT_SECONDS,
    max_connections: Annotated[
        int, _limit("--max-connections", "sessions", "Concurrent sessions; more get 421 4.7.0")
    ] = MAX_CONNECTIONS,
    max_recipients: Annotated[
        int, _limit("--max-recipients", "per message", "RCPTs; more get 452 4.5.3")
    ] = MAX_RECIPIENTS,
    max_headers: Annotated[
        int, _limit("--max-headers", "fields", "Header fields; more get 552 5.3.4")
    ] = MAX_HEADERS,
    max_header_size: Annotated[
        int, _limit("--max-header-size", "bytes", "Header section; larger gets 552 5.3.4")
    ] = MAX_HEADER_SIZE,
    max_mime_depth: MimeDepthOption = MAX_MIME_DEPTH,
    max_mime_parts: MimePartsOption = MAX_MIME_PARTS,
    db_busy_timeout: Annotated[
        int,
        typer.Option(
            envvar="INTAKE_SIM_DB_BUSY_TIMEOUT",
            help="SQLite: how long a write waits for a lock held elsewhere before the "
            "delivery gets 451 (milliseconds).",
            min=0,
        ),
    ] = SQLITE_BUSY_TIMEOUT_MS,
    chaos: Annotated[
        list[str] | None,
        typer.Option(
            envvar="INTAKE_SIM_CHAOS",
            help="Fault injection, STAGE:CODE:PROBABILITY (stage connect, mail, rcpt or "
            "data; e.g. data:451:0.2); repeatable.",
            rich_help_panel="Fault injection",
        ),
    ] = None,
    chaos_seed: Annotated[
        int | None,
        typer.Option(
            envvar="INTAKE_SIM_CHAOS_SEED",
            help="Seed for --chaos, for repeatable runs.",
            rich_help_panel="Fault injection",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    verbose: VerboseOption = False,
    web_port: Annotated[
        int | None,
        typer.Option(
            envvar="INTAKE_SIM_WEB_PORT",
            help="Also serve the web view, web form and JSON API on this port "
            "(0 picks a free one). Default: no web server.",
            min=0,
            max=65535,
        ),
    ] = None,
    web_host: Annotated[
        str, typer.Option(envvar="INTAKE_SIM_WEB_HOST", help="Web server address.")
    ] = DEFAULT_HOST,
    form_rate_limit: FormRateLimitOption = DEFAULT_FORM_RATE_LIMIT,
    use_date_header: Annotated[
        bool,
        typer.Option(
            envvar="INTAKE_SIM_USE_DATE_HEADER",
            help="Take each delivery's receive time from its Date header (replaying "
            "dated traffic such as `simulate --via smtp`); default: now.",
        ),
    ] = False,
    relay: RelayOption = None,
    ack: Annotated[
        Ack,
        typer.Option(
            envvar="INTAKE_SIM_ACK",
            help="When to answer 250: `intake` once the delivery's intake transaction has "
            "committed; `spool` once the raw message is committed to the spool, with intake "
            "run just after by a processor process (faster; see README, Spool).",
            case_sensitive=False,
        ),
    ] = Ack.INTAKE,
) -> None:
    """Run the SMTP listener until interrupted; one log line per delivery."""
    _setup_logging(verbose)
    with cli_errors():
        organisation = load_org(org)
        relay_to = Relay.parse(relay) if relay else None
        rules = [parse_rule(rule) for rule in chaos or []]
        store = Store(db, busy_timeout_ms=db_busy_timeout)
        if ack is Ack.SPOOL and store.is_sqlite:
            spool.spool_file_path(db)  # refuses :memory: before anything is written
        prepared = prepare_or_wait(store, organisation)
        options = ListenerOptions(
            host=host,
            port=port,
            max_message_size=max_message_size,
            use_date_header=use_date_header,
            idle_timeout=idle_timeout,
            session_timeout=session_timeout,
            max_connections=max_connections,
            max_recipients=max_recipients,
            max_headers=max_headers,
            max_header_size=max_header_size,
            chaos=Chaos(rules, chaos_seed),
        )
        web_options = None if web_port is None else WebOptions(web_host, web_port, form_rate_limit)
        limits = MimeLimits(max_depth=max_mime_depth, max_parts=max_mime_parts)
        try:
            asyncio.run(
                run_listener(
                    store, organisation, options, limits, prepared, web_options, relay_to, ack
                )
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        finally:
            store.dispose()


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
        int | None, typer.Option(envvar="INTAKE_SIM_SEED", help="Seed for the kill times.")
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
    with cli_errors(), tempfile.TemporaryDirectory(prefix="intake-sim-crash-") as scratch:
        db = db or f"sqlite:///{Path(scratch) / 'crash.db'}"
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
        out.file.write(to_json(figures) + "\n")
        return
    rows = [{"figure": key, "value": value} for key, value in figures.items()]
    render(rows, ["figure", "value"], fmt, out, title=title)


@app.command()
def fuzz(
    messages: Annotated[
        int, typer.Option(envvar="INTAKE_SIM_MESSAGES", help="How many messages.", min=1)
    ] = 100_000,
    clients: Annotated[
        int,
        typer.Option(envvar="INTAKE_SIM_CLIENTS", help="Concurrent SMTP clients.", min=1),
    ] = 4,
    seed: Annotated[int, typer.Option(envvar="INTAKE_SIM_SEED", help="Generator seed.")] = 0,
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


@app.command()
def web(
    host: HostOption = DEFAULT_HOST,
    port: PortOption = DEFAULT_WEB_PORT,
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    form_rate_limit: FormRateLimitOption = DEFAULT_FORM_RATE_LIMIT,
    verbose: VerboseOption = False,
) -> None:
    """Serve the web view, the customer web form and the JSON API (without SMTP)."""
    _setup_logging(verbose)
    with cli_errors():
        organisation = load_org(org)
        store = open_store(db)
        prepare(store, organisation)
        try:
            asyncio.run(run_web(store, organisation, WebOptions(host, port, form_rate_limit)))
        finally:
            store.dispose()


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
    with cli_errors(), ExitStack() as cleanup:
        organisation = load_org(org)
        store = open_store(db)
        cleanup.callback(store.dispose)
        prepare(store, organisation)
        mail = load_mail(paths)
        counts: Counter[str] = Counter()
        with _progress("ingesting", len(mail)) as advance:
            for start in range(0, len(mail), 200):
                chunk = mail[start : start + 200]
                batch = [
                    Submission(
                        m.raw,
                        m.envelope_from,
                        [organisation.intake_addresses[0]],
                        _receive_time(m.raw, use_date_header),
                        Channel.INGEST,
                    )
                    for m in chunk
                ]
                counts.update(r.outcome.value for r in write_batch(store, organisation, batch))
                advance(len(chunk))
    _print_outcomes(counts, fmt, f"ingested {len(mail)} message(s)")


def _print_outcomes(counts: Counter[str], fmt: Format, title: str) -> None:
    rows = [{"outcome": k, "deliveries": v} for k, v in sorted(counts.items())]
    render(rows, ["outcome", "deliveries"], fmt, out, title=title)


@app.command()
def drain(
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    max_mime_depth: MimeDepthOption = MAX_MIME_DEPTH,
    max_mime_parts: MimePartsOption = MAX_MIME_PARTS,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Run every message still waiting in the spool (`serve --ack spool`) through intake,
    with the same org and MIME limits as the listener that spooled them."""
    with cli_errors(), ExitStack() as cleanup:
        organisation = load_org(org)
        store = open_store(db)
        cleanup.callback(store.dispose)
        prepare(store, organisation)
        spooling = spool.open_spool(store)
        cleanup.callback(spooling.dispose)
        counts: Counter[str] = Counter()
        with _progress("draining the spool", spooling.backlog()) as advance:

            def count(results: Sequence[Any]) -> None:
                counts.update(result.outcome.value for result in results)
                advance(len(results))

            limits = MimeLimits(max_depth=max_mime_depth, max_parts=max_mime_parts)
            done = spool.drain(spooling, organisation, limits, count)
    _print_outcomes(counts, fmt, f"drained {done} message(s)")


def _receive_time(raw: bytes, use_date_header: bool) -> datetime:
    if use_date_header:
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
    by: Annotated[
        Period | None,
        typer.Option("--by", help="A row per calendar month: seats, bills, senders, new users."),
    ] = None,
    plot: PlotOption = None,
) -> None:
    """Seats, costs, break-even and advice for the Support and Team models."""
    with cli_errors():
        organisation = load_org(org)
        if by is None and plot is not None:
            raise ConfigError("--plot draws the monthly series: add --by month")
        with _reading(db) as session:
            if by is not None:
                rows = reports.by_month(session, organisation, reports.parse_as_of(as_of))
            else:
                data = reports.report(session, organisation, reports.parse_as_of(as_of))
        if by is not None:
            _print_months(rows, organisation, fmt, plot)
            return
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
    with cli_errors(), _reading(db) as session:
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
        if store.revision() is not None:
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
    if db:
        err.print(f"database kept at {db}; try `intake-sim users --db {db}`", highlight=False)


def _print_demo(result: Any, mail: list[Any], fmt: Format) -> None:
    err.print(f"sent {len(result.sent)} emails to {result.listener}", highlight=False)
    rows = []
    for item, sent, delivery in zip(mail, result.sent, result.deliveries, strict=False):
        expected = expected_outcome(item) or {}
        outcome = delivery["outcome"] + (f"/{delivery['reason']}" if delivery["reason"] else "")
        matches = (
            expected.get("outcome") in (None, delivery["outcome"])
            and expected.get("reason") == delivery["reason"]
        )
        rows.append(
            {
                "email": Path(item.source).stem,
                "reply": sent.code,
                "outcome": outcome,
                "issue": delivery["issue"],
                "sender": delivery["sender"],
                "as expected": matches,
            }
        )
    render(rows, list(rows[0]) if rows else [], fmt, out, title="outcomes")
    render(result.issues, ISSUE_COLUMNS[:-1], fmt, out, title="issues")
    render(result.users, USER_COLUMNS[:-2], fmt, out, title="users")
    _print_demo_outbox(result.outbox, fmt)
    # The comparison comes last: it is what the demo is for.
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


# -- synthetic traffic, volume sweeps, monthly series ------------------------------------

MONTH_COLUMNS = [
    "month",
    "support_seats",
    "support_billed",
    "support_cost",
    "team_seats",
    "team_billed",
    "team_cost",
    "cheaper_model",
    "active_senders",
    "new_users",
]
SWEEP_COLUMNS = [
    "volume",
    "support_seats",
    "support_cost",
    "team_seats",
    "team_cost",
    "cheaper_model",
    "margin",
]


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
    scenario: Path | None, org: Path | None, given: dict[str, Any]
) -> tuple[Org, TrafficParams]:
    """The org and traffic: the scenario's (if any), then the flags that were given."""
    if scenario is not None:
        loaded = load_scenario(scenario)
        organisation = load_org(org) if org else loaded.org
        base = loaded.traffic
    else:
        organisation, base = load_org(org), TrafficParams()
    overrides = {k: v for k, v in given.items() if v is not None}
    if "start" in overrides:
        overrides["start"] = reports.parse_as_of(overrides["start"], "--start")
    if "noise" in overrides:
        overrides["noise"] = _noise_shares(overrides["noise"])
    return organisation, traffic_params(overrides, "options", base)


def _noise_shares(text: str) -> dict[str, float]:
    shares = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        try:
            shares[kind.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--noise wants kind=share pairs, not {part!r}") from None
    return shares


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
            envvar="INTAKE_SIM_PORT",
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
    with cli_errors(), tempfile.TemporaryDirectory(prefix="intake-sim-simulate-") as scratch:
        organisation, params = _traffic(scenario, org, given)
        external = via is Via.SMTP and port is not None
        if external and db is None:
            raise ConfigError("--port sends to a running listener: pass --db, its database")
        store = Store(db or f"sqlite:///{Path(scratch) / 'simulate.db'}")
        if not external and store.revision() is not None:
            raise ConfigError(f"{store.display_url} already holds data; simulate wants a new one")
        began = time.perf_counter()
        with _progress(f"simulating {via.value}", params.emails) as advance:
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
    _print_report(data, fmt)


@app.command()
def sweep(
    volumes: Annotated[
        str,
        typer.Option(envvar="INTAKE_SIM_VOLUMES", help="Monthly email volumes, comma-separated."),
    ] = "100,1000,10000,100000,1000000",
    scenario: ScenarioOption = None,
    seed: SeedOption = None,
    customers: CustomersOption = None,
    new_sender_share: NewSenderOption = None,
    internal_share: InternalOption = None,
    reply_share: ReplyOption = None,
    cc_per_message: CcOption = None,
    noise: NoiseOption = None,
    org: OrgOption = None,
    fmt: FormatOption = Format.TABLE,
    plot: PlotOption = None,
) -> None:
    """Seats and cost per model for each monthly volume, the cheaper model and the margin."""
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
        organisation, params = _traffic(scenario, org, given)
        wanted = parse_volumes(volumes)
        began = time.perf_counter()
        rows = volume.sweep(params, organisation, wanted)
        elapsed = time.perf_counter() - began
        crossing = volume.crossover(rows)
        if plot is not None:
            plot_sweep(rows, crossing, organisation, plot)
    err.print(
        f"swept {len(rows)} volume(s), {sum(wanted):,} messages in {elapsed:.2f} s; "
        + (f"crossover near {crossing:,.0f} emails/month" if crossing else "no crossover"),
        highlight=False,
    )
    if fmt is Format.JSON:
        out.file.write(to_json(rows) + "\n")
    else:
        render(volume.flat_rows(rows), SWEEP_COLUMNS, fmt, out, title=f"{organisation.name}")


def _print_months(
    rows: list[dict[str, Any]], organisation: Org, fmt: Format, plot: Path | None
) -> None:
    if plot is not None:
        plot_months(rows, organisation, plot)
    if fmt is Format.JSON:
        out.file.write(to_json(rows) + "\n")
        return
    flat = [
        {
            "month": r["month"],
            **{f"{m}_seats": r[m]["seats"] for m in ("support", "team")},
            **{f"{m}_billed": r[m]["billed_seats"] for m in ("support", "team")},
            **{f"{m}_cost": r[m]["cost"] for m in ("support", "team")},
            "cheaper_model": r["cheaper_model"],
            "active_senders": r["active_senders"],
            "new_users": r["new_users"],
        }
        for r in rows
    ]
    render(flat, MONTH_COLUMNS, fmt, out, title=f"{organisation.name} by month")


# --- database schema and readiness -------------------------------------------

db_app = typer.Typer(
    help="The database schema: where a database stands, and bringing it up to date.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = DEFAULT_DB_URL) -> None:
    """Bring a database to the schema this intake-sim needs; an empty one is created."""
    with cli_errors(), Store(db) as store:
        before = store.revision()
        store.upgrade()
        after = store.revision()
    change = "already current" if before == after else f"upgraded from {before or 'empty'}"
    err.print(f"{store.display_url}: schema {after} ({change})", highlight=False)


@db_app.command("current")
def db_current(db: DbOption = DEFAULT_DB_URL, fmt: FormatOption = Format.TABLE) -> None:
    """Show the schema a database is at and the one this intake-sim needs."""
    with cli_errors(), Store(db, writer=False) as store:
        current = store.revision()
    head = head_revision()
    row = {"database": store.display_url, "current": current, "head": head}
    render([{**row, "up_to_date": current == head}], [*row, "up_to_date"], fmt, out)


@app.command()
def ready(
    host: HostOption = DEFAULT_HOST,
    port: PortOption = DEFAULT_PORT,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="INTAKE_SIM_DB",
            help="Also check this database answers and is at the current schema.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            envvar="INTAKE_SIM_TIMEOUT", help="Seconds to wait for the listener.", min=0.1
        ),
    ] = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Exit 0 when a listener greets with 220 (and its database is current), else 1."""
    with cli_errors():
        greeting = check_smtp(host, port, timeout)
        schema_line = f", database at schema {check_database(db)}" if db else ""
    out.print(f"ready: smtp://{host}:{port} 220 {greeting}{schema_line}", highlight=False)
