"""Batches through the pipeline (simulator/pipeline/batch.py) on a real SQLite file:
`ingest` consumes a generator lazily, commits each batch before `on_batch` sees it,
and a delivery the pipeline fails on is kept as quarantined while its batch-mates go on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from simulator.domain import Channel, Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org, load_org
from simulator.pipeline import classify
from simulator.pipeline.batch import ingest, prepare, write_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import InboundMail
from simulator.store.db import Store
from simulator.store.models import Delivery, Issue, Secret, User
from tests.support.mail import compose
from tests.support.samples import org_file

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DESK = "desk@globex.test"


@pytest.fixture
def org() -> Org:
    return load_org(org_file("globex.toml"))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intake.db'}"


@pytest.fixture
def store(url: str, org: Org) -> Iterator[Store]:
    store = Store(url)
    prepare(store, org, AT)
    yield store
    store.dispose()


def submission(n: int, subject: str = "") -> Submission:
    sender = f"sender{n}@customer.example"
    raw = compose(sender, subject or f"Request {n}", f"m{n}@customer.example", to=DESK)
    return Submission(raw, sender, [DESK], AT + timedelta(seconds=n), Channel.INGEST)


def committed_deliveries(url: str) -> int:
    """Deliveries another connection can see, i.e. committed ones."""
    with Store(url) as other, other.sessions() as session:
        return session.scalar(select(func.count(Delivery.id))) or 0


def test_prepare_makes_the_schema_the_secret_and_the_directory(url: str, org: Org) -> None:
    with Store(url) as store:
        assert store.revision() is None
        changes = prepare(store, org, AT)
        assert [str(c) for c in changes].count("support+1(directory_agent)") == 2
        assert prepare(store, org, AT) == []  # a second start changes nothing
        with store.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Secret)) == 1
            assert session.scalar(select(func.count(User.id))) == len(org.directory)


def test_ingest_commits_each_batch_before_on_batch_sees_it(
    store: Store, org: Org, url: str
) -> None:
    pulled: list[int] = []

    def generate() -> Iterator[Submission]:
        for n in range(7):
            pulled.append(n)
            yield submission(n)

    seen: list[tuple[int, int, int, list[str]]] = []

    def on_batch(results: Sequence[DeliveryResult]) -> None:
        outcomes = [r.outcome.value for r in results]
        seen.append((len(results), len(pulled), committed_deliveries(url), outcomes))

    assert ingest(store, org, generate(), on_batch, batch_size=3) == 7
    assert seen == [
        (3, 3, 3, ["created_issue"] * 3),  # no more pulled than the batch holds...
        (3, 6, 6, ["created_issue"] * 3),  # ...and each batch committed when reported
        (1, 7, 7, ["created_issue"]),
    ]
    with store.sessions() as session:
        stored = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [d.message_id for d in stored] == [f"m{n}@customer.example" for n in range(7)]
        assert {d.channel for d in stored} == {"ingest"}
        assert session.scalar(select(func.count(Issue.number))) == 7


def test_ingest_of_nothing_calls_nothing(store: Store, org: Org) -> None:
    calls: list[int] = []
    assert ingest(store, org, iter(()), lambda results: calls.append(len(results))) == 0
    assert calls == []


def test_ingest_works_without_on_batch(store: Store, org: Org, url: str) -> None:
    assert ingest(store, org, (submission(n) for n in range(3)), batch_size=2) == 3
    assert committed_deliveries(url) == 3


def test_a_failing_delivery_is_quarantined_and_its_batch_mates_go_on(
    store: Store, org: Org, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug deep in intake (here: in the noise check, for one subject) must cost that
    delivery only: its SAVEPOINT rolls back and its bytes are kept for a look."""
    real_noise_reason = classify.noise_reason

    def noise_reason(mail: InboundMail, envelope_from: str | None, our_domain: str) -> str | None:
        if mail.subject == "boom":
            raise RuntimeError("a bug in one stage")
        return real_noise_reason(mail, envelope_from, our_domain)

    monkeypatch.setattr(classify, "noise_reason", noise_reason)
    batches: list[list[tuple[str, str | None]]] = []
    items = [submission(1), submission(2, "boom"), submission(3), submission(4)]
    done = ingest(
        store,
        org,
        iter(items),
        lambda results: batches.append([(r.outcome.value, r.reason) for r in results]),
        batch_size=3,
    )
    assert done == 4
    assert batches == [
        [("created_issue", None), ("quarantined", "internal_error"), ("created_issue", None)],
        [("created_issue", None)],
    ]
    assert committed_deliveries(url) == 4
    with store.sessions() as session:
        failed = session.scalars(select(Delivery).where(Delivery.outcome == "quarantined")).one()
        assert failed.reason == "internal_error"
        assert failed.raw == items[1].raw  # the bytes, exactly as received
        assert (failed.envelope_from, failed.recipients) == ("sender2@customer.example", DESK)
        assert (failed.issue_number, failed.user_id, failed.channel) == (None, None, "ingest")
        # Nothing the failed delivery did before the bug survives: no user, no issue.
        assert (
            session.scalars(select(User).where(User.email == "sender2@customer.example")).all()
            == []
        )
        assert session.scalar(select(func.count(Issue.number))) == 3


def test_a_storage_error_fails_the_whole_batch(
    store: Store, org: Org, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage trouble is not one message's fault: nothing of the batch is kept (451)."""

    def broken(*_: object) -> str | None:
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr(classify, "noise_reason", broken)
    with pytest.raises(StoreUnavailable, match="disk I/O error"):
        write_batch(store, org, [submission(1), submission(2)])
    assert committed_deliveries(url) == 0


# How a listener keeps a byte that is not UTF-8 (aiosmtpd decodes with surrogateescape).
UNWRITABLE = "\udcff@evil.example"


def test_an_unwritable_envelope_costs_that_delivery_only(store: Store, org: Org, url: str) -> None:
    """A surrogate-escaped byte in the envelope cannot be stored as text; the delivery is
    still stored (with the byte replaced) and its batch-mates are committed with it."""
    bad = Submission(submission(2).raw, UNWRITABLE, [DESK, UNWRITABLE], AT, Channel.SMTP)
    results = write_batch(store, org, [submission(1), bad, submission(3)])
    assert [r.outcome.value for r in results][::2] == ["created_issue", "created_issue"]
    assert committed_deliveries(url) == 3
    with store.sessions() as session:
        row = session.get(Delivery, results[1].delivery_id)
        assert row is not None and row.envelope_from == "\ufffd@evil.example"
        assert row.recipients == f"{DESK},\ufffd@evil.example"


def test_the_quarantine_fallback_cannot_fail_on_the_same_text(
    store: Store, org: Org, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When intake fails on a delivery whose envelope is unwritable, the quarantine row
    that replaces it must not fail for the same reason and take the batch down (451)."""

    def broken(*_: object) -> str | None:
        raise RuntimeError("a bug in one stage")

    monkeypatch.setattr(classify, "noise_reason", broken)
    bad = Submission(submission(2).raw, UNWRITABLE, [UNWRITABLE], AT, Channel.SMTP)
    results = write_batch(store, org, [bad])
    assert [(r.outcome.value, r.reason) for r in results] == [("quarantined", "internal_error")]
    assert committed_deliveries(url) == 1
    with store.sessions() as session:
        row = session.get(Delivery, results[0].delivery_id)
        assert row is not None and row.raw == bad.raw
        assert (row.envelope_from, row.recipients) == ("\ufffd@evil.example",) * 2
