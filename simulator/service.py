"""The wiring of a running listener: the group-commit writer, the SMTP listener, the
spool processor, the outbox sender and the web server, started in order and
stopped in reverse, with SIGINT/SIGTERM handling.

`serve`, `demo`, `simulate --via smtp`, the tests and the benchmarks all start
their listeners through `intake_service`, so every one of them runs the same
wiring. This module sits above smtp/ and web/ and below the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from simulator.delivery import spool
from simulator.delivery.processor import ProcessorConfig, SpoolProcessor
from simulator.delivery.spool import Ack
from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import is_loopback
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS, MimeLimits
from simulator.smtp.handler import IntakeHandler
from simulator.smtp.relay import OutboxSender, Relay, RetryPolicy
from simulator.smtp.server import MAX_CONNECTIONS, ListenerOptions, smtp_listener
from simulator.store.db import Store
from simulator.web.options import WebOptions

log = logging.getLogger("intake_sim.service")


@dataclass(frozen=True)
class RunningService:
    host: str
    port: int
    handler: IntakeHandler
    writer: GroupCommitWriter
    outbox: OutboxSender | None = None
    processors: tuple[SpoolProcessor, ...] = ()

    @property
    def processor(self) -> SpoolProcessor | None:
        """The first spool processor (the only one unless `processors` > 1)."""
        return self.processors[0] if self.processors else None


@asynccontextmanager
async def intake_service(
    store: Any,
    org: Org,
    options: ListenerOptions,
    *,
    mime_limits: MimeLimits | None = None,
    prepared: bool = True,
    relay: Relay | None = None,
    retry: RetryPolicy | None = None,
    ack: Ack = Ack.INTAKE,
    processors: int = 1,
) -> AsyncIterator[RunningService]:
    """Writer plus listener, plus the outbox sender when there is a relay, plus the
    spool processors with `ack=Ack.SPOOL` (`processors` of them; more than one only
    on PostgreSQL, where they work on separate partitions of the spool).

    On exit the listener stops first, then queued deliveries are written, then
    the processor finishes its batch (the rest stays spooled for the next run)
    and the sender its round; unsent mail stays pending in the outbox.
    `prepared=False` says the store could not be prepared yet (down at start):
    the writer prepares it before its first batch, answering 451 until then.
    """
    limits = mime_limits or DEFAULT_MIME_LIMITS
    outbox = OutboxSender(store, relay, retry) if relay is not None else None
    spool.check_processors(store, processors)
    started = _spool_processors(store, org, limits, processors) if ack is Ack.SPOOL else ()
    spooling = spool.open_spool(store, org) if started else None
    writer = GroupCommitWriter(
        store,
        org,
        mime_limits=limits,
        prepared=prepared,
        on_queued=_waker(started) if started else outbox.wake if outbox else None,
        spool_batch=spooling.append if spooling else None,
        spool_now=spooling.append_on_loop if spooling else None,
    )
    # Side by side: each spends a second or so of CPU importing before it is ready.
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in started))
    await writer.start()
    if outbox is not None:
        await outbox.start()
    handler = IntakeHandler(org, writer, options)
    try:
        async with smtp_listener(handler, options) as (host, port):
            yield RunningService(host, port, handler, writer, outbox, started)
    finally:
        await writer.close()
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in started))
        if spooling is not None:
            await spooling.close_on_loop()
            spooling.dispose()
        if outbox is not None:
            await outbox.close()


def _spool_processors(
    store: Any, org: Org, limits: MimeLimits, count: int
) -> tuple[SpoolProcessor, ...]:
    level = logging.getLogger().getEffectiveLevel()
    config = ProcessorConfig(store.url, org, limits, store.busy_timeout_ms, level, count)
    if count == 1:
        return (SpoolProcessor(config),)
    return tuple(SpoolProcessor(config, f"intake-sim-spool-{n}") for n in range(1, count + 1))


def _waker(processors: tuple[SpoolProcessor, ...]) -> Callable[[], None]:
    """Wake every processor after a batch is spooled: whichever holds the new rows'
    partitions takes them, and the others find nothing and sleep again."""

    def wake() -> None:
        for processor in processors:
            processor.wake()

    return wake


@asynccontextmanager
async def web_service(
    store: Store, org: Org, options: WebOptions, writer: GroupCommitWriter | None = None
) -> AsyncIterator[tuple[str, int]]:
    """The web app on its own port, reading through a read-only engine on `store`'s URL.

    Given the SMTP listener's writer, form submissions join its group commits;
    without one (`intake-sim web` alone) the web app runs a writer of its own.
    """
    # Starlette and uvicorn load only when a web server is wanted: start-up stays quick.
    from simulator.web.app import create_app
    from simulator.web.server import web_server

    reader = Store(store.url, writer=False)
    own = writer is None
    active = writer or GroupCommitWriter(store, org)
    if own:
        await active.start()
    try:
        app = create_app(
            reader,
            org,
            active,
            host=options.host,
            form_rate_limit=options.form_rate_limit,
            form_client_rate_limit=options.form_client_rate_limit,
        )
        if not is_loopback(options.host):
            logging.getLogger("intake_sim.web").warning(
                "web server on %s, which is not a loopback address: anyone who can reach it "
                "can read every delivery and submit the form",
                options.host,
            )
        async with web_server(
            app,
            options.host,
            options.port,
            options.max_connections,
            options.header_timeout,
            options.descriptor_reserve,
        ) as address:
            yield address
    finally:
        if own:
            await active.close()
        reader.dispose()


def prepare_or_wait(store: Store, organisation: Org) -> bool:
    """Prepare the store; if it is down, say so and listen anyway (451 until it is back)."""
    try:
        changes = prepare(store, organisation)
    except StoreUnavailable as exc:
        logging.warning("storage unavailable, answering 451 until it is back: %s", exc)
        return False
    for change in changes:
        logging.info("directory: %s %s", change.user, change)
    return True


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_listener(
    store: Store,
    organisation: Org,
    options: ListenerOptions,
    limits: MimeLimits,
    prepared: bool,
    web: WebOptions | None = None,
    relay: Relay | None = None,
    ack: Ack = Ack.INTAKE,
    processors: int = 1,
) -> None:
    stop = stop_on_signals()
    # The web server (if any) stops first, then the listener, then the writer drains.
    async with (
        intake_service(
            store,
            organisation,
            options,
            mime_limits=limits,
            prepared=prepared,
            relay=relay,
            ack=ack,
            processors=processors,
        ) as service,
        contextlib.AsyncExitStack() as stack,
    ):
        logging.info(
            "listening on smtp://%s:%d (org %s, db %s)",
            service.host,
            service.port,
            organisation.name,
            store.display_url,
        )
        if options.chaos.rules:
            # Refusals that follow are made on purpose; say so before the first one.
            logging.warning(
                "fault injection on: %s", ", ".join(rule.text for rule in options.chaos.rules)
            )
        if web is not None:
            # Descriptors for every SMTP session the listener may hold, whatever the web does.
            smtp_sessions = options.max_connections or MAX_CONNECTIONS
            web = replace(web, descriptor_reserve=web.descriptor_reserve + smtp_sessions)
            address = await stack.enter_async_context(
                web_service(store, organisation, web, service.writer)
            )
            logging.info("web view on http://%s:%d/", *address)
        if organisation.notify.enabled:
            logging.info(
                "automatic email: %s",
                f"through relay {relay}" if relay else "queued in the outbox (no --relay)",
            )
        await stop.wait()
        logging.info("stopping: finishing queued deliveries")
    logging.info("stopped after %d deliveries", service.handler.accepted)
    if ack is Ack.SPOOL:
        report_backlog(store)


def report_backlog(store: Store) -> None:
    spooling = spool.open_spool(store)
    try:
        left = spooling.backlog()
    except StoreUnavailable as exc:
        logging.warning("cannot count the spool: %s", exc)
        return
    finally:
        spooling.dispose()
    if left:
        logging.warning(
            "%d acknowledged message(s) wait in the spool: `intake-sim drain --db %s` "
            "(or the next `serve --ack spool`) runs them through intake",
            left,
            store.display_url,
        )


async def run_web(store: Store, organisation: Org, options: WebOptions) -> None:
    stop = stop_on_signals()
    async with web_service(store, organisation, options) as address:
        logging.info(
            "web view on http://%s:%d/ (org %s, db %s)",
            *address,
            organisation.name,
            store.display_url,
        )
        await stop.wait()
        logging.info("stopping")
