"""Benchmark: the spool processor's own cost per message, on bench.py's traffic.

    .venv/bin/python benchmarks/drain.py [--messages 2000] [--pg URL] [--profile]

Fills a fresh spool (SQLite, or a fresh database on the PostgreSQL server that
--pg names) with the two kinds of mail `bench.py` sends: half smtp-source's
(one sender, one subject), half its asyncio client's (`make_messages`, 997
senders); the bench org. Then one `drain` runs them through the pipeline as
the processor does, and this prints msg/s and the CPU per message of this
process, which on SQLite is the processor's whole cost (on PostgreSQL the
server's own CPU is not in it). With --profile, cProfile's top entries follow.
Filling the spool is not timed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is no package

import bench

APPEND_BATCH = 100
START = datetime(2026, 11, 1, tzinfo=UTC)


def source_like(count: int) -> list[tuple[str, bytes]]:
    """What smtp-source sends with bench.py's options: one sender, one subject."""
    body = "".join(bench.BODY_LINE + "\r\n" for _ in range(2048 // (len(bench.BODY_LINE) + 2)))
    mail = []
    for i in range(count):
        head = (
            f"From: sender@example.test\r\nTo: {bench.RCPT}\r\nSubject: bench subject\r\n"
            f"Message-Id: <{i}.source@bench.local>\r\n"
            "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n"
        )
        mail.append(("sender@example.test", (head + body).encode()))
    return mail


def drain_once(url: str, org_file: Path, messages: int, profile: bool) -> tuple[int, float, float]:
    """(messages drained, wall seconds, CPU seconds) of one drain of a filled spool."""
    from simulator.delivery.spool import drain, open_spool
    from simulator.domain import Submission
    from simulator.org import load_org
    from simulator.pipeline.batch import prepare
    from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
    from simulator.store.db import open_store

    org = load_org(org_file)
    store = open_store(url)
    prepare(store, org, START)
    spool = open_spool(store)
    mail = source_like(messages // 2) + bench.make_messages(messages - messages // 2, "drain")
    now = datetime.now(UTC)
    for at in range(0, len(mail), APPEND_BATCH):
        chunk = mail[at : at + APPEND_BATCH]
        spool.append([Submission(raw, sender, [bench.RCPT], now) for sender, raw in chunk])
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    done = drain(spool, org, DEFAULT_MIME_LIMITS)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    spool.dispose()
    store.dispose()
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    return done, wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pg", help="a PostgreSQL server's URL: drain on a fresh database there")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        org_file = Path(scratch) / "bench-org.toml"
        org_file.write_text(bench.BENCH_ORG)
        if args.pg:
            with bench.fresh_pg_database(args.pg) as url:
                done, wall, cpu = drain_once(url, org_file, args.messages, args.profile)
        else:
            url = f"sqlite:///{Path(scratch) / 'drain.db'}"
            done, wall, cpu = drain_once(url, org_file, args.messages, args.profile)
    if done != args.messages:
        raise SystemExit(f"drained {done} of {args.messages} messages")
    print(f"{done} messages: {done / wall:,.0f} msg/s, {cpu * 1000 / done:.3f} CPU ms per message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
