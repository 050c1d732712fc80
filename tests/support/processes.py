"""Real `intake-sim` processes for tests: start on port 0, read the bound ports from the log."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from simulator.reliability.listener import listening_address

WEB_LINE = re.compile(r"web view on http://[^/\s]+:(\d+)/")
PortOf = Callable[[str], int | None]  # the port a log line reports, or None


def smtp_port_in(line: str) -> int | None:
    found = listening_address(line)
    return found[1] if found else None


def web_port_in(line: str) -> int | None:
    found = WEB_LINE.search(line)
    return int(found.group(1)) if found else None


@dataclass
class Running:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    log: list[str]


@contextmanager
def intake_sim(
    args: list[str], wanted: dict[str, PortOf], db: str, open_files: int | None = None
) -> Iterator[Running]:
    """Run `python -m simulator ARGS` until every reader in `wanted` has found its port;
    stop it with SIGTERM afterwards and check that it exited cleanly. `open_files` lowers
    the child's soft limit on file descriptors (RLIMIT_NOFILE)."""
    env = {**os.environ, "INTAKE_SIM_DB": db}

    def limit() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=limit,
    )
    assert process.stderr is not None
    running = Running(process, {}, [])
    try:
        deadline = time.monotonic() + 30
        while len(running.ports) < len(wanted) and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            running.log.append(line)
            for name, port_of in wanted.items():
                port = port_of(line)
                if port is not None:
                    running.ports[name] = port
        assert set(running.ports) == set(wanted), "".join(running.log)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
        running.log.append(rest)
    assert process.returncode == 0, "".join(running.log)
