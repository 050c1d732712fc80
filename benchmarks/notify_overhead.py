"""What automatic email costs intake: deliveries per second with acknowledgements off,
on (queued in the outbox only), and on with a relay taking them, in one run.

    .venv/bin/python benchmarks/notify_overhead.py [--messages 1000] [--rounds 3]

Each round runs the three cases in turn, starting with a different one each round
(interleaved and rotated, so drift and order effects hit all alike), each on a
fresh SQLite file; one SMTP client reuses its connection. The relay is a catcher in
another process, so it does not share the listener's event loop. Prints the median
rate of each case and its ratio to the "off" case.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from simulator.org import NotifyPolicy, Org, load_org
from simulator.pipeline.batch import prepare
from simulator.service import intake_service
from simulator.smtp.relay import Relay
from simulator.smtp.server import ListenerOptions
from simulator.store.db import open_store

CATCHER = """
import asyncio, sys
from simulator.smtp.server import ListenerOptions, smtp_listener
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
async def main():
    async with smtp_listener(Sink(), ListenerOptions(port=0)) as (host, port):
        print(port, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def message(index: int) -> bytes:
    return (
        f"From: customer{index}@cust.test\r\nTo: support@acme.example\r\n"
        f"Subject: Problem number {index}\r\nMessage-ID: <bench-{index}@cust.test>\r\n"
        "\r\nSomething is broken.\r\n"
    ).encode()


def send_all(port: int, count: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for index in range(count):
            client.sendmail(f"customer{index}@cust.test", ["support@acme.example"], message(index))
    return count / (time.perf_counter() - started)


async def one_case(org: Org, relay: Relay | None, count: int, folder: Path) -> float:
    store = open_store(f"sqlite:///{folder / 'bench.db'}")
    await asyncio.to_thread(prepare, store, org)
    async with intake_service(store, org, ListenerOptions(port=0), relay) as service:
        rate = await asyncio.to_thread(send_all, service.port, count)
        if service.outbox is not None:
            await service.outbox.drain(120)
    store.dispose()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = load_org()
    quiet = replace(base, notify=NotifyPolicy())
    acking = replace(base, notify=replace(base.notify, acknowledge=True, per_recipient_cap=0))
    catcher = subprocess.Popen([sys.executable, "-c", CATCHER], stdout=subprocess.PIPE, text=True)
    try:
        assert catcher.stdout is not None
        relay = Relay("127.0.0.1", int(catcher.stdout.readline()))
        cases = {"off": (quiet, None), "queued": (acking, None), "relayed": (acking, relay)}
        rates: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for round_number in range(args.rounds):
            # Each round starts with another case, so order effects fall on all alike.
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                org, to = cases[name]
                with tempfile.TemporaryDirectory() as folder:
                    rates[name].append(asyncio.run(one_case(org, to, args.messages, Path(folder))))
    finally:
        catcher.terminate()
        catcher.wait()
    baseline = statistics.median(rates["off"])
    print(f"{args.messages} messages x {args.rounds} rounds, 1 client, connection reused")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:8} median {median:8.1f} msg/s  ratio to off {median / baseline:.2f}")


if __name__ == "__main__":
    main()
