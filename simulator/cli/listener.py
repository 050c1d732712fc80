"""The listener's commands: `serve` (SMTP, optionally the web too), `web` alone,
`ready` for healthchecks, and `drain` for what a spooling listener left behind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    DbOption,
    FormatOption,
    FormClientRateLimitOption,
    FormRateLimitOption,
    HostOption,
    OrgOption,
    PortOption,
    RelayOption,
    VerboseOption,
    WebHeaderTimeoutOption,
    WebMaxConnectionsOption,
    cli_errors,
    flag_errors,
    out,
    print_outcomes,
    progress,
    setup_cli_logging,
)
from simulator.cli.render import Format

# The defaults only: the listener, the web server and SQLAlchemy are imported inside
# the commands, so that `intake-sim --help` loads none of them.
from simulator.defaults import (
    COMMAND_TIMEOUT_SECONDS,
    COST_ALLOWANCE_MS,
    COST_FACTOR,
    DATA_TIMEOUT_SECONDS,
    DEFAULT_DB_URL,
    DEFAULT_HOST,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_SECONDS,
    ERROR_HARD_LIMIT,
    ERROR_SOFT_LIMIT,
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_DATA_MEMORY,
    MAX_HEADER_SIZE,
    MAX_HEADERS,
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MAX_PART_HEADERS,
    MAX_RECIPIENTS,
    SESSION_TIMEOUT_SECONDS,
    SPOOL_PROCESSORS,
    SQLITE_BUSY_TIMEOUT_MS,
)
from simulator.domain import Ack
from simulator.errors import ConfigError
from simulator.web.options import (
    DEFAULT_FORM_CLIENT_RATE_LIMIT,
    DEFAULT_FORM_RATE_LIMIT,
    DEFAULT_WEB_PORT,
    WEB_HEADER_TIMEOUT_SECONDS,
    WEB_MAX_CONNECTIONS,
    WebOptions,
)

if TYPE_CHECKING:
    from simulator.pipeline.parse import MimeLimits


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
PartHeadersOption = Annotated[
    int,
    _limit(
        "--max-part-headers",
        "fields",
        "Header fields in one MIME part but the message's own; more are quarantined",
    ),
]


def _mime_limits(max_depth: int, max_parts: int, max_part_headers: int) -> MimeLimits:
    """The MIME limits `serve` and `drain` were given."""
    # Here, not at the top: `intake-sim --help` should not load the parser.
    from simulator.pipeline.parse import MimeLimits

    return MimeLimits(max_depth=max_depth, max_parts=max_parts, max_part_headers=max_part_headers)


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
    max_connections_per_client: Annotated[
        int,
        _limit(
            "--max-connections-per-client",
            "sessions",
            "Concurrent sessions from one client address; more get 421 4.7.0",
        ),
    ] = MAX_CONNECTIONS_PER_CLIENT,
    command_timeout: Annotated[
        float,
        _limit(
            "--command-timeout",
            "seconds",
            "One command line, from its first byte to its end, however slowly the bytes "
            "come; then 421 4.4.2",
        ),
    ] = COMMAND_TIMEOUT_SECONDS,
    data_timeout: Annotated[
        float,
        _limit(
            "--data-timeout",
            "seconds",
            "One message's data, from 354 to the final dot; then 421 4.4.2",
        ),
    ] = DATA_TIMEOUT_SECONDS,
    max_recipients: Annotated[
        int, _limit("--max-recipients", "per message", "RCPTs; more get 452 4.5.3")
    ] = MAX_RECIPIENTS,
    max_headers: Annotated[
        int, _limit("--max-headers", "fields", "Header fields; more get 552 5.3.4")
    ] = MAX_HEADERS,
    max_header_size: Annotated[
        int, _limit("--max-header-size", "bytes", "Header section; larger gets 552 5.3.4")
    ] = MAX_HEADER_SIZE,
    max_data_memory: Annotated[
        int,
        _limit(
            "--max-data-memory",
            "bytes",
            "Message data held by all sessions at once, a quarter of it per client "
            "address; past it a message gets 452 4.3.1",
        ),
    ] = MAX_DATA_MEMORY,
    max_client_rate: Annotated[
        int,
        _limit(
            "--max-client-rate",
            "bytes per second",
            "Message data read from one client address per second; past it the "
            "listener reads that client's data more slowly",
        ),
    ] = 0,
    error_soft_limit: Annotated[
        int,
        _limit(
            "--error-soft-limit",
            "refusals",
            "Recent refusals of one client address after which each further refusal waits 1 s",
        ),
    ] = ERROR_SOFT_LIMIT,
    error_hard_limit: Annotated[
        int,
        _limit(
            "--error-hard-limit",
            "refusals",
            "Refusals in one session after which it gets 421 4.7.0 and is closed",
        ),
    ] = ERROR_HARD_LIMIT,
    cost_factor: Annotated[
        int,
        _limit(
            "--cost-factor",
            "times",
            "Cost tarpit: once a client address's messages cost on average more than "
            "--cost-allowance, each puts its replies after DATA back by this many times "
            "its cost",
        ),
    ] = COST_FACTOR,
    cost_allowance: Annotated[
        int,
        typer.Option(
            "--cost-allowance",
            envvar="INTAKE_SIM_COST_ALLOWANCE",
            help="Average CPU milliseconds a client address's messages may cost the "
            "listener (reading them, and with --ack intake their intake) before the "
            "cost tarpit slows it.",
            min=0,
            show_default=True,
            rich_help_panel="Limits",
        ),
    ] = COST_ALLOWANCE_MS,
    max_mime_depth: MimeDepthOption = MAX_MIME_DEPTH,
    max_mime_parts: MimePartsOption = MAX_MIME_PARTS,
    max_part_headers: PartHeadersOption = MAX_PART_HEADERS,
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
    form_client_rate_limit: FormClientRateLimitOption = DEFAULT_FORM_CLIENT_RATE_LIMIT,
    web_max_connections: WebMaxConnectionsOption = WEB_MAX_CONNECTIONS,
    web_header_timeout: WebHeaderTimeoutOption = WEB_HEADER_TIMEOUT_SECONDS,
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
            "run just after by a processor process (faster; see docs/spool.md).",
            case_sensitive=False,
        ),
    ] = Ack.INTAKE,
    processors: Annotated[
        int,
        typer.Option(
            envvar="INTAKE_SIM_PROCESSORS",
            help="With --ack spool: spool processor processes, each on its own share of the "
            "senders (more than one needs PostgreSQL; see docs/spool.md).",
            min=1,
        ),
    ] = SPOOL_PROCESSORS,
) -> None:
    """Run the SMTP listener until interrupted; one log line per delivery."""
    import asyncio

    from simulator.delivery import spool, spool_sqlite
    from simulator.org import load_org
    from simulator.service import prepare_or_wait, run_listener
    from simulator.smtp.chaos import Chaos, parse_rule
    from simulator.smtp.relay import Relay
    from simulator.smtp.server import ListenerOptions
    from simulator.store.db import Store

    setup_cli_logging(verbose)
    with cli_errors():
        organisation = load_org(org)
        with flag_errors("--relay"):
            relay_to = Relay.parse(relay) if relay else None
        with flag_errors("--chaos"):
            rules = [parse_rule(rule) for rule in chaos or []]
        _check_ports([(host, port), *([(web_host, web_port)] if web_port is not None else [])])
        store = Store(db, busy_timeout_ms=db_busy_timeout)
        if ack is Ack.SPOOL and store.is_sqlite:
            with flag_errors("--ack spool"):
                spool_sqlite.spool_file_path(db)  # refuses :memory: before anything is written
        with flag_errors("--processors"):
            if processors > 1 and ack is not Ack.SPOOL:
                raise ConfigError("more than one processor needs --ack spool")
            spool.check_processors(store, processors)
        prepared = prepare_or_wait(store, organisation)
        options = ListenerOptions(
            host=host,
            port=port,
            max_message_size=max_message_size,
            use_date_header=use_date_header,
            idle_timeout=idle_timeout,
            session_timeout=session_timeout,
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
            command_timeout=command_timeout,
            data_timeout=data_timeout,
            max_recipients=max_recipients,
            max_headers=max_headers,
            max_header_size=max_header_size,
            max_data_memory=max_data_memory,
            max_client_rate=max_client_rate,
            error_soft_limit=error_soft_limit,
            error_hard_limit=error_hard_limit,
            cost_factor=cost_factor,
            cost_allowance=cost_allowance / 1000,
            chaos=Chaos(rules, chaos_seed),
        )
        web_options = None
        if web_port is not None:
            web_options = WebOptions(
                web_host,
                web_port,
                form_rate_limit,
                web_max_connections,
                web_header_timeout,
                form_client_rate_limit=form_client_rate_limit,
            )
        limits = _mime_limits(max_mime_depth, max_mime_parts, max_part_headers)
        try:
            asyncio.run(
                run_listener(
                    store,
                    organisation,
                    options,
                    limits,
                    prepared,
                    web_options,
                    relay_to,
                    ack,
                    processors,
                )
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        finally:
            store.dispose()


def _check_ports(addresses: list[tuple[str, int]]) -> None:
    """Refuse, before anything is written, to serve on an address that cannot be bound."""
    from simulator.smtp.server import check_bindable

    for host, port in addresses:
        try:
            check_bindable(host, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command()
def web(
    host: Annotated[
        str, typer.Option(envvar="INTAKE_SIM_WEB_HOST", help="Web server address.")
    ] = DEFAULT_HOST,
    port: Annotated[
        int,
        typer.Option(
            envvar="INTAKE_SIM_WEB_PORT",
            help="Web server port (0 picks a free one).",
            min=0,
            max=65535,
        ),
    ] = DEFAULT_WEB_PORT,
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    form_rate_limit: FormRateLimitOption = DEFAULT_FORM_RATE_LIMIT,
    form_client_rate_limit: FormClientRateLimitOption = DEFAULT_FORM_CLIENT_RATE_LIMIT,
    web_max_connections: WebMaxConnectionsOption = WEB_MAX_CONNECTIONS,
    web_header_timeout: WebHeaderTimeoutOption = WEB_HEADER_TIMEOUT_SECONDS,
    verbose: VerboseOption = False,
) -> None:
    """Serve the web view, the customer web form and the JSON API (without SMTP)."""
    import asyncio

    from simulator.org import load_org
    from simulator.pipeline.batch import prepare
    from simulator.service import run_web
    from simulator.store.db import open_store

    setup_cli_logging(verbose)
    with cli_errors():
        organisation = load_org(org)
        _check_ports([(host, port)])
        store = open_store(db)
        prepare(store, organisation)
        try:
            options = WebOptions(
                host,
                port,
                form_rate_limit,
                web_max_connections,
                web_header_timeout,
                form_client_rate_limit=form_client_rate_limit,
            )
            asyncio.run(run_web(store, organisation, options))
        finally:
            store.dispose()


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
    from simulator.smtp.readiness import check_database, check_smtp

    with cli_errors():
        greeting = check_smtp(host, port, timeout)
        schema_line = f", database at schema {check_database(db)}" if db else ""
    out.print(f"ready: smtp://{host}:{port} 220 {greeting}{schema_line}", highlight=False)


@app.command()
def drain(
    db: DbOption = DEFAULT_DB_URL,
    org: OrgOption = None,
    max_mime_depth: MimeDepthOption = MAX_MIME_DEPTH,
    max_mime_parts: MimePartsOption = MAX_MIME_PARTS,
    max_part_headers: PartHeadersOption = MAX_PART_HEADERS,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Run every message still waiting in the spool (`serve --ack spool`) through intake,
    with the same org and MIME limits as the listener that spooled them."""
    from simulator.delivery import spool, spool_sqlite
    from simulator.org import load_org
    from simulator.pipeline.batch import outcome_counts, prepare
    from simulator.store.db import Store

    with cli_errors(), ExitStack() as cleanup:
        organisation = load_org(org)
        store = Store(db)
        cleanup.callback(store.dispose)
        if store.is_sqlite and not spool_sqlite.spool_file_path(db).exists():
            # No listener ever spooled here: nothing to drain, and nothing to create.
            print_outcomes(Counter(), fmt, "drained 0 message(s)")
            return
        store.ensure_schema()
        prepare(store, organisation)
        spooling = spool.open_spool(store)
        cleanup.callback(spooling.dispose)
        counts: Counter[str] = Counter()
        with progress("draining the spool", spooling.backlog()) as advance:

            def count(results: Sequence[Any]) -> None:
                counts.update(outcome_counts(results))
                advance(len(results))

            limits = _mime_limits(max_mime_depth, max_mime_parts, max_part_headers)
            done = spool.drain(spooling, organisation, limits, count)
    print_outcomes(counts, fmt, f"drained {done} message(s)")
