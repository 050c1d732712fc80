"""Several spool processors on one PostgreSQL database, each on partitions of its own.

Real PostgreSQL, real processes: processors draining one spool side by side store
every message exactly once and each does part of the work; a reply spooled after
its original is never run before it, whichever partitions the two hash to; a
partition another processor holds is left alone. The PostgreSQL tests are skipped
when INTAKE_SIM_TEST_PG is unset.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.defaults import SPOOL_PARTITIONS
from simulator.delivery.spool import Ack, drain, open_spool
from simulator.delivery.spool_postgres import PG_SPOOL_PARTITION_LOCK, TableSpool, partition_of
from simulator.domain import Submission
from simulator.org import load_org
from simulator.pipeline.batch import prepare
from simulator.pipeline.conversations import reply_candidates
from simulator.pipeline.parse import DEFAULT_MIME_LIMITS, ordering, parse_message
from simulator.service import intake_service
from simulator.smtp.server import ListenerOptions
from simulator.smtp.sources import load_mail
from simulator.store.db import Store, open_store
from simulator.store.models import Delivery
from tests.support.listeners import smtp_transaction
from tests.support.mail import compose
from tests.support.samples import CASES
from tests.support.spool import wait_until_drained

INTAKE = "support@acme.example"
PROCESSORS = 3
START_TIMEOUT_SECONDS = 60.0


def test_the_spool_reads_the_sender_and_ids_that_intake_reads() -> None:
    """The partition and the reply rule rest on the same sender and ids as intake:
    the sample emails read the same through the header scan as through the parser."""
    for mail in load_mail(CASES):
        parsed = parse_message(mail.raw, mail.envelope_from)
        found = ordering(mail.raw, mail.envelope_from)
        assert found.sender == parsed.sender, mail.source
        assert found.message_id == parsed.message_id, mail.source
        assert list(found.answers) == reply_candidates(parsed), mail.source


def test_one_person_is_one_partition(tmp_path: Path) -> None:
    """A `+tag` and, with the org's identity, an alias land where the person's mail does."""
    org_file = tmp_path / "org.toml"
    org_file.write_text(
        '[organization]\nname = "Acme"\ninternal_domains = ["acme.example"]\n'
        'intake_addresses = ["support@acme.example"]\n\n'
        '[[agents]]\nemail = "ava@acme.example"\naliases = ["ava@old-acme.example"]\n'
    )
    identity = load_org(org_file).identity
    person = partition_of("ava@acme.example")
    assert partition_of("ava+billing@acme.example") == person
    assert partition_of("ava@old-acme.example", identity) == person
    assert partition_of(None) == partition_of("") == 0
    senders = {partition_of(s) for s, _ in zip(_senders("c"), range(1000), strict=False)}
    assert len(senders) == SPOOL_PARTITIONS  # a thousand senders fill every partition


def test_more_than_one_processor_on_sqlite_is_refused(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--ack", "spool", "--processors", "2", "--port", "0", "--db", sqlite_url]
    )
    assert result.exit_code == 1
    assert "Error: --processors: SQLite keeps one writer" in result.output
    result = CliRunner().invoke(
        app, ["serve", "--processors", "2", "--port", "0", "--db", sqlite_url]
    )
    assert result.exit_code == 1
    assert "--processors: more than one processor needs --ack spool" in result.output


def _senders(prefix: str) -> Iterator[str]:
    return (f"{prefix}{n}@customer.example" for n in count())


def _in_other_partition(prefix: str, *taken: str) -> str:
    """A sender whose partition none of `taken` is in."""
    used = {partition_of(t) for t in taken}
    return next(s for s in _senders(prefix) if partition_of(s) not in used)


def _item(sender: str, message_id: str, answers: str | None = None) -> Submission:
    headers = {"In-Reply-To": f"<{answers}>"} if answers else None
    subject = f"Re: {answers}" if answers else f"About {message_id}"
    raw = compose(sender, subject, message_id, to=INTAKE, headers=headers)
    return Submission(raw, sender, [INTAKE], datetime.now(UTC))


def _outcomes(store: Store) -> dict[str, tuple[str, int | None]]:
    with store.read() as session:
        rows = session.execute(select(Delivery.message_id, Delivery.outcome, Delivery.issue_number))
        return {m: (o, i) for m, o, i in rows}


class PartitionHolder:
    """Another processor, as far as the spool can tell: a connection holding the
    advisory lock of one partition until released."""

    def __init__(self, url: str, partition: int) -> None:
        libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.key = (PG_SPOOL_PARTITION_LOCK, partition)
        self.connection = psycopg.connect(libpq, autocommit=True)
        self.connection.execute("SELECT pg_advisory_lock(%s::integer, %s::integer)", self.key)

    def release(self) -> None:
        # Unlocked before the next statement anywhere: a closed session's locks go only
        # when its server process has ended, which may be a moment later.
        if not self.connection.closed:
            self.connection.execute("SELECT pg_advisory_unlock(%s::integer, %s::integer)", self.key)
            self.connection.close()


def test_a_partition_held_elsewhere_is_left_alone(pg_url: str) -> None:
    store, org = open_store(pg_url), load_org()
    prepare(store, org)
    held = "held@customer.example"
    free = _in_other_partition("free", held)
    spool = open_spool(store, org, processors=2)
    holder = PartitionHolder(pg_url, partition_of(held))
    try:
        spool.append([_item(held, "h1@x"), _item(free, "f1@x"), _item(held, "h2@x")])
        assert [r.sender for r in spool.process(org, DEFAULT_MIME_LIMITS)] == [free]
        assert spool.process(org, DEFAULT_MIME_LIMITS) == []
        assert spool.backlog() == 2
        holder.release()
        assert [r.sender for r in spool.process(org, DEFAULT_MIME_LIMITS)] == [held, held]
        assert spool.backlog() == 0
    finally:
        holder.release()
        spool.dispose()
        store.dispose()


def test_a_reply_waits_for_its_original_in_a_partition_held_elsewhere(pg_url: str) -> None:
    """The original's partition is held by another processor (mid-batch): the reply,
    in a partition of its own, is held back, and so is later mail of its sender, while
    everyone else's runs. Once the original is stored, the reply threads onto it."""
    store, org = open_store(pg_url), load_org()
    prepare(store, org)
    original = "original@customer.example"
    replier = _in_other_partition("replier", original)
    bystander = _in_other_partition("bystander", original, replier)
    spool = open_spool(store, org, processors=2)
    holder = PartitionHolder(pg_url, partition_of(original))
    try:
        spool.append([_item(original, "o@x")])  # its 250, then the reply is sent
        spool.append([_item(replier, "r@x", answers="o@x")])
        spool.append([_item(replier, "r2@x"), _item(bystander, "b@x")])
        assert [r.sender for r in spool.process(org, DEFAULT_MIME_LIMITS)] == [bystander]
        assert spool.backlog() == 3
        holder.release()
        assert drain(spool, org, DEFAULT_MIME_LIMITS) == 3
        outcomes = _outcomes(store)
    finally:
        holder.release()
        spool.dispose()
        store.dispose()
    assert outcomes["o@x"][0] == "created_issue"
    assert outcomes["r@x"] == ("threaded", outcomes["o@x"][1])


def test_a_second_copy_of_a_message_id_waits_for_the_first(pg_url: str) -> None:
    """The same Message-ID from two senders in two partitions: the copy spooled first
    is the one stored as new, as in spool order, and the other is the duplicate."""
    store, org = open_store(pg_url), load_org()
    prepare(store, org)
    first = "first@customer.example"
    second = _in_other_partition("second", first)
    spool = open_spool(store, org, processors=2)
    holder = PartitionHolder(pg_url, partition_of(first))
    try:
        spool.append([_item(first, "same@x"), _item(second, "same@x")])
        assert spool.process(org, DEFAULT_MIME_LIMITS) == []
        holder.release()
        results = [r for _ in range(2) for r in spool.process(org, DEFAULT_MIME_LIMITS)]
    finally:
        holder.release()
        spool.dispose()
        store.dispose()
    assert [(r.sender, r.outcome.value) for r in results] == [
        (first, "created_issue"),
        (second, "duplicate"),
    ]


def test_an_over_long_or_unstorable_id_is_spooled_and_still_orders(pg_url: str) -> None:
    """Ids are a stranger's text: one far past an index entry's size, or holding a NUL,
    is still spooled with its batch, and a reply naming it still waits for it (is run
    after it: intake itself threads onto an over-long id by its hash, not by the name)."""
    store, org = open_store(pg_url), load_org()
    prepare(store, org)
    long_id = secrets.token_hex(2500) + "@customer.example"  # incompressible, too
    first = "long@customer.example"
    replier = _in_other_partition("replier", first)
    spool = open_spool(store, org, processors=2)
    holder = PartitionHolder(pg_url, partition_of(first))
    try:
        receipts = spool.append([_item(first, long_id), _item("nul@customer.example", "n\x00ul@x")])
        assert len(receipts) == 2
        spool.append([_item(replier, "r@x", answers=long_id)])
        assert [r.sender for r in spool.process(org, DEFAULT_MIME_LIMITS)] == [
            "nul@customer.example"
        ]
        holder.release()
        results = spool.process(org, DEFAULT_MIME_LIMITS)
        assert spool.backlog() == 0
    finally:
        holder.release()
        spool.dispose()
        store.dispose()
    assert [r.sender for r in results] == [first, replier]


def _drain_in_a_process(url: str, processors: int, start: Any, done: Any) -> None:
    """One processor process: open the store, wait until every one is ready, drain."""
    org = load_org()
    store = Store(url)
    spool = open_spool(store, processors=processors)
    processed = 0
    try:
        spool.backlog()  # connected and imported: ready
        start.wait(START_TIMEOUT_SECONDS)
        processed = drain(spool, org, DEFAULT_MIME_LIMITS)
    finally:
        spool.dispose()
        store.dispose()
        done.put(processed)


def _conversations(pairs: int) -> list[list[Submission]]:
    """Appends as listeners make them: per batch, new mail from many senders and replies
    (from someone else, in another partition) to mail of the batch before."""
    batches: list[list[Submission]] = []
    for b in range(pairs // 10):
        batch = []
        for n in range(10):
            asker = f"asker{b}-{n}@customer.example"
            batch.append(_item(asker, f"q{b}-{n}@x"))
            if b:  # a{b-1}-{n} answers q{b-1}-{n}, spooled a batch earlier
                asked = f"asker{b - 1}-{n}@customer.example"
                answerer = _in_other_partition(f"answerer{b}-{n}-", asked)
                batch.append(_item(answerer, f"a{b - 1}-{n}@x", answers=f"q{b - 1}-{n}@x"))
        batches.append(batch)
    return batches


def test_processors_side_by_side_store_each_message_once_replies_after_originals(
    pg_url: str,
) -> None:
    """PROCESSORS processes drain one spool at once: every spooled message becomes
    exactly one delivery, every reply threads onto the issue its original opened
    (stored first, though the two are in different partitions), and every
    processor did some of the work."""
    store, org = open_store(pg_url), load_org()
    prepare(store, org)
    batches = _conversations(300)
    appender = TableSpool(store, identity=org.identity)
    try:
        for batch in batches:
            appender.append(batch)
        spooled = appender.backlog()
    finally:
        appender.dispose()
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    workers = [
        context.Process(target=_drain_in_a_process, args=(pg_url, PROCESSORS, start, done))
        for _ in range(PROCESSORS)
    ]
    for worker in workers:
        worker.start()
    try:
        start.set()
        processed = [done.get(timeout=300) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    outcomes = _outcomes(store)
    with store.read() as session:
        stored = Counter(session.scalars(select(Delivery.message_id)))
    store.dispose()
    assert sum(processed) == spooled == sum(len(b) for b in batches)
    assert all(processed), f"a processor did nothing: {processed}"
    assert len(stored) == spooled and max(stored.values()) == 1
    replies = [m for m in outcomes if m.startswith("a")]
    assert replies
    for reply in replies:
        original = "q" + reply[1:]
        assert outcomes[original][0] == "created_issue", original
        assert outcomes[reply] == ("threaded", outcomes[original][1]), reply


async def test_replies_across_listeners_with_two_processors_each_thread(pg_url: str) -> None:
    """Two spooling listeners, two processors each, on one database: an original goes
    to one listener, its reply (another sender, another partition) to the other once
    the original's 250 is in. Four processors race; every reply finds its issue."""
    store, org = open_store(pg_url), load_org()
    await asyncio.to_thread(prepare, store, org)
    pairs = 30
    options = ListenerOptions(port=0)
    try:
        async with (
            intake_service(store, org, options, ack=Ack.SPOOL, processors=2) as first,
            intake_service(store, org, options, ack=Ack.SPOOL, processors=2) as second,
        ):
            assert len(first.processors) == len(second.processors) == 2
            assert all(p.alive for p in (*first.processors, *second.processors))
            for n in range(pairs):
                asker = f"o{n}@customer.example"
                original = compose(asker, f"Order {n}", f"o{n}@x", to=INTAKE)
                replier = _in_other_partition(f"r{n}-", asker)
                reply = compose(
                    replier,
                    f"Re: Order {n}",
                    f"r{n}@x",
                    to=INTAKE,
                    headers={"In-Reply-To": f"<o{n}@x>"},
                )
                code, _ = await asyncio.to_thread(
                    smtp_transaction, first.host, first.port, original, asker, INTAKE
                )
                assert code == 250
                code, _ = await asyncio.to_thread(
                    smtp_transaction, second.host, second.port, reply, replier, INTAKE
                )
                assert code == 250
            await asyncio.to_thread(wait_until_drained, store)
        outcomes = _outcomes(store)
    finally:
        store.dispose()
    assert Counter(o for o, _ in outcomes.values()) == {"created_issue": pairs, "threaded": pairs}
    for n in range(pairs):
        assert outcomes[f"r{n}@x"] == ("threaded", outcomes[f"o{n}@x"][1])
