"""`serve --ack spool`: 250 once the raw message is spooled, intake just after.

Real listeners, real SMTP, real databases: the sample emails give the same
outcomes as with `--ack intake`; a listener killed with SIGKILL loses nothing
it acknowledged and stores nothing twice; a spool that cannot be written
answers 451 and recovers without a restart; `drain` empties a spool.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.delivery import spool_sqlite
from simulator.delivery.processor import PROCESSOR_NICENESS
from simulator.delivery.spool import Ack, open_spool
from simulator.delivery.spool_sqlite import FileSpool, spool_file_path
from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import Submission
from simulator.org import Org, load_org
from simulator.pipeline.batch import prepare
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS
from simulator.reliability.listener import listening_address
from simulator.service import intake_service, web_service
from simulator.smtp import replies as smtp_replies
from simulator.smtp.server import ListenerOptions
from simulator.smtp.sources import load_mail
from simulator.store.db import Store, open_store
from simulator.store.models import Delivery
from simulator.web.options import WebOptions
from tests.support.databases import backend_of
from tests.support.listeners import Listener, smtp_transaction, still_answers
from tests.support.mail import compose
from tests.support.samples import CASES, expected_for, stored_rows
from tests.support.spool import wait_until_drained
from tests.support.web import CSRF_FIELD, form

INTAKE = "support@acme.example"


@dataclass
class SpoolingListener(Listener):
    writer: GroupCommitWriter | None = None


@asynccontextmanager
async def spooling_listener(store: Store, org: Org) -> AsyncIterator[SpoolingListener]:
    await asyncio.to_thread(prepare, store, org)
    async with intake_service(store, org, ListenerOptions(port=0), ack=Ack.SPOOL) as service:
        assert service.processor is not None
        yield SpoolingListener(service.host, service.port, store, org, service.writer)


def delivery_count(store: Store) -> int:
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(Delivery)) or 0


async def test_sample_emails_get_their_outcomes_through_the_spool(db_url: str) -> None:
    store, org = open_store(db_url), load_org()
    mail = load_mail(CASES)
    try:
        async with spooling_listener(store, org) as listener:
            replies = [
                await asyncio.to_thread(
                    smtp_transaction, listener.host, listener.port, m.raw, m.envelope_from, INTAKE
                )
                for m in mail
            ]
            await asyncio.to_thread(wait_until_drained, store)
        spool_ids = [smtp_replies.spool_id(reply) for _, reply in replies]
        assert None not in spool_ids, replies
        assert spool_ids == sorted(spool_ids)
        rows = stored_rows(store, mail, [code for code, _ in replies])
    finally:
        store.dispose()
    for case in CASES:
        expected, got = expected_for(case), rows[case.name]
        assert got["code"] == 250, got
        for key in ("outcome", "reason", "issue", "sender", "role", "new_user"):
            assert got[key] == expected[key], f"{case.name}: {key} {got[key]!r}"


async def test_an_unwritable_spool_answers_451_then_recovers(sqlite_url: str) -> None:
    store, org = open_store(sqlite_url), load_org()
    blocker = spool_file_path(sqlite_url)
    blocker.mkdir()  # a directory where the spool file should be: SQLite cannot open it
    try:
        async with spooling_listener(store, org) as listener:
            code, reply = await listener.send(compose("x@customer.example", to=INTAKE))
            assert code == 451, reply
            blocker.rmdir()
            code, reply = await listener.send(compose("x@customer.example", to=INTAKE))
            assert code == 250, reply
            await asyncio.to_thread(wait_until_drained, store)
        assert delivery_count(store) == 1
    finally:
        store.dispose()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_the_processor_runs_only_on_cpu_nobody_else_wants(sqlite_url: str) -> None:
    store, org = open_store(sqlite_url), load_org()
    try:
        await asyncio.to_thread(prepare, store, org)
        async with intake_service(store, org, ListenerOptions(port=0), ack=Ack.SPOOL) as service:
            assert service.processor is not None and service.processor.pid is not None
            pid = service.processor.pid
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            assert os.getpriority(os.PRIO_PROCESS, pid) == PROCESSOR_NICENESS
            assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the listener keeps its own
    finally:
        store.dispose()


def _submission(n: int, body: str = "Hello, something is broken.") -> Submission:
    sender = f"c{n}@customer.example"
    raw = compose(sender, f"Ticket {n}", f"t{n}@customer.example", to=INTAKE, body=body)
    return Submission(raw, sender, [INTAKE], datetime.now(UTC))


def test_rows_past_the_mark_run_once_even_if_not_deleted(sqlite_url: str, tmp_path: Path) -> None:
    """The SQLite spool file cannot share the main transaction: a processor that dies
    after COMMIT but before deleting its rows leaves them behind. The mark, written
    in the main transaction, makes the next processor skip them."""
    store, org = open_store(sqlite_url), load_org()
    prepare(store, org)
    spooled = FileSpool(store)
    try:
        spooled.append([_submission(n) for n in range(5)])
        before = tmp_path / "before-processing"
        _copy_sqlite(spool_file_path(sqlite_url), before)
        assert len(spooled.process(org, DEFAULT_MIME_LIMITS)) == 5
        spooled.dispose()
        _copy_sqlite(before, spool_file_path(sqlite_url))  # the rows are back, undeleted
        assert spooled.backlog() == 0
        assert spooled.process(org, DEFAULT_MIME_LIMITS) == []
        spooled.append([_submission(5)])
        assert [r.outcome.value for r in spooled.process(org, DEFAULT_MIME_LIMITS)] == [
            "created_issue"
        ]
        assert delivery_count(store) == 6
    finally:
        spooled.dispose()
        store.dispose()


def _spool_file_rows(sqlite_url: str) -> list[int]:
    with sqlite3.connect(spool_file_path(sqlite_url)) as connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM spool ORDER BY id")]
    connection.close()
    return ids


def test_the_listener_not_the_processor_deletes_processed_rows(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processor runs at the lowest priority, so it never takes the spool file's
    write lock: it moves the mark, and the appending side deletes what the mark has
    passed (at most every PRUNE_SECONDS, and when it is disposed of)."""
    store, org = open_store(sqlite_url), load_org()
    prepare(store, org)
    listener_side, processor_side = FileSpool(store), FileSpool(store)
    try:
        listener_side.append([_submission(n) for n in range(4)])
        assert len(processor_side.process(org, DEFAULT_MIME_LIMITS)) == 4
        assert _spool_file_rows(sqlite_url) == [1, 2, 3, 4]  # done, but still on file
        assert processor_side.process(org, DEFAULT_MIME_LIMITS) == []
        monkeypatch.setattr(spool_sqlite, "PRUNE_SECONDS", 0.0)
        listener_side.append([_submission(4)])
        assert _spool_file_rows(sqlite_url) == [5]  # the append pruned 1-4, not 5
        assert processor_side.backlog() == 1
        assert len(processor_side.process(org, DEFAULT_MIME_LIMITS)) == 1
        listener_side.dispose()
        assert _spool_file_rows(sqlite_url) == []
        assert delivery_count(store) == 5
    finally:
        listener_side.dispose()
        processor_side.dispose()
        store.dispose()


def test_the_processor_not_the_listener_checkpoints_the_spool_file(sqlite_url: str) -> None:
    """Copying the WAL back into the spool file (with its fsync) is left to the
    processor: appends well past SQLite's default of 1,000 pages leave the file as it
    was, and processing one batch copies everything in."""
    store, org = open_store(sqlite_url), load_org()
    prepare(store, org)
    spooled = FileSpool(store)
    spool_path = spool_file_path(sqlite_url)
    body = "Attached is the whole log again.\r\n" * 250  # about 8 KB: two pages a row
    try:
        assert spooled.uuid  # creates the file
        before = spool_path.stat().st_size
        for start in range(0, 800, 50):
            batch = [_submission(n, body) for n in range(start, start + 50)]
            assert spooled.append_now(batch) is not None
        wal = Path(f"{spool_path}-wal").stat().st_size
        assert wal > 1_500 * 4096, wal
        assert spool_path.stat().st_size == before  # no append checkpointed
        assert spooled.process(org, DEFAULT_MIME_LIMITS)
        assert spool_path.stat().st_size > before + 1_500 * 4096
    finally:
        spooled.dispose()
        store.dispose()


def test_pruning_does_not_wait_for_a_processor_holding_the_main_database(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processor may hold the main database's write lock for a long batch (and at the
    lowest priority, for longer): the listener only reads the mark, so it neither waits
    for that lock nor fails to prune because of it."""
    store, org = open_store(sqlite_url, busy_timeout_ms=200), load_org()
    prepare(store, org)
    spooled = FileSpool(store)
    processor = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        spooled.append([_submission(n) for n in range(3)])
        assert len(spooled.process(org, DEFAULT_MIME_LIMITS)) == 3
        processor.execute("BEGIN IMMEDIATE")  # a batch in progress
        monkeypatch.setattr(spool_sqlite, "PRUNE_SECONDS", 0.0)
        spooled.append([_submission(3)])
        assert _spool_file_rows(sqlite_url) == [4]
    finally:
        processor.rollback()
        processor.close()
        spooled.dispose()
        store.dispose()


def test_append_now_never_waits_for_the_spool_files_lock(sqlite_url: str) -> None:
    """The listener's event loop appends without waiting: while another writer holds the
    spool file, append_now writes nothing and says so at once; append (the writer
    thread's path) waits for the lock instead."""
    store, org = open_store(sqlite_url), load_org()
    prepare(store, org)
    spooled = FileSpool(store)
    other = None
    try:
        assert spooled.append_now([_submission(0)]) is None  # no file yet: the thread makes it
        assert [r.spool_id for r in spooled.append([_submission(0)])] == [1]
        assert [r.spool_id for r in spooled.append_now([_submission(1)]) or []] == [2]
        other = sqlite3.connect(spool_file_path(sqlite_url), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert spooled.append_now([_submission(2)]) is None
        assert time.monotonic() - started < 0.5
        other.rollback()
        assert [r.spool_id for r in spooled.append_now([_submission(2)]) or []] == [3]
        assert _spool_file_rows(sqlite_url) == [1, 2, 3]
    finally:
        if other is not None:
            other.close()
        spooled.dispose()
        store.dispose()


async def test_a_busy_spool_file_is_waited_for_not_refused(sqlite_url: str) -> None:
    """Another process holding the spool file for a moment: the listener's batch goes to
    its writer thread, which waits, and the client still gets its 250."""
    store, org = open_store(sqlite_url), load_org()
    try:
        async with spooling_listener(store, org) as listener:
            code, reply = await listener.send(compose("a@customer.example", to=INTAKE))
            assert code == 250, reply  # the file exists now
            other = sqlite3.connect(spool_file_path(sqlite_url), isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.3, other.rollback)
            code, reply = await listener.send(compose("b@customer.example", to=INTAKE))
            other.close()
            assert code == 250, reply
            await asyncio.to_thread(wait_until_drained, store)
        assert delivery_count(store) == 2
    finally:
        store.dispose()


async def test_a_postgresql_append_waiting_for_a_lock_leaves_the_listener_serving(
    pg_url: str,
) -> None:
    """The PostgreSQL spool append is awaited on the listener's event loop: while one
    waits for the server, other sessions are still answered, and its 250 follows."""
    store, org = open_store(pg_url), load_org()
    locked, release, released = threading.Event(), threading.Event(), threading.Event()

    def hold_the_spool_table() -> None:
        with psycopg.connect(_libpq_url(pg_url)) as connection:
            connection.execute("LOCK TABLE spool IN EXCLUSIVE MODE")  # INSERTs wait
            locked.set()
            release.wait(timeout=5)  # also ends on its own, should the listener hang
            released.set()
            connection.rollback()

    holder = threading.Thread(target=hold_the_spool_table)
    try:
        async with spooling_listener(store, org) as listener:
            holder.start()
            assert await asyncio.to_thread(locked.wait, 10)
            waiting = asyncio.create_task(listener.send(compose("a@customer.example", to=INTAKE)))
            await asyncio.sleep(0.3)
            await still_answers(listener)
            assert not released.is_set(), "no other session was served while the append waited"
            assert not waiting.done(), "the append did not wait for the table lock"
            release.set()
            code, reply = await asyncio.wait_for(waiting, timeout=30)
            assert code == 250, reply
            await asyncio.to_thread(wait_until_drained, store)
        assert delivery_count(store) == 1
    finally:
        release.set()
        if holder.is_alive():
            holder.join()
        store.dispose()


async def test_a_lost_postgresql_spool_connection_is_reopened(pg_url: str) -> None:
    """The server ends the listener's connection: at most one batch gets a 451, the next
    opens a new connection, and every 250 becomes one delivery."""
    store, org = open_store(pg_url), load_org()
    try:
        async with spooling_listener(store, org) as listener:
            code, reply = await listener.send(compose("a@customer.example", to=INTAKE))
            assert code == 250, reply
            with psycopg.connect(_libpq_url(pg_url), autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert ended is not None and ended[0] >= 1
            codes = []
            for n in range(3):
                message = compose(f"b{n}@customer.example", to=INTAKE)
                codes.append((await listener.send(message))[0])
            await asyncio.to_thread(wait_until_drained, store)
        assert codes.count(451) <= 1 and codes[-1] == 250, codes
        assert delivery_count(store) == 1 + codes.count(250)
    finally:
        store.dispose()


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _copy_sqlite(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def test_drain_runs_a_spool_left_behind(db_url: str) -> None:
    store, org = open_store(db_url), load_org()
    prepare(store, org)
    spooled = open_spool(store)
    try:
        spooled.append([_submission(n) for n in range(7)])
        assert spooled.backlog() == 7
        result = CliRunner().invoke(app, ["drain", "--db", db_url, "--format", "json"])
        assert result.exit_code == 0, result.output
        assert '"created_issue"' in result.output and '"deliveries": 7' in result.output
        assert spooled.backlog() == 0
        assert delivery_count(store) == 7
    finally:
        spooled.dispose()
        store.dispose()


@pytest.mark.parametrize("processors", [1, 2], ids=["1-processor", "2-processors"])
def test_sigkill_loses_nothing_acknowledged_and_stores_nothing_twice(
    db_url: str, tmp_path: Path, processors: int
) -> None:
    """A real `serve --ack spool` is killed while ten clients stream mail into it (faster
    than its processor runs intake, so the spool holds a backlog); every message
    answered 250 must end as exactly one delivery. The first run kills the listener
    alone, and its orphaned processors must notice and exit; the second kills all.
    With two processors (PostgreSQL) they work on the spool side by side."""
    if processors > 1 and backend_of(db_url) == "sqlite":
        pytest.skip("SQLite keeps one writer: one processor")
    acked: list[str] = []
    for run in range(2):
        log = tmp_path / f"serve-{run}.log"
        serve = _start_serve(db_url, log, processors)
        try:
            address = _bound_address(log, serve)
            processor = _children(serve.pid)
            with ThreadPoolExecutor(max_workers=10) as pool:
                acked += [m for m in pool.map(_deliver(address, run), range(100)) if m]
        finally:
            if run == 0:
                os.kill(serve.pid, signal.SIGKILL)
            else:
                os.killpg(serve.pid, signal.SIGKILL)  # listener and processor at once
            serve.wait(timeout=30)
        if run == 0:
            # The processors, and multiprocessing's resource tracker beside them.
            assert len(processor) > processors, f"child processes: {processor}"
            _wait_gone(processor)
    result = CliRunner().invoke(app, ["drain", "--db", db_url])
    assert result.exit_code == 0, result.output
    print(result.output)  # how many were still spooled at the kills
    with Store(db_url, writer=False) as store, store.sessions() as session:
        stored = Counter(session.scalars(select(Delivery.message_id)))
    assert len(acked) == 200
    assert set(acked) <= set(stored)
    assert max(stored.values()) == 1


def _deliver(address: tuple[str, int], run: int) -> Callable[[int], str | None]:
    def deliver(n: int) -> str | None:
        message_id = f"kill-{run}-{n}@customer.example"
        raw = compose(f"k{n % 7}@customer.example", f"Kill {run} {n}", message_id, to=INTAKE)
        code, _ = smtp_transaction(*address, raw, "k@customer.example", INTAKE)
        return message_id if code == 250 else None

    return deliver


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]


def _wait_gone(pids: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"orphaned processes {left} did not exit after their listener died"


def _start_serve(db_url: str, log: Path, processors: int = 1) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_SIM_")}
    command = [sys.executable, "-m", "simulator", "serve", "--port", "0", "--ack", "spool"]
    with log.open("wb") as sink:
        return subprocess.Popen(
            [*command, "--processors", str(processors), "--db", db_url],
            stderr=sink,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group, for killpg
        )


def _bound_address(log: Path, serve: subprocess.Popen[bytes]) -> tuple[str, int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and serve.poll() is None:
        found = listening_address(log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("serve did not start:\n" + log.read_text(errors="replace"))


async def test_a_web_form_on_a_spooling_listener_is_spooled_then_filed(sqlite_url: str) -> None:
    store, org = open_store(sqlite_url), load_org()
    try:
        async with (
            spooling_listener(store, org) as listener,
            web_service(store, org, WebOptions(port=0), listener.writer) as (host, port),
            httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30) as client,
        ):
            page = await client.get("/submit")
            token = CSRF_FIELD.search(page.text)
            assert token, page.text
            answer = await client.post("/submit", data={"csrf": token.group(1), **form()})
            assert answer.status_code == 200, answer.text
            assert re.search(r"reference \d+", answer.text), answer.text
            await asyncio.to_thread(wait_until_drained, store)
        with store.read() as session:
            [delivery] = session.scalars(select(Delivery)).all()
        assert (delivery.channel, delivery.outcome) == ("web_form", "created_issue")
    finally:
        store.dispose()


def test_serve_refuses_a_spool_in_memory() -> None:
    result = CliRunner().invoke(
        app, ["serve", "--ack", "spool", "--port", "0", "--db", "sqlite:///:memory:"]
    )
    assert result.exit_code == 1
    assert "--ack spool: a spool needs a database file or PostgreSQL" in result.output


async def test_a_reply_sent_after_its_originals_250_threads_onto_it(db_url: str) -> None:
    """Two spooling listeners on one database, each with its own processor: an
    original goes to one, its reply to the other as soon as the original's 250 is
    in. Whichever processor holds a reply's partition runs it only once its original
    has left the spool, so every reply finds its issue."""
    store, org = open_store(db_url), load_org()
    pairs = 30
    try:
        async with spooling_listener(store, org) as first, spooling_listener(store, org) as second:
            for n in range(pairs):
                original = compose(f"o{n}@customer.example", f"Order {n}", f"o{n}@x", to=INTAKE)
                reply = compose(
                    f"r{n}@customer.example",
                    f"Re: Order {n}",
                    f"r{n}@x",
                    to=INTAKE,
                    headers={"In-Reply-To": f"<o{n}@x>"},
                )
                assert (await first.send(original))[0] == 250
                assert (await second.send(reply))[0] == 250
            await asyncio.to_thread(wait_until_drained, store)
        with store.read() as session:
            outcomes = Counter(session.scalars(select(Delivery.outcome)))
    finally:
        store.dispose()
    assert outcomes == {"created_issue": pairs, "threaded": pairs}
