"""Benchmark: the read commands over a large ledger, beside the command line's start-up.

    .venv/bin/python benchmarks/report.py [--rows 100000,1000000] [--rounds 3]

For each size a fresh SQLite file gets that many ledger rows, filled with set-based
INSERT ... SELECT statements over a recursive row counter inside SQLite (no Python
loop, no ORM), so even 10^6 rows are written in seconds: half as many users, each with
an issue and one counted delivery, a Team seat from that delivery, and a second ledger
row (the Team seat given up for even users, a Support seat for odd ones).

Each command then runs as a fresh `python -m simulator` process; `version` is timed the
same way, and "beyond start-up" is a command's median minus the median of `version`
from the same round of runs. Peak RSS comes from the child's own resource usage
(wait4), and the memory ratio compares the largest size with the smallest.

Target: `report` over 10^6 ledger rows at most 1 s beyond start-up, with peak memory
flat (at most 1.5x) from 10^5 to 10^6 rows.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START = "2026-01-01 00:00:00"
SPAN_SECONDS = 365 * 86400
AS_OF = "2027-01-01T00:00:00Z"
COMMANDS: dict[str, list[str]] = {
    "version": ["version"],
    "report": ["report", "--as-of", AS_OF, "-f", "json"],
    "report --by month": ["report", "--by", "month", "--as-of", AS_OF, "-f", "json"],
    "users": ["users", "-f", "json"],
}
REPORT_TARGET_SECONDS = 1.0
MEMORY_FLAT = 1.5


def _stamp(seconds: str) -> str:
    """A SQL expression for START plus `seconds`, in the text form the UTCDateTime
    columns hold on SQLite (microseconds included), so range queries compare alike."""
    return (
        f"strftime('%Y-%m-%d %H:%M:%S', '{START}', '+' || ({seconds}) || ' seconds') || '.000000'"
    )


def build(path: Path, ledger_rows: int) -> None:
    """A database at the current schema holding `ledger_rows` seat events."""
    from simulator.store.db import Store

    store = Store(f"sqlite:///{path}")
    store.ensure_schema()
    store.dispose()
    users = max(1, ledger_rows // 2)
    step = max(1, SPAN_SECONDS // users)
    at = _stamp(f"n * {step}")
    later = _stamp(f"n * {step} + 86400")
    counter = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :users) "
    statements = [
        f"INSERT INTO users (id, email, name, role, origin, in_directory, logs_in, created_at,"
        f" first_seen) {counter}SELECT n, 'user' || n || '@customer.example', 'User ' || n,"
        f" 'customer', 'sender', 0, 0, {at}, {at} FROM c",
        f"INSERT INTO issues (number, subject, submitter_id, created_at)"
        f" {counter}SELECT n, 'Issue ' || n, n, {at} FROM c",
        f"INSERT INTO deliveries (id, received_at, envelope_from, recipients, message_id, sender,"
        f' sender_name, subject, body_text, attachments, in_reply_to, "references", outcome,'
        f" issue_number, user_id, size, channel, sender_source, raw, intake_address)"
        f" {counter}SELECT n, {at}, 'user' || n || '@customer.example', 'support@acme.example',"
        f" 'm' || n || '@customer.example', 'user' || n || '@customer.example', '', 'Issue ' || n,"
        f" '', '[]', '', '', 'created_issue', n, n, 100, 'smtp', 'from', x'', "
        f" 'support@acme.example' FROM c",
        f"INSERT INTO seat_events (at, user_id, model, transition, delta, reason, delivery_id)"
        f" {counter}SELECT {at}, n, 'team', 1, 1, 'first_email', n FROM c",
        f"INSERT INTO seat_events (at, user_id, model, transition, delta, reason, delivery_id)"
        f" {counter}SELECT {later}, n, CASE n % 2 WHEN 0 THEN 'team' ELSE 'support' END,"
        f" CASE n % 2 WHEN 0 THEN 2 ELSE 1 END, CASE n % 2 WHEN 0 THEN -1 ELSE 1 END,"
        f" CASE n % 2 WHEN 0 THEN 'role_changed' ELSE 'directory_agent' END, NULL"
        f" FROM c WHERE n <= :second",
    ]
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = OFF")
        for statement in statements:
            connection.execute(statement, {"users": users, "second": ledger_rows - users})
        connection.commit()
    finally:
        connection.close()


@dataclass
class Run:
    seconds: float
    peak_kib: int


def run(url: str, command: list[str]) -> Run:
    """One fresh command-line process; its wall time and its own peak RSS."""
    env = {**os.environ, "INTAKE_SIM_DB": url}
    env = {k: v for k, v in env.items() if k == "INTAKE_SIM_DB" or not k.startswith("INTAKE_SIM")}
    began = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "simulator", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        assert child.stderr is not None
        raise SystemExit(f"{' '.join(command)} failed: {child.stderr.read().decode()}")
    return Run(elapsed, int(usage.ru_maxrss))


def measure(url: str, rounds: int, names: list[str] | None = None) -> dict[str, tuple[float, int]]:
    """Per command (all, or `names`): median seconds beyond start-up and the highest
    peak RSS (KiB)."""
    chosen = [n for n in COMMANDS if n != "version" and (names is None or n in names)]
    beyond: dict[str, list[float]] = {name: [] for name in chosen}
    peaks: dict[str, int] = dict.fromkeys(["version", *chosen], 0)
    startup: list[float] = []
    for _ in range(rounds):
        # Start-up is timed inside each round, next to the commands it is taken from.
        base = run(url, COMMANDS["version"])
        startup.append(base.seconds)
        peaks["version"] = max(peaks["version"], base.peak_kib)
        for name in chosen:
            command = COMMANDS[name]
            done = run(url, command)
            beyond[name].append(done.seconds - base.seconds)
            peaks[name] = max(peaks[name], done.peak_kib)
    result = {name: (statistics.median(times), peaks[name]) for name, times in beyond.items()}
    result["version"] = (statistics.median(startup), peaks["version"])
    return result


def report_over(rows: int, rounds: int) -> tuple[float, float]:
    """(seconds beyond start-up, peak MiB) of `report` over a fresh ledger of `rows`."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "ledger.db"
        build(path, rows)
        seconds, peak = measure(f"sqlite:///{path}", rounds, ["report"])["report"]
    return seconds, peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000", help="ledger sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command per size")
    args = parser.parse_args()
    sizes = [int(value) for value in args.rows.split(",")]
    figures: dict[int, dict[str, tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            path = Path(scratch) / f"ledger-{size}.db"
            began = time.perf_counter()
            build(path, size)
            print(f"built {size:,} ledger rows in {time.perf_counter() - began:.1f} s")
            figures[size] = measure(f"sqlite:///{path}", args.rounds)
            path.unlink()
    print()
    print("command | " + " | ".join(f"{s:,} rows: s beyond start-up, peak MiB" for s in sizes))
    print("---|" + "---|" * len(sizes))
    for name in COMMANDS:
        cells = []
        for size in sizes:
            seconds, peak = figures[size][name]
            label = "s start-up" if name == "version" else "s"
            cells.append(f"{seconds:.2f} {label}, {peak / 1024:.1f} MiB")
        print(f"{name} | " + " | ".join(cells))
    smallest, largest = sizes[0], sizes[-1]
    seconds = figures[largest]["report"][0]
    memory = figures[largest]["report"][1] / max(1, figures[smallest]["report"][1])
    time_ok = seconds <= REPORT_TARGET_SECONDS
    memory_ok = memory <= MEMORY_FLAT
    print()
    print(
        f"target: report over {largest:,} rows {seconds:.2f} s beyond start-up"
        f" (<= {REPORT_TARGET_SECONDS:g} s): {'met' if time_ok else 'NOT met'}"
    )
    print(
        f"target: report peak memory {largest:,} / {smallest:,} rows = {memory:.2f}x"
        f" (<= {MEMORY_FLAT:g}x): {'met' if memory_ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
