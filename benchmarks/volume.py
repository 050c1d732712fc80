"""Benchmark: the volume sweep, and synthetic traffic through the real pipeline.

    .venv/bin/python benchmarks/volume.py                  # sweep 10^2..10^6, 3 rounds
    .venv/bin/python benchmarks/volume.py --direct 100000  # plus 10^5 messages, direct

Each figure is the median of the rounds. The baseline for the pipeline is the
same traffic built into RFC 5322 bytes without being stored, measured in the
same run, so the ratio says what intake itself costs on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from simulator.org import load_org
from simulator.simulation import sweep as volume
from simulator.simulation.run import run_direct
from simulator.simulation.traffic import TrafficParams, build_message, plan
from simulator.store.db import open_store

VOLUMES = [100, 1_000, 10_000, 100_000, 1_000_000]


def timed(action: object) -> float:
    began = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--direct", type=int, default=0, help="messages through the pipeline")
    args = parser.parse_args()
    org = load_org()
    params = TrafficParams()

    sweeps = [timed(lambda: volume.sweep(params, org, VOLUMES)) for _ in range(args.rounds)]
    print(
        f"sweep {VOLUMES[0]:,}..{VOLUMES[-1]:,} ({sum(VOLUMES):,} messages): "
        f"median {statistics.median(sweeps):.2f} s over {args.rounds} round(s)"
    )
    if not args.direct:
        return
    traffic = TrafficParams(emails=args.direct)

    def build_only() -> None:
        for mail in plan(traffic, org):
            build_message(traffic, org, mail)

    baseline = timed(build_only)
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{Path(scratch) / 'bench.db'}")
        pipeline = timed(lambda: run_direct(store, org, traffic, lambda _: None))
        store.dispose()
    print(
        f"{args.direct:,} messages: built only {args.direct / baseline:,.0f} msg/s; "
        f"built + intake pipeline + SQLite (direct) {args.direct / pipeline:,.0f} msg/s; "
        f"pipeline runs at {baseline / pipeline:.1%} of the build-only rate"
    )


if __name__ == "__main__":
    main()
