"""One log format for every process intake-sim starts (listener, spool processor).

Repeated lines are rate-limited: a failure that repeats in a tight loop (the
event loop failing to accept a connection, say) once wrote 567,846 identical
tracebacks, 260 MB in 80 s. The first `REPEATS_SHOWN` lines with the same
logger, level, message template and exception type in a `REPEAT_WINDOW_SECONDS`
window are written; the rest are counted, and the next one written after the
window says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

REPEATS_SHOWN = 5
REPEAT_WINDOW_SECONDS = 60.0


@dataclass
class _Seen:
    since: float
    shown: int = 0
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """Drops lines that repeat too often; a line written after some were dropped says so."""

    def __init__(
        self,
        shown: int = REPEATS_SHOWN,
        window: float = REPEAT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.shown, self.window, self.clock = shown, window, clock
        self.seen: dict[tuple[object, ...], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[0] if record.exc_info else None
        key = (record.name, record.levelno, record.msg, error)
        now = self.clock()
        seen = self.seen.get(key)
        if seen is None or now - seen.since >= self.window:
            if len(self.seen) > 10_000:  # many distinct lines: forget, rather than grow
                self.seen.clear()
            dropped = seen.dropped if seen is not None else 0
            seen = self.seen[key] = _Seen(now)
            if dropped:
                record.msg = f"{record.msg} ({dropped} more like this left out)"
        if seen.shown >= self.shown:
            seen.dropped += 1
            return False
        seen.shown += 1
        return True


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
