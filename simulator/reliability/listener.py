"""A real `intake-sim serve` process, for tests and commands that must kill it.

The listener runs as a child process (`python -m simulator serve --port 0`);
its bound address is read from the "listening on smtp://HOST:PORT" log line
(`listening_address`, for every reader of that line), and its log is drained
by a thread so the pipe never fills up and stalls it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence

from simulator.errors import IntakeSimError

LISTENING = re.compile(r"listening on smtp://(\S+):(\d+)")
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 60
LOG_TAIL_LINES = 50


def listening_address(log: str) -> tuple[str, int] | None:
    """(host, port) of the first "listening on smtp://HOST:PORT" line in `log` (one line
    or a whole log); None when there is none."""
    found = LISTENING.search(log)
    return (found.group(1), int(found.group(2))) if found else None


class ListenerProcess:
    """One `serve` child at a time: start, kill (SIGKILL), stop (SIGTERM), restart."""

    def __init__(self, db: str, extra_args: Sequence[str] = ()) -> None:
        self.db = db
        self.extra_args = list(extra_args)
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._process: subprocess.Popen[str] | None = None
        self._drainer: threading.Thread | None = None
        self.starts = 0

    def start(self) -> tuple[str, int]:
        """Start the listener on a free port; returns (host, port) once it listens."""
        command = [sys.executable, "-m", "simulator", "serve", "--port", "0", "--db", self.db]
        process = subprocess.Popen(
            [*command, *self.extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._process = process
        address: list[tuple[str, int]] = []
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(process, address, ready), daemon=True).start()
        if not ready.wait(START_TIMEOUT_SECONDS) or not address:
            self.kill()
            log = "\n".join(self.tail)
            raise IntakeSimError(f"the listener did not start; its log ends:\n{log}")
        self.starts += 1
        return address[0]

    def _drain(
        self,
        process: subprocess.Popen[str],
        address: list[tuple[str, int]],
        ready: threading.Event,
    ) -> None:
        assert process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                self.tail.append(line.rstrip("\n"))
                found = listening_address(line) if not ready.is_set() else None
                if found:
                    address.append(found)
                    ready.set()
        ready.set()  # the process ended: stop waiting, start() reports it

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush; what was committed must be all there is."""
        self._signal(signal.SIGKILL)

    def stop(self) -> int | None:
        """SIGTERM: the listener finishes queued deliveries and exits; returns its status."""
        return self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signum)
        try:
            status = process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        if self._drainer is not None:
            self._drainer.join(STOP_TIMEOUT_SECONDS)  # its log pipe is closed when it ends
        return status

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None
