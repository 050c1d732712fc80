"""Waiting on a spool: until the spool processor has taken every message off it."""

from __future__ import annotations

import time

from simulator.delivery.spool import open_spool
from simulator.store.db import Store

DRAIN_TIMEOUT_SECONDS = 60.0


def wait_until_drained(store: Store, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
    spooled = open_spool(store)
    try:
        deadline = time.monotonic() + timeout
        while (left := spooled.backlog()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == 0, f"{left} message(s) still spooled after {timeout} s"
    finally:
        spooled.dispose()
