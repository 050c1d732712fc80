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


def test_bench_script_runs() -> None:
    # The do-nothing handler and SQLite only: no PostgreSQL, no smtp-source, few messages.
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_SIM_")}
    options = ["--messages", "20", "--rounds", "1", "--cases", "2", "--no-smtp-source"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split(" | ")[0].strip() for line in done.stdout.splitlines() if " | " in line]
    assert rows[2:] == ["null", "sqlite", "sqlite, ack spool"], done.stdout


def test_attack_script_runs() -> None:
    """One short attack run beside its baseline: the table is printed, exit 0 or 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_SIM_")}
    options = ["--seconds", "0.5", "--clients", "1", "--only", "MAIL FROM"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "attacks.py"), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 2), done.stdout + done.stderr
    rows = [line.split(" | ")[0] for line in done.stdout.splitlines() if " | " in line]
    assert rows[2:] == ["none (baseline)", "bad byte in MAIL FROM"], done.stdout
