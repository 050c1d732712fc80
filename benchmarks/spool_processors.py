"""Benchmark: PostgreSQL spool processors side by side, draining one spool.

    .venv/bin/python benchmarks/spool_processors.py --pg URL [--messages 2000]
        [--processors 1,2] [--rounds 3]

Each round, for each processor count P in turn: a fresh database on the server
named by --pg (or INTAKE_SIM_BENCH_PG, INTAKE_SIM_TEST_PG), its spool filled with
`bench.py`'s ~2 KB messages (997 senders, the bench org; not timed), then P
processes started together, each running `drain` over the one spool. It prints
processed msg/s (all messages over the time until the spool is empty) and the
processors' CPU ms per message, medians over the rounds, and each count's rate
over one processor's. No listener runs: this is the processors' own scaling,
which `bench.py --processors 1,2` shows end to end beside a listener and its
client on the same cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench

APPEND_BATCH = 50
START_TIMEOUT_SECONDS = 120.0
DRAIN_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class Run:
    processors: int
    rate: float  # processed msg/s
    cpu_ms: float  # processors' CPU per message
    split: tuple[int, ...]  # messages each processor ran


def _drain(url: str, org_file: str, processors: int, start: Any, done: Any) -> None:
    """One processor process: connect, wait for the others, drain, report."""
    from simulator.delivery.spool import drain, open_spool
    from simulator.org import load_org
    from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
    from simulator.store.db import Store

    org, store = load_org(Path(org_file)), Store(url)
    spool = open_spool(store, processors=processors)
    try:
        spool.backlog()  # connected: ready
        start.wait(START_TIMEOUT_SECONDS)
        cpu = time.process_time()
        ran = drain(spool, org, DEFAULT_MIME_LIMITS)
        done.put((ran, time.process_time() - cpu))
    finally:
        spool.dispose()
        store.dispose()


def _fill(url: str, org_file: Path, messages: int) -> None:
    from simulator.delivery.spool import open_spool
    from simulator.domain import Submission
    from simulator.org import load_org
    from simulator.pipeline.batch import prepare
    from simulator.store.db import open_store

    org = load_org(org_file)
    store = open_store(url)
    prepare(store, org)
    spool = open_spool(store, org)
    try:
        mail = bench.make_messages(messages, f"drain{os.getpid()}")
        for at in range(0, messages, APPEND_BATCH):
            now = datetime.now(UTC)
            spool.append(
                [Submission(raw, s, [bench.RCPT], now) for s, raw in mail[at : at + APPEND_BATCH]]
            )
    finally:
        spool.dispose()
        store.dispose()


def run_once(pg: str, org_file: Path, messages: int, processors: int) -> Run:
    with bench.fresh_pg_database(pg) as url:
        _fill(url, org_file, messages)
        context: Any = multiprocessing.get_context("spawn")
        start, done = context.Event(), context.Queue()
        workers = [
            context.Process(target=_drain, args=(url, str(org_file), processors, start, done))
            for _ in range(processors)
        ]
        for worker in workers:
            worker.start()
        time.sleep(2.0)  # let every process import and connect before the clock starts
        started = time.perf_counter()
        start.set()
        reports = [done.get(timeout=DRAIN_TIMEOUT_SECONDS) for _ in workers]
        elapsed = time.perf_counter() - started
        for worker in workers:
            worker.join()
    ran = sum(n for n, _ in reports)
    assert ran == messages, f"{ran} of {messages} processed"
    cpu = sum(c for _, c in reports)
    return Run(processors, ran / elapsed, cpu * 1000 / ran, tuple(n for n, _ in reports))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument(
        "--processors", type=lambda t: [int(n) for n in t.split(",") if n], default=[1, 2]
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    pg = args.pg or os.environ.get("INTAKE_SIM_BENCH_PG") or os.environ.get("INTAKE_SIM_TEST_PG")
    if not pg:
        raise SystemExit("no PostgreSQL URL (--pg, INTAKE_SIM_BENCH_PG, INTAKE_SIM_TEST_PG)")
    runs: dict[int, list[Run]] = {n: [] for n in args.processors}
    with tempfile.TemporaryDirectory(prefix="intake-sim-bench-") as tmp:
        org_file = Path(tmp) / "bench-org.toml"
        org_file.write_text(bench.BENCH_ORG)
        for round_no in range(1, args.rounds + 1):
            for n in args.processors:  # alternating, so that drift hits every count alike
                run = run_once(pg, org_file, args.messages, n)
                runs[n].append(run)
                print(
                    f"round {round_no}, {n} processor(s): {run.rate:,.0f} msg/s, "
                    f"{run.cpu_ms:.2f} CPU ms/msg, split {list(run.split)}",
                    flush=True,
                )
    med = statistics.median
    first = args.processors[0]
    print(f"\n{args.messages} messages, medians over {args.rounds} round(s):")
    for n, done in runs.items():
        rate, cpu = med(r.rate for r in done), med(r.cpu_ms for r in done)
        paired = med(r.rate / b.rate for r, b in zip(done, runs[first], strict=True))
        print(
            f"  {n} processor(s): {rate:,.0f} msg/s, {cpu:.2f} CPU ms/msg, "
            f"rate / {first} processor(s) paired per round: {paired:.2f}"
        )


if __name__ == "__main__":
    main()
