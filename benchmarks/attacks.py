"""Honest clients next to one hostile one: what each attack of issue 18 costs everyone else.

Each run starts a fresh `serve` child (SQLite, with the web port) on loopback;
honest clients on 127.0.0.1 send ordinary mail for `--seconds`, alone (the
baseline) and then with one attacker on 127.0.0.2 beside them; each attack run
comes right after a baseline run of its own, `--rounds` times. It prints the
honest throughput and p99 latency as ratios against the paired baseline
(throughput: attack run / baseline; p99: baseline / attack run, so that 1.0 is
"no cost" for both and higher is better), the median over the rounds, and how
many honest messages got a 4xx or no answer. It exits 2 when a ratio is under
0.8 or an honest message got a 4xx.

Everything is bounded: loopback only (the listener is our own child process),
a fixed number of attacker connections, and `--seconds` per run.

    .venv/bin/python benchmarks/attacks.py --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.reliability.listener import ListenerProcess
from simulator.smtp.client import SmtpClient
from simulator.smtp.mailfiles import MailFile

INTAKE = "support@acme.example"
Stop = Any  # a multiprocessing.Event: set() to end an attacker
ATTACKER_ADDRESS = "127.0.0.2"  # all of 127/8 is loopback on Linux: a second client
SLOW_CONNECTIONS = 100
HALF_SENT_REQUESTS = 2000


def honest_mail(client: int, n: int) -> MailFile:
    sender = f"honest{client}@customer.example"
    raw = (
        f"From: {sender}\r\nTo: {INTAKE}\r\nSubject: request {client}-{n}\r\n"
        f"Message-ID: <h{client}-{n}-{time.monotonic_ns()}@customer.example>\r\n\r\n"
        "Hello, the printer is on fire.\r\n"
    ).encode()
    return MailFile("honest", raw, sender)


@dataclass
class Honest:
    latencies: list[float] = field(default_factory=list)
    refused: int = 0  # 4xx or no answer


def run_honest(address: tuple[str, int], clients: int, seconds: float) -> Honest:
    result = Honest()
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def one(index: int) -> None:
        client = SmtpClient(timeout=30)
        n = 0
        try:
            while time.monotonic() < until:
                started = time.monotonic()
                reply = client.attempt(address, honest_mail(index, n), INTAKE)
                with lock:
                    if reply.code == 250:
                        result.latencies.append(time.monotonic() - started)
                    else:
                        result.refused += 1
                n += 1
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


# --- the attackers: each runs until `stop` is set -------------------------------------


def _send_loop(address: tuple[str, int], mail: MailFile, stop: Stop) -> None:
    client = SmtpClient(timeout=120, source_address=ATTACKER_ADDRESS)
    try:
        while not stop.is_set():
            client.attempt(address, mail, INTAKE)
    finally:
        client.close()


def bad_mail_from(address: tuple[str, int], web: int, stop: Stop) -> None:
    raw = b"From: evil@evil.example\r\nSubject: bad byte\r\n\r\nhi\r\n"
    _send_loop(address, MailFile("attack", raw, "\udcff@evil.example"), stop)


def quadratic_html(address: tuple[str, int], web: int, stop: Stop) -> None:
    line = (b"<x y=z " * 141)[:981] + b"\r\n"
    head = b"From: evil@evil.example\r\nSubject: html\r\nContent-Type: text/html\r\n\r\n"
    _send_loop(address, MailFile("attack", head + line * 160, "evil@evil.example"), stop)


def empty_parts(address: tuple[str, int], web: int, stop: Stop) -> None:
    head = (
        b"From: evil@evil.example\r\nSubject: parts\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    )
    raw = head + b"--b\r\n\r\n" * 1_000_000 + b"--b--\r\n"
    _send_loop(address, MailFile("attack", raw, "evil@evil.example"), stop)


def short_lines(address: tuple[str, int], web: int, stop: Stop) -> None:
    head = b"From: evil@evil.example\r\nSubject: lines\r\n\r\n"
    _send_loop(address, MailFile("attack", head + b"x\r\n" * 700_000, "evil@evil.example"), stop)


def _hold(open_one: Callable[[], socket.socket], count: int, stop: Stop) -> None:
    """Keep `count` connections open, dribbling a byte on each every 2 s; reopen the closed."""
    held: list[socket.socket] = []
    while not stop.is_set():
        while len(held) < count and not stop.is_set():
            try:
                held.append(open_one())
            except OSError:
                break
        for sock in list(held):
            try:
                sock.send(b"x")
            except OSError:
                held.remove(sock)
                sock.close()
        stop.wait(2)
    for sock in held:
        sock.close()


def slowloris(address: tuple[str, int], web: int, stop: Stop) -> None:
    def open_one() -> socket.socket:
        sock = socket.create_connection(address, 5, (ATTACKER_ADDRESS, 0))
        sock.sendall(b"EHLO ")
        return sock

    _hold(open_one, SLOW_CONNECTIONS, stop)


def half_sent_http(address: tuple[str, int], web: int, stop: Stop) -> None:
    def open_one() -> socket.socket:
        sock = socket.create_connection((address[0], web), 5, (ATTACKER_ADDRESS, 0))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        return sock

    _hold(open_one, HALF_SENT_REQUESTS, stop)


ATTACKS: dict[str, Callable[[tuple[str, int], int, threading.Event], None]] = {
    "bad byte in MAIL FROM": bad_mail_from,
    "quadratic HTML (157 KB)": quadratic_html,
    "10^6 empty MIME parts (7 MB)": empty_parts,
    "700,000 short lines (2 MB)": short_lines,
    f"slowloris ({SLOW_CONNECTIONS} conns)": slowloris,
    f"half-sent HTTP ({HALF_SENT_REQUESTS})": half_sent_http,
}


# --- runs -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    name: str
    rate: float
    p99: float
    refused: int


def one_run(name: str, attack: Callable[..., None] | None, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory(prefix="intake-sim-attacks-") as scratch:
        web = free_port()
        options = ["--web-port", str(web)]
        if args.client_rate:
            options += ["--max-client-rate", str(args.client_rate)]
        server = ListenerProcess(f"sqlite:///{Path(scratch) / 'attacks.db'}", options)
        address = server.start()
        # The attacker is a process of its own, so that it never shares a GIL with the
        # honest clients it is measured against.
        stop = multiprocessing.Event()
        attacker = None
        try:
            if attack is not None:
                attacker = multiprocessing.Process(target=attack, args=(address, web, stop))
                attacker.start()
                time.sleep(1)  # let the attack take hold first
            honest = run_honest(address, args.clients, args.seconds)
        finally:
            stop.set()
            if attacker is not None:
                attacker.join(30)
                if attacker.is_alive():
                    attacker.kill()
            server.stop()
    latencies = sorted(honest.latencies) or [float("inf")]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Run(name, len(honest.latencies) / args.seconds, p99, honest.refused)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="honest sending per run")
    parser.add_argument("--clients", type=int, default=4, help="honest SMTP clients")
    parser.add_argument("--rounds", type=int, default=1, help="baseline and attack pairs")
    parser.add_argument("--only", default="", help="run the attacks whose name has this text")
    parser.add_argument(
        "--client-rate",
        type=int,
        default=0,
        help="serve --max-client-rate for every run, baseline included (0: the default, off)",
    )
    args = parser.parse_args()
    print(
        "attack | baseline msg/s, p99 ms | honest msg/s | throughput ratio | p99 ms | "
        "p99 ratio | honest 4xx"
    )
    print("--- | --- | --- | --- | --- | --- | ---")
    held = True
    for name, attack in ATTACKS.items():
        if args.only not in name:
            continue
        # Each attack run right after a baseline run of its own: the machine's speed
        # drifts within minutes, and a ratio of two runs far apart measures that.
        pairs = [
            (one_run("none", None, args), one_run(name, attack, args)) for _ in range(args.rounds)
        ]
        rates = [run.rate / base.rate if base.rate else 0.0 for base, run in pairs]
        p99s = [base.p99 / run.p99 if run.p99 else 0.0 for base, run in pairs]
        rate, p99 = statistics.median(rates), statistics.median(p99s)
        refused = sum(run.refused for _, run in pairs)
        honest = statistics.median(run.rate for _, run in pairs)
        worst = statistics.median(run.p99 for _, run in pairs)
        base_rate = statistics.median(base.rate for base, _ in pairs)
        base_p99 = statistics.median(base.p99 for base, _ in pairs)
        print(
            f"{name} | {base_rate:.0f}, {base_p99 * 1000:.0f} | {honest:.0f} | {rate:.2f} | "
            f"{worst * 1000:.0f} | {p99:.2f} | {refused}"
        )
        held = held and rate >= 0.8 and p99 >= 0.8 and refused == 0
    return 0 if held else 2


if __name__ == "__main__":
    sys.exit(main())
