"""The spool processor: a process of its own that runs spooled messages through
intake, at the lowest priority, woken by its listener through a pipe
(see simulator.delivery.spool).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from simulator.delivery.spool import HELD_POLL_SECONDS, POLL_SECONDS, Spool, open_spool
from simulator.errors import StoreUnavailable
from simulator.logs import setup_logging
from simulator.org import Org
from simulator.pipeline.parse import MimeLimits
from simulator.store.db import Store

log = logging.getLogger("intake_sim.spool")

# The processor yields the CPU to the listener: acknowledging is what clients wait for,
# and the backlog it leaves is worked off as soon as the listener is idle.
PROCESSOR_NICENESS = 19
# After a storage failure the processor waits this long before trying again.
RETRY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ProcessorConfig:
    """Everything the processor process needs; it is pickled into the child."""

    url: str
    org: Org
    mime_limits: MimeLimits
    busy_timeout_ms: int
    log_level: int
    # How many processors the listener runs on this database (`serve --processors`).
    processors: int = 1


def run_processor(config: ProcessorConfig, wakeups: Connection, ready: Connection) -> None:
    """The processor's main loop, in its own process, until the listener closes the
    wake-up pipe (a clean stop) or dies (the kernel closes it)."""
    setup_logging(config.log_level)
    _yield_the_cpu()
    store = Store(config.url, busy_timeout_ms=config.busy_timeout_ms)
    ready.send_bytes(b"ready")  # imports done: the listener may open its port
    ready.close()
    spool: Spool | None = None
    pause = 0.0  # nothing to wait for while a backlog is being worked off
    try:
        while _listener_there(wakeups.fileno(), pause):
            try:
                spool = spool or open_spool(store, processors=config.processors)
                results = spool.process(config.org, config.mime_limits)
                pause = 0.0 if results else _idle_pause(spool)
            except StoreUnavailable as exc:
                log.warning("spool not processed: %s", exc)
                store.dispose()
                pause = RETRY_SECONDS
                continue
            for result in results:
                log.info(result.log_line())
    finally:
        if spool is not None:
            spool.dispose()
        store.dispose()


def _idle_pause(spool: Spool) -> float:
    """After a batch that found nothing to run: a short wait when rows are spooled but
    held by another processor (it will be done with them soon), else until woken."""
    return HELD_POLL_SECONDS if spool.backlog() else POLL_SECONDS


def _yield_the_cpu() -> None:
    """The lowest priority this process can give itself. On Linux SCHED_IDLE, beyond
    nice 19: a waking listener or client always preempts it, and the scheduler
    counts a core running only it as idle when it places them."""
    os.nice(PROCESSOR_NICENESS)
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is None:
        return
    try:
        os.sched_setscheduler(0, idle, os.sched_param(0))
    except OSError as exc:  # a container may forbid it; nice 19 still holds
        log.debug("spool processor stays at nice %d: %s", PROCESSOR_NICENESS, exc)


def _listener_there(fd: int, timeout: float) -> bool:
    """Wait up to `timeout` for a wake-up; False once the pipe is closed (stop)."""
    if not wait([fd], timeout):
        return True
    return os.read(fd, 65536) != b""  # b"": end of file, every write end is closed


class SpoolProcessor:
    """The listener's handle on its processor process: start, wake, stop.

    A pipe carries the wake-ups, one byte each, and not a shared lock or event:
    a listener killed while holding one would leave the processor stuck on it,
    whereas a pipe whose writer dies simply reads as closed, so the processor
    stops when its listener is gone however that happened.
    """

    def __init__(self, config: ProcessorConfig, name: str = "intake-sim-spool") -> None:
        # spawn, not fork: the listener has an event loop and threads a fork would copy.
        context: Any = multiprocessing.get_context("spawn")
        self._wakeups, self._waker = context.Pipe(duplex=False)
        self._ready, self._ready_writer = context.Pipe(duplex=False)
        self._process = context.Process(
            target=run_processor,
            args=(config, self._wakeups, self._ready_writer),
            name=name,
            daemon=True,
        )

    def start(self) -> None:
        """Start the process and wait until it has imported what it needs, so that its
        start-up (a second or so of CPU) is over before the listener takes mail."""
        self._process.start()
        # The child has its own copies; ours would hide a pipe the child closed.
        self._wakeups.close()
        self._ready_writer.close()
        # Never block the event loop: a full pipe already holds enough wake-ups.
        os.set_blocking(self._waker.fileno(), False)
        try:
            if not self._ready.poll(STOP_TIMEOUT_SECONDS):
                raise EOFError
            self._ready.recv_bytes()
        except (EOFError, OSError):
            # The listener still spools; the next processor or `drain` runs the messages.
            log.warning("spool processor did not start; messages stay spooled")
        finally:
            self._ready.close()
        log.info("spool processor started (pid %s)", self._process.pid)

    def wake(self) -> None:
        try:
            os.write(self._waker.fileno(), b"!")
        except BlockingIOError:
            pass
        except OSError as exc:  # the processor is gone; the spool keeps what we accept
            log.warning("spool processor unreachable (%s); messages stay spooled", exc)

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def stop(self) -> None:
        """Close the pipe: the processor finishes the batch in hand and exits; what is
        left stays in the spool for the next processor or `intake-sim drain`."""
        self._waker.close()
        self._process.join(STOP_TIMEOUT_SECONDS)
        if self._process.is_alive():
            log.warning("spool processor did not stop in time; terminating it")
            self._process.terminate()
            self._process.join()
