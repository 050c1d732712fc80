"""A tiny run of the benchmark script, so that `make bench` cannot rot unnoticed.

It checks that the script runs and prints its table, not any speed: figures
come from `make bench` runs, quoted in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run_script(name: str, options: list[str]) -> tuple[int, list[str], str]:
    """(exit status, first column of each table row, all output) of benchmarks/NAME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_SIM_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = [line.split(" | ")[0].strip() for line in done.stdout.splitlines() if " | " in line]
    return done.returncode, rows, done.stdout + done.stderr


def test_bench_script_runs() -> None:
    # The do-nothing handler and SQLite only: no PostgreSQL, no smtp-source, few messages.
    options = ["--messages", "20", "--rounds", "1", "--cases", "2", "--no-smtp-source"]
    options += ["--pipeline-emails", "30", "--report-rows", "2000"]
    status, rows, output = run_script("bench.py", options)
    assert status == 0, output
    assert rows[2:] == ["null", "sqlite", "sqlite, ack spool"], output
    # With --ack spool, the CPU split between the listener and its processor.
    assert "sqlite, ack spool, 2 conn, reused: CPU ms/msg " in output, output
    assert " listener, " in output and " spool processor" in output, output
    # Every target is printed with its figure and verdict.
    targets = [line for line in output.splitlines() if "(target " in line]
    assert [line.split(":")[0].strip() for line in targets] == [
        "processed end to end, sqlite, ack spool / do-nothing",
        "simulate direct / spool processor, same traffic",
        "report over 2,000 ledger rows, CPU s beyond start-up",
    ], output


def test_report_script_runs() -> None:
    """The read benchmark at two small sizes: its table and both target lines."""
    status, rows, output = run_script("report.py", ["--rows", "1000,4000", "--rounds", "1"])
    assert status == 0, output
    assert rows[1:] == ["version", "report", "report --by month", "users"], output
    assert output.count("target: report") == 2, output


def test_pipeline_script_runs() -> None:
    status, _, output = run_script("pipeline.py", ["--emails", "30", "--rounds", "1"])
    assert status == 0, output
    assert "target: simulate direct / processor" in output, output


def test_drain_script_runs() -> None:
    """The processor's own cost: every message drained, and its figures printed."""
    status, _, output = run_script("drain.py", ["--messages", "30"])
    assert status == 0, output
    assert "30 messages: " in output and " CPU ms per message" in output, output


def test_attack_script_runs() -> None:
    """One short attack run beside its own baseline: the row is printed, exit 0 or 2."""
    options = ["--seconds", "0.5", "--clients", "1", "--only", "MAIL FROM"]
    status, rows, output = run_script("attacks.py", options)
    assert status in (0, 2), output
    assert rows[2:] == ["bad byte in MAIL FROM"], output
