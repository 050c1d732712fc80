"""Property-based tests: parsing never raises, classification stays in its vocabulary,
and the whole pipeline gives every input exactly one stored outcome.

Example counts are kept modest so the suite stays quick; `intake-sim fuzz`
runs the same generator over SMTP for 10^5 messages and more.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from simulator.domain import Outcome
from simulator.org import Org, load_org
from simulator.pipeline import classify, intake, parse
from simulator.pipeline.batch import prepare
from simulator.pipeline.mimeshape import over_limits
from simulator.pipeline.parse import PROBLEMS, InboundMail, parse_message
from simulator.reliability.fuzz import FuzzOptions, run_fuzz
from simulator.reliability.fuzzmail import CHARSETS, MailFuzzer
from simulator.smtp.server import ListenerOptions
from simulator.store.db import Store, open_store
from simulator.store.models import Delivery
from tests.support.listeners import running_listener

NOISE_REASONS = {"loop", "bounce", "auto_reply", "list", "no_reply"}
SAMPLE_ORG = load_org(None)
FAST = settings(max_examples=30, deadline=None)

header_names = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "X-Autoreply",
        "X-Loop",
        "Return-Path",
    ]
) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z")
header_values = st.text(max_size=120) | st.builds(
    lambda charset, text: f"=?{charset}?q?{''.join(f'={b:02X}' for b in text)}?=",
    st.sampled_from(CHARSETS),
    st.binary(max_size=40),
)
headers = st.lists(st.tuples(header_names, header_values), max_size=12)


def assemble(fields: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


def check_mail(mail: InboundMail) -> None:
    assert mail.problem is None or mail.problem in PROBLEMS
    assert mail.sender is None or ("@" in mail.sender and mail.sender == mail.sender.lower())
    assert "\r" not in mail.subject and "\n" not in mail.subject


@FAST
@given(st.binary(max_size=3000), st.sampled_from([None, "", "a@b.example", "<>"]))
def test_parse_never_raises_on_raw_bytes(raw: bytes, envelope_from: str | None) -> None:
    check_mail(parse_message(raw, envelope_from))


@FAST
@given(headers, st.binary(max_size=500))
def test_parse_never_raises_on_generated_headers(
    fields: list[tuple[str, str]], body: bytes
) -> None:
    check_mail(parse_message(assemble(fields, body), None))


@FAST
@given(st.randoms(use_true_random=False))
def test_parse_and_classify_generated_mime(rng: random.Random) -> None:
    fuzzer = MailFuzzer(rng)
    for _ in range(5):
        mail = parse_message(fuzzer.message(), "x@customer.example")
        check_mail(mail)
        reason = classify.noise_reason(mail, "x@customer.example", "intake-sim.invalid")
        assert reason is None or reason in NOISE_REASONS


def tree_shape(raw: bytes, max_depth: int, max_parts: int) -> set[str]:
    """The limits the parsed tree is past, counted on the tree as the parser builds it."""
    parts, too_deep = parse._walk(BytesParser(policy=parse._POLICY).parsebytes(raw), max_depth)
    over = {"too_deep": too_deep, "too_many_parts": len(parts) > max_parts}
    return {reason for reason, past in over.items() if past}


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 3), st.integers(1, 8))
def test_counting_parts_on_the_bytes_never_says_over_when_the_tree_is_not(
    rng: random.Random, max_depth: int, max_parts: int
) -> None:
    """`over_limits` skips building the tree, so it may only say "over" when the tree
    would be over too; what it misses, the count on the tree still catches."""
    fuzzer = MailFuzzer(rng)
    for _ in range(5):
        raw = fuzzer.message()
        found = over_limits(raw, max_depth, max_parts)
        assert found is None or found in tree_shape(raw, max_depth, max_parts), raw


@FAST
@given(
    st.lists(
        st.tuples(
            header_names,
            st.text(
                st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"), max_size=60
            ),
        ),
        max_size=8,
    )
)
def test_classification_marks_auto_replies(fields: list[tuple[str, str]]) -> None:
    """Whatever other (well-formed) fields are there, an Auto-Submitted reply is noise."""
    raw = assemble([*fields, ("Auto-Submitted", "auto-replied")], b"I am out of the office.\r\n")
    mail = parse_message(raw, "jo@customer.example")
    assert classify.noise_reason(mail, "jo@customer.example", "intake-sim.invalid") is not None


@pytest.fixture(scope="module")
def pipeline_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "intake.db"
    store = open_store(f"sqlite:///{path}")
    prepare(store, SAMPLE_ORG)
    yield store
    store.dispose()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=8))
def test_pipeline_gives_every_input_one_outcome(
    pipeline_store: Store, rng: random.Random, count: int
) -> None:
    fuzzer = MailFuzzer(rng)
    batch = [fuzzer.message() for _ in range(count)]
    valid = {o.value for o in Outcome}
    with pipeline_store.sessions() as session, session.begin():
        results = [
            intake.process(
                session,
                SAMPLE_ORG,
                raw,
                "x@customer.example",
                ["support@acme.example"],
                datetime.now(UTC),
            )
            for raw in batch
        ]
        session.flush()
        ids = [r.delivery_id for r in results]
        rows = dict(
            session.execute(select(Delivery.id, Delivery.outcome).where(Delivery.id.in_(ids))).all()
        )
        assert sorted(rows) == sorted(ids) and len(set(ids)) == count
        assert all(rows[r.delivery_id] == r.outcome.value for r in results)
        assert set(rows.values()) <= valid
        session.rollback()  # keep the module's store small; each example starts alike


async def test_live_fuzz_over_smtp(db_url: str, org: Org) -> None:
    """The short version of `intake-sim fuzz`, against a running listener with the
    error tarpit off, as `fuzz` runs its own (its hostile envelopes are refused on
    purpose, and the tarpit would close those sessions with 421)."""
    store = open_store(db_url)
    untarpitted = ListenerOptions(port=0, error_soft_limit=0, error_hard_limit=0)
    async with running_listener(store, org, untarpitted) as listener:
        options = FuzzOptions(
            messages=300,
            clients=3,
            seed=5,
            host=listener.host,
            port=listener.port,
            db=listener.store.url,
        )
        report = await asyncio.to_thread(run_fuzz, options)
    store.dispose()
    figures = report.as_dict()
    assert report.sent == 300 and report.accepted > 200, figures
    assert report.audited and report.missing == [] and report.recorded == report.accepted
    # Long lines (500), header limits (552), envelope addresses we cannot store (553):
    # the generated envelopes carry bytes that are not UTF-8, and not one batch may 451.
    assert set(report.replies) <= {250, 500, 552, 553} and report.replies[553] > 0, figures
    assert report.still_answers and report.ok
    assert sum(report.outcomes.values()) == report.accepted
