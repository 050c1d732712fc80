"""Throughput benchmark: intake-sim against a do-nothing aiosmtpd handler, in one run.

Usage (from the repository root, with the project installed in .venv):

    .venv/bin/python benchmarks/bench.py [--messages N] [--rounds R] [--pg URL] [--processors 1,2]
    .venv/bin/python benchmarks/bench.py rss [--counts 10000,100000]

Every server runs as its own subprocess, started fresh for each round, so its
peak RSS (VmHWM) can be read from /proc and no state carries over:

  (a) `null`: aiosmtpd with the listener's SMTP options, whose handler only answers 250;
  (b) `sqlite`: `intake-sim serve` on a fresh SQLite file;
  (c) `postgresql`: `intake-sim serve` on a fresh database created (and dropped) on the
      server named by --pg, INTAKE_SIM_BENCH_PG or INTAKE_SIM_TEST_PG; skipped without one;
      with `--processors 1,2`, `--ack spool` also with 2 spool processors side by side.

Load comes from postfix's `smtp-source` when present (installed with apt-get when missing
and we are root), and always from a built-in asyncio client too, which also measures the
acknowledgement latency (end of DATA to the 250) that smtp-source cannot report.

A shared machine's speed drifts by tens of percent within minutes, so the servers
of a round are all started first and each load is then run against them one after
the other (null, sqlite, postgresql); a ratio is taken between two runs seconds
apart, within a round, and the table shows the median over rounds of each figure
and of each ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RCPT = "support@acme.example"
BODY_LINE = "The quick brown fox files a ticket about the lazy dog's printer again. "
BENCH_ORG = """\
# The sample org with the flood filter off: smtp-source sends every message from one
# sender, and the benchmark means to measure the whole path (user, issue, seats),
# not the cheap `filtered/flood` one.
[organization]
name = "Bench"
internal_domains = ["acme.example"]
intake_addresses = ["support@acme.example"]

[intake]
flood_limit = 0

[[agents]]
email = "ava@acme.example"
name = "Ava Agent"
"""


# --- the do-nothing server ------------------------------------------------------------


class NullHandler:
    """Accepts everything and keeps nothing: the ceiling for one aiosmtpd process."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 OK"


async def _null_server(port: int) -> None:
    # The listener's own factory, so SMTP options (hostname, SMTPUTF8, size) are identical.
    from simulator.smtp.server import ListenerOptions, smtp_listener

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with smtp_listener(NullHandler(), ListenerOptions(port=port)) as (host, bound):
        print(f"listening on smtp://{host}:{bound}", file=sys.stderr, flush=True)
        await stop.wait()


# --- servers as subprocesses ----------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path
    db_url: str | None = None  # set for --ack spool: wait until its spool is empty

    def peak_rss_kib(self) -> int:
        """Peak resident set of the server and its worker processes, summed."""
        return sum(_vm_hwm(pid) for pid in [self.process.pid, *_children(self.process.pid)])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server and its child processes have used so far."""
        pids = [self.process.pid, *_children(self.process.pid)]
        return sum(_cpu_ticks(pid) for pid in pids) / os.sysconf("SC_CLK_TCK")

    def listener_cpu_seconds(self) -> float:
        """CPU time of the listener process alone, without its spool processors."""
        return _cpu_ticks(self.process.pid) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    try:
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(child) for child in text]
    except OSError:
        pass
    return found + [grand for child in found for grand in _children(child)]


def start_server(name: str, command: list[str], workdir: Path) -> Server:
    from simulator.reliability.listener import listening_address

    log = workdir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        address = listening_address(log.read_text(errors="replace"))
        if address:
            return Server(name, process, *address, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{name} server did not start:\n{log.read_text(errors='replace')}")


def null_command() -> list[str]:
    return [sys.executable, __file__, "null-server"]


def intake_command(db_url: str, org: Path, ack: str = "intake", processors: int = 1) -> list[str]:
    command = [sys.executable, "-m", "simulator", "serve", "--port", "0", "--ack", ack]
    command += ["--processors", str(processors)] if processors > 1 else []
    return [*command, "--db", db_url, "--org", str(org)]


def wait_for_spool(db_url: str | None) -> None:
    """With `--ack spool`, wait until the processor has run every message through intake."""
    if db_url is None:
        return
    from simulator.delivery import spool
    from simulator.store.db import Store

    with Store(db_url, writer=False) as store:
        spooling = spool.open_spool(store)
        try:
            while spooling.backlog():
                time.sleep(0.02)
        finally:
            spooling.dispose()


# --- load: smtp-source ----------------------------------------------------------------


def find_smtp_source(install: bool) -> str | None:
    found = shutil.which("smtp-source") or shutil.which("smtp-source", path="/usr/sbin")
    if found or not install:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("note: smtp-source missing (Debian package postfix); using the built-in client")
        return None
    print("installing postfix for smtp-source (no mail daemon is started) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "postfix"],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    # The package may start its daemon where no policy-rc.d forbids it; we only want the tool.
    if subprocess.run(["postfix", "status"], capture_output=True, check=False).returncode == 0:
        subprocess.run(["postfix", "stop"], capture_output=True, check=False)
    return shutil.which("smtp-source") or shutil.which("smtp-source", path="/usr/sbin")


def smtp_source_rate(tool: str, server: Server, case: Case, messages: int) -> float:
    command = [tool, "-4", "-s", str(case.connections), "-m", str(messages), "-l", "2048"]
    command += ["-S", "bench subject", "-f", "sender@example.test", "-t", RCPT]
    command += ["-M", "bench.local", f"{server.host}:{server.port}"]
    if case.reuse:
        command.insert(1, "-d")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stderr.strip():
        raise SystemExit(f"smtp-source against {server.name} failed: {done.stderr.decode()}")
    return messages / elapsed


# --- load: the built-in asyncio client ------------------------------------------------


@dataclass(frozen=True)
class Case:
    connections: int
    reuse: bool

    @property
    def label(self) -> str:
        return f"{self.connections} conn, " + ("reused" if self.reuse else "new per message")


@dataclass
class ClientRun:
    rate: float
    latencies: list[float] = field(default_factory=list)
    refused: int = 0


def make_messages(count: int, tag: str) -> list[tuple[str, bytes]]:
    """~2 KB messages from a pool of senders, each with its own Message-ID."""
    body = "".join(BODY_LINE + "\r\n" for _ in range(2048 // (len(BODY_LINE) + 2)))
    out = []
    for i in range(count):
        sender = f"customer{i % 997}@client{i % 31}.example"
        head = (
            f"From: Customer {i % 997} <{sender}>\r\nTo: <{RCPT}>\r\n"
            f"Subject: Bench ticket {i}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{tag}.{i}@bench.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        )
        out.append((sender, (head + body).encode()))
    return out


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3])


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> int:
    writer.write(line.encode() + b"\r\n")
    return await _reply(reader)


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        await _reply(self.reader)
        await _command(self.reader, self.writer, "EHLO bench.localhost")

    async def close(self) -> None:
        if self.writer is not None:
            await _command(self.reader, self.writer, "QUIT")  # type: ignore[arg-type]
            self.writer.close()
            await self.writer.wait_closed()
            self.writer = None

    async def send(self, sender: str, raw: bytes) -> tuple[int, float]:
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None
        await _command(reader, writer, f"MAIL FROM:<{sender}>")
        await _command(reader, writer, f"RCPT TO:<{RCPT}>")
        await _command(reader, writer, "DATA")
        writer.write(raw + b".\r\n")  # bodies end in CRLF and no line starts with a dot
        started = time.perf_counter()
        code = await _reply(reader)
        return code, time.perf_counter() - started


async def _client(host: str, port: int, case: Case, mail: list[tuple[str, bytes]]) -> ClientRun:
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in mail:
        queue.put_nowait(item)
    run = ClientRun(rate=0.0)

    async def session() -> None:
        connection = _Connection(host, port)
        while not queue.empty():
            sender, raw = queue.get_nowait()
            if connection.writer is None:
                await connection.open()
            code, latency = await connection.send(sender, raw)
            run.latencies.append(latency)
            run.refused += code != 250
            if not case.reuse:
                await connection.close()
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(case.connections)))
    run.rate = len(mail) / (time.perf_counter() - started)
    return run


def client_run(server: Server, case: Case, messages: int) -> ClientRun:
    mail = make_messages(messages, uuid.uuid4().hex[:12])
    run = asyncio.run(_client(server.host, server.port, case, mail))
    if run.refused:
        raise SystemExit(f"{server.name}: {run.refused} of {messages} messages not accepted")
    return run


# --- PostgreSQL: a fresh database per round -------------------------------------------


@contextmanager
def fresh_pg_database(url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"intake_sim_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the throughput run ---------------------------------------------------------------


@dataclass
class Sample:
    source_rate: list[float] = field(default_factory=list)
    client_rate: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # server CPU per message
    # Of which the listener process alone (the rest: its spool processors).
    listener_cpu_ms: list[float] = field(default_factory=list)
    # Messages per second from the first sent to the last stored as a delivery.
    processed_rate: list[float] = field(default_factory=list)


@dataclass
class Target:
    name: str
    backend: str = "null"  # null, sqlite or postgresql
    ack: str = "intake"
    processors: int = 1  # spool processors (serve --processors), PostgreSQL only
    samples: dict[Case, Sample] = field(default_factory=dict)
    rss_kib: list[int] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def serving(
    target: Target, work: Path, org: Path, round_no: int, pg: str | None
) -> Iterator[Server]:
    """One fresh server for `target`: its own SQLite file or PostgreSQL database."""
    with ExitStack() as stack:
        if target.backend == "null":
            command, target_db = null_command(), None
        elif target.backend == "sqlite":
            target_db = f"sqlite:///{work / f'round{round_no}-{uuid.uuid4().hex[:6]}.db'}"
            command = intake_command(target_db, org, target.ack)
        else:
            target_db = stack.enter_context(fresh_pg_database(pg))  # type: ignore[arg-type]
            command = intake_command(target_db, org, target.ack, target.processors)
        server = start_server(target.name, command, work)
        server.db_url = target_db if target.ack == "spool" else None
        try:
            yield server
            target.rss_kib.append(server.peak_rss_kib())
        finally:
            server.stop()
        if server.process.returncode not in (0, -signal.SIGTERM):
            print(server.log.read_text(errors="replace")[-3000:])
            raise SystemExit(f"{target.name} server exited with {server.process.returncode}")


def measure(target: Target, server: Server, case: Case, messages: int, tool: str | None) -> None:
    """Both loads against one server; with --ack spool, until its spool is empty."""
    sample = target.samples.setdefault(case, Sample())
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    listener_before = server.listener_cpu_seconds()
    if tool:
        sample.source_rate.append(smtp_source_rate(tool, server, case, messages))
    run = client_run(server, case, messages)
    wait_for_spool(server.db_url)
    sent = messages * (2 if tool else 1)
    sample.processed_rate.append(sent / (time.perf_counter() - started))
    sample.client_rate.append(run.rate)
    sample.p50.append(_percentile(run.latencies, 0.50) * 1000)
    sample.p99.append(_percentile(run.latencies, 0.99) * 1000)
    sample.cpu_ms.append((server.cpu_seconds() - cpu_before) * 1000 / sent)
    sample.listener_cpu_ms.append((server.listener_cpu_seconds() - listener_before) * 1000 / sent)


def throughput(args: argparse.Namespace) -> None:
    tool = None if args.no_smtp_source else find_smtp_source(install=True)
    pg = args.pg or os.environ.get("INTAKE_SIM_BENCH_PG") or os.environ.get("INTAKE_SIM_TEST_PG")
    backends = ["sqlite", "postgresql"] if pg else ["sqlite"]
    targets = [Target("null")] + [
        Target(backend if ack == "intake" else f"{backend}, ack spool", backend, ack)
        for backend in backends
        for ack in args.acks
    ]
    # More spool processors side by side: PostgreSQL only (SQLite keeps one writer).
    targets += [
        Target(f"postgresql, ack spool, {n} processors", "postgresql", "spool", n)
        for n in args.processors
        if pg and "spool" in args.acks and n > 1
    ]
    if not pg:
        print("note: no PostgreSQL URL (--pg, INTAKE_SIM_BENCH_PG, INTAKE_SIM_TEST_PG): skipped")
    generator = "smtp-source and the asyncio client" if tool else "the asyncio client only"
    print(
        f"{args.messages} messages of ~2 KB per case, {args.rounds} interleaved rounds, "
        f"load from {generator}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="intake-sim-bench-") as tmp:
        work = Path(tmp)
        org = work / "bench-org.toml"
        org.write_text(BENCH_ORG)
        for round_no in range(1, args.rounds + 1):
            with ExitStack() as round_servers:
                servers = [
                    round_servers.enter_context(serving(target, work, org, round_no, pg))
                    for target in targets
                ]
                for case in args.cases:
                    for target, server in zip(targets, servers, strict=True):
                        print(f"round {round_no}, {case.label}: {target.name}", flush=True)
                        measure(target, server, case, args.messages, tool)
    print_table(targets, args.cases, bool(tool))
    print_targets(targets, args)


def print_targets(targets: list[Target], args: argparse.Namespace) -> None:
    """Every target of the throughput work with its ratio, all measured in this run."""
    # The sibling scripts are imported from here; benchmarks/ is no package.
    sys.path.insert(0, str(Path(__file__).parent))
    import pipeline
    import report

    base, case = targets[0], args.cases[-1]  # the most connections: the listener's best
    print(f"\ntargets (medians over {args.rounds} round(s); processed: {case.label}):")
    wanted = {"sqlite": 0.8, "postgresql": 0.5}
    for target in targets:
        if target.ack != "spool" or target.backend not in wanted:
            continue
        ratio = _ratio(target.samples[case].processed_rate, base.samples[case].processed_rate)
        _target(f"processed end to end, {target.name} / do-nothing", ratio, wanted[target.backend])
    processor, direct, ratio = pipeline.compare(args.pipeline_emails, args.rounds)
    print(f"  ({args.pipeline_emails} simulated messages: spool processor {processor:,.0f} msg/s,")
    print(f"   simulate --via direct {direct:,.0f} msg/s)")
    _target("simulate direct / spool processor, same traffic", ratio, 1.0)
    reading = report.report_over(args.report_rows, args.rounds)
    print(
        f"  (report over {args.report_rows:,} ledger rows: wall {reading.seconds:.2f} s"
        f" beyond start-up, peak {reading.peak_kib / 1024:.1f} MiB)"
    )
    what = f"report over {args.report_rows:,} ledger rows, CPU s beyond start-up"
    _target(what, reading.cpu, 1.0, True)


def _target(name: str, value: float, goal: float, at_most: bool = False) -> None:
    met = value <= goal if at_most else value >= goal
    sign = "<=" if at_most else ">="
    print(f"  {name}: {value:.2f} (target {sign} {goal:g}): {'met' if met else 'NOT met'}")


def print_table(targets: list[Target], cases: list[Case], with_source: bool) -> None:
    base = targets[0]
    med = statistics.median
    headers = ["server", "case"]
    headers += ["msg/s smtp-source", "ratio"] if with_source else []
    headers += ["msg/s client", "ratio", "p50 ms", "p99 ms", "CPU ms/msg", "processed msg/s"]
    headers += ["peak RSS MiB", "ratio"]
    rows = []
    for target in targets:
        rss = med(target.rss_kib) / 1024
        for case in cases:
            s, b = target.samples[case], base.samples[case]
            row = [target.name, case.label]
            if with_source:
                row += [f"{med(s.source_rate):,.0f}", f"{_ratio(s.source_rate, b.source_rate):.2f}"]
            row += [f"{med(s.client_rate):,.0f}", f"{_ratio(s.client_rate, b.client_rate):.2f}"]
            row += [f"{med(s.p50):.2f}", f"{med(s.p99):.2f}", f"{med(s.cpu_ms):.3f}"]
            row += [f"{med(s.processed_rate):,.0f}"]
            row += [f"{rss:.1f}", f"{rss / (med(base.rss_kib) / 1024):.2f}"]
            rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    print()
    for row in [headers, ["-" * w for w in widths], *rows]:
        print(" | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    for target in targets:
        for case in cases:
            if target.ack == "spool":
                s = target.samples[case]
                rest = med(t - own for t, own in zip(s.cpu_ms, s.listener_cpu_ms, strict=True))
                print(
                    f"{target.name}, {case.label}: CPU ms/msg {med(s.listener_cpu_ms):.3f}"
                    f" listener, {rest:.3f} spool processor"
                )
    print("\nratio = median over rounds of this server's rate / the do-nothing handler's rate")
    print("measured just before it in the same round;")
    print("CPU ms/msg = server processes' user+system CPU per message (less load-sensitive)")
    print("processed msg/s = all messages of a case over the time until the last is a delivery")
    print("(equal to the acknowledgement rate with --ack intake; with --ack spool it includes")
    print("the time the spool processor needs after the last 250)")


def _ratio(rates: list[float], baseline: list[float]) -> float:
    return statistics.median(r / b for r, b in zip(rates, baseline, strict=True))


# --- RSS flatness ---------------------------------------------------------------------


def rss_flatness(args: argparse.Namespace) -> None:
    tool = None if args.no_smtp_source else find_smtp_source(install=True)
    with tempfile.TemporaryDirectory(prefix="intake-sim-bench-") as tmp:
        work = Path(tmp)
        org = work / "bench-org.toml"
        org.write_text(BENCH_ORG)
        for ack in args.acks:
            peaks = [_rss_peak(tool, work, org, ack, count) for count in args.counts]
            ratio = peaks[-1] / peaks[0]
            print(
                f"--ack {ack}: peak RSS ratio, largest / smallest run: {ratio:.2f} (target <= 1.20)"
            )


def _rss_peak(tool: str | None, work: Path, org: Path, ack: str, count: int) -> float:
    """Peak RSS (MiB, listener and processor) of one SQLite listener fed `count` messages,
    read after the spool is drained, so the processor's work is in it too."""
    db = f"sqlite:///{work / f'rss-{ack}-{count}.db'}"
    server = start_server("sqlite", intake_command(db, org, ack), work)
    try:
        started = time.perf_counter()
        if tool:
            rate = smtp_source_rate(tool, server, Case(20, True), count)
        else:
            rate = client_run(server, Case(20, True), count).rate
        wait_for_spool(db if ack == "spool" else None)
        peak = server.peak_rss_kib() / 1024
    finally:
        server.stop()
    took = time.perf_counter() - started
    print(
        f"--ack {ack}: {count:>8} messages: peak RSS {peak:.1f} MiB "
        f"({rate:,.0f} msg/s acknowledged, {took:.0f} s until all were stored)"
    )
    return peak


# --- command line ---------------------------------------------------------------------


def _cases(text: str) -> list[Case]:
    """`1,20` or `1,20,20n`: connection counts; a trailing n opens a connection per message."""
    return [Case(int(c.rstrip("n")), not c.endswith("n")) for c in text.split(",") if c]


def _numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "mode", nargs="?", default="throughput", choices=["throughput", "rss", "null-server"]
    )
    parser.add_argument(
        "--messages", type=int, default=1000, help="messages per case and generator"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=_cases, default=_cases("1,20"), help="e.g. 1,20,20n")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL for case (c)")
    parser.add_argument(
        "--counts", type=lambda t: [int(x) for x in t.split(",")], default=[10_000, 100_000]
    )
    parser.add_argument("--no-smtp-source", action="store_true", help="built-in client only")
    parser.add_argument(
        "--acks",
        type=lambda t: [a for a in t.split(",") if a],
        default=["intake", "spool"],
        help="serve --ack modes to measure, e.g. intake,spool",
    )
    parser.add_argument(
        "--processors",
        type=_numbers,
        default=[1],
        help="PostgreSQL --ack spool: spool processor counts to measure, e.g. 1,2",
    )
    parser.add_argument(
        "--pipeline-emails", type=int, default=2000, help="simulated messages per path"
    )
    parser.add_argument(
        "--report-rows", type=int, default=1_000_000, help="ledger rows for the report target"
    )
    parser.add_argument("--port", type=int, default=0, help="null-server only")
    args = parser.parse_args(argv)
    if args.mode == "null-server":
        asyncio.run(_null_server(args.port))
    elif args.mode == "rss":
        rss_flatness(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
