"""Benchmark: `simulate --via direct` against the spool processor, on the same traffic.

    .venv/bin/python benchmarks/pipeline.py [--emails 2000] [--rounds 3]
    .venv/bin/python benchmarks/pipeline.py one direct|processor --emails N

Both paths get the same seeded synthetic traffic with the sample org (its
acknowledgements on), each on a fresh SQLite file, each in a fresh process:

- `processor`: the traffic is first appended to the spool (not timed), then the
  spool processor's own batches (FileSpool.process, as `drain` runs them) are timed;
- `direct`: `run_direct`, what `simulate --via direct` does, timed once the
  database is ready (schema and directory, as for the processor): it also builds
  the messages, which the processor is handed ready-made.

The ratio is direct msg/s over processor msg/s, paired within a round; the target
is at least 1.0 (simulate no slower per message than the processor).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BATCH = 200
TARGET = 1.0


def _traffic(emails: int) -> tuple[object, object]:
    from simulator.org import load_org
    from simulator.simulation.traffic import TrafficParams

    return load_org(), TrafficParams(emails=emails)


def processor_rate(emails: int, scratch: Path) -> float:
    from simulator.delivery.spool import drain, open_spool
    from simulator.domain import Submission
    from simulator.pipeline.batch import prepare
    from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
    from simulator.simulation.traffic import build_message, plan
    from simulator.store.db import open_store

    org, params = _traffic(emails)
    store = open_store(f"sqlite:///{scratch / 'processor.db'}")
    prepare(store, org, params.start)  # type: ignore[arg-type, attr-defined]
    spool = open_spool(store)
    recipients = [org.intake_addresses[0]]  # type: ignore[attr-defined]
    batch: list[Submission] = []
    for mail in plan(params, org):  # type: ignore[arg-type]
        raw, envelope_from = build_message(params, org, mail)  # type: ignore[arg-type]
        batch.append(
            Submission(raw, envelope_from, recipients, datetime.fromtimestamp(mail.at, UTC))
        )
        if len(batch) == BATCH:
            spool.append(batch)
            batch = []
    if batch:
        spool.append(batch)
    started = time.perf_counter()
    done = drain(spool, org, DEFAULT_MIME_LIMITS)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    spool.dispose()
    store.dispose()
    return done / elapsed


def direct_rate(emails: int, scratch: Path) -> float:
    from simulator.pipeline.batch import prepare
    from simulator.simulation.run import run_direct
    from simulator.store.db import open_store

    org, params = _traffic(emails)
    store = open_store(f"sqlite:///{scratch / 'direct.db'}")
    # The database is made ready first, as for the processor: a one-off cost, not a
    # per-message one (run_direct's own prepare then finds nothing to do).
    prepare(store, org, params.start)  # type: ignore[arg-type, attr-defined]
    started = time.perf_counter()
    run_direct(store, org, params, lambda _: None)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    store.dispose()
    return emails / elapsed


def run_one(path: str, emails: int) -> float:
    """One measurement in a fresh process, so no cache of one path warms the other."""
    done = subprocess.run(
        [sys.executable, __file__, "one", path, "--emails", str(emails)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{path} run failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def compare(emails: int, rounds: int) -> tuple[float, float, float]:
    """(median processor msg/s, median direct msg/s, median paired ratio)."""
    processor, direct, ratios = [], [], []
    for round_no in range(rounds):
        # Alternate which goes first, so a drift of the machine's speed favours neither.
        if round_no % 2:
            d = run_one("direct", emails)
            p = run_one("processor", emails)
        else:
            p = run_one("processor", emails)
            d = run_one("direct", emails)
        processor.append(p)
        direct.append(d)
        ratios.append(d / p)
    med = statistics.median
    return med(processor), med(direct), med(ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="*", help="`one direct` or `one processor`: a single run")
    parser.add_argument("--emails", type=int, default=2000, help="messages per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.mode[:1] == ["one"]:
        with tempfile.TemporaryDirectory() as scratch:
            measure = direct_rate if args.mode[1] == "direct" else processor_rate
            print(f"msg/s {measure(args.emails, Path(scratch)):.1f}")
        return 0
    processor, direct, ratio = compare(args.emails, args.rounds)
    print(f"spool processor: {processor:,.0f} msg/s; simulate --via direct: {direct:,.0f} msg/s")
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"target: simulate direct / processor = {ratio:.2f} (>= {TARGET:g}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
