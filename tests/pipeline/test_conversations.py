"""Dedupe and threading (simulator/pipeline/conversations.py) over issues made by the
real pipeline on a real SQLite file.

Dedupe is by Message-ID; a reply threads by In-Reply-To, then References newest
first; an id in our own domain counts only when its signature holds; the
`[Issue #N]` subject tag threads only for someone who takes part in issue N, and
from a stranger opens a new issue with reason `subject_tag_untrusted`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from simulator.domain import Submission
from simulator.org import Org, load_org
from simulator.pipeline.batch import write_batch
from simulator.pipeline.conversations import Thread, find_thread, known_message, reply_candidates
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import InboundMail, parse_message
from simulator.pipeline.signing import MessageIdSigner
from simulator.store.db import Store
from simulator.store.models import Issue
from tests.support.databases import prepared_sqlite
from tests.support.mail import compose
from tests.support.samples import org_file

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DESK = "desk@globex.test"
KIM = "kim@customer.example"
MAX = "max@other.example"


@pytest.fixture
def org() -> Org:
    return load_org(org_file("globex.toml"))


@pytest.fixture
def store(tmp_path: Path, org: Org) -> Iterator[Store]:
    yield from prepared_sqlite(tmp_path, org, AT)


@pytest.fixture
def signer(org: Org) -> MessageIdSigner:
    return MessageIdSigner(b"a key for the tests, not a secret", org.message_id_domain)


def deliver(store: Store, org: Org, raw: bytes, sender: str = KIM) -> DeliveryResult:
    (result,) = write_batch(store, org, [Submission(raw, sender, [DESK], AT)])
    return result


def open_issue(store: Store, org: Org, message_id: str, sender: str = KIM) -> int:
    result = deliver(store, org, compose(sender, f"About {message_id}", message_id), sender)
    assert result.outcome.value == "created_issue" and result.issue is not None
    return result.issue


def reply(
    subject: str = "Re: help", *, in_reply_to: str = "", references: str = "", sender: str = MAX
) -> InboundMail:
    headers = {}
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = references
    return parse_message(compose(sender, subject, "reply@other.example", headers=headers), sender)


def thread_of(store: Store, mail: InboundMail, signer: MessageIdSigner | None = None) -> Thread:
    with store.sessions() as session:
        found = find_thread(session, mail, signer)
    assert found is not None
    return found


def no_thread(store: Store, mail: InboundMail, signer: MessageIdSigner | None = None) -> bool:
    with store.sessions() as session:
        return find_thread(session, mail, signer) is None


# --- dedupe ------------------------------------------------------------------------


def test_a_message_id_seen_before_is_known_with_its_issue(store: Store, org: Org) -> None:
    number = open_issue(store, org, "first@customer.example")
    with store.sessions() as session:
        known = known_message(session, "first@customer.example")
        assert known == (number,)
        assert known_message(session, "never@customer.example") is None


def test_a_resend_is_a_duplicate_of_the_same_issue_and_opens_none(store: Store, org: Org) -> None:
    raw = compose(KIM, "Printer on fire", "fire@customer.example")
    first = deliver(store, org, raw)
    resent = deliver(store, org, compose(KIM, "Printer STILL on fire", "fire@customer.example"))
    assert (resent.outcome.value, resent.reason) == ("duplicate", "message_id")
    assert resent.issue == first.issue is not None
    with store.sessions() as session:
        assert session.scalar(select(func.count(Issue.number))) == 1


def test_filtered_mail_is_known_without_an_issue(store: Store, org: Org) -> None:
    auto = compose(KIM, "Out of office", "ooo@customer.example", headers={"Precedence": "bulk"})
    assert deliver(store, org, auto).outcome.value == "filtered"
    with store.sessions() as session:
        known = known_message(session, "ooo@customer.example")
        assert known == (None,)
    again = deliver(store, org, auto)
    assert (again.outcome.value, again.issue) == ("duplicate", None)
    # A reply to it joins nothing: the known id has no issue to give.
    assert no_thread(store, reply(in_reply_to="<ooo@customer.example>"))


def test_mail_without_a_message_id_dedupes_on_its_bytes(store: Store, org: Org) -> None:
    raw = compose(KIM, "No id at all")
    assert deliver(store, org, raw).outcome.value == "created_issue"
    assert deliver(store, org, raw).outcome.value == "duplicate"
    other = compose(KIM, "No id at all", body="Different words.")
    assert deliver(store, org, other).outcome.value == "created_issue"


# --- threading by reply headers ----------------------------------------------------


def test_reply_candidates_are_in_reply_to_then_references_newest_first() -> None:
    mail = reply(in_reply_to="<c@x>", references="<a@x> <b@x> <c@x>")
    assert reply_candidates(mail) == ["c@x", "b@x", "a@x"]
    assert reply_candidates(reply(references="<a@x> <b@x>")) == ["b@x", "a@x"]
    assert reply_candidates(reply()) == []


def test_in_reply_to_wins_over_references(store: Store, org: Org) -> None:
    older = open_issue(store, org, "a@customer.example")
    newer = open_issue(store, org, "b@customer.example")
    mail = reply(in_reply_to="<a@customer.example>", references="<b@customer.example>")
    assert thread_of(store, mail) == Thread(older, "in_reply_to")
    assert older != newer


def test_references_thread_newest_first(store: Store, org: Org) -> None:
    older = open_issue(store, org, "a@customer.example")
    newer = open_issue(store, org, "b@customer.example")
    mail = reply(references="<a@customer.example> <b@customer.example>")
    assert thread_of(store, mail) == Thread(newer, "in_reply_to")
    assert thread_of(store, reply(references="<a@customer.example>")).issue_number == older


def test_unknown_references_are_skipped(store: Store, org: Org) -> None:
    number = open_issue(store, org, "a@customer.example")
    mail = reply(in_reply_to="<lost@elsewhere.example>", references="<a@customer.example>")
    assert thread_of(store, mail) == Thread(number, "in_reply_to")
    assert no_thread(store, reply(in_reply_to="<lost@elsewhere.example>"))


def test_a_reply_through_the_pipeline_joins_its_issue(store: Store, org: Org) -> None:
    number = open_issue(store, org, "a@customer.example")
    raw = compose(
        MAX,
        "Re: something",
        "m1@other.example",
        headers={
            "In-Reply-To": "<a@customer.example>",
        },
    )
    joined = deliver(store, org, raw, MAX)
    assert (joined.outcome.value, joined.reason, joined.issue) == (
        "threaded",
        "in_reply_to",
        number,
    )
    with store.sessions() as session:
        known = known_message(session, "m1@other.example")
        assert known == (number,)  # replies to it thread too


# --- the subject tag ---------------------------------------------------------------


def test_the_subject_tag_threads_for_the_submitter(store: Store, org: Org) -> None:
    number = open_issue(store, org, "a@customer.example")
    for subject in (
        f"Re: [Issue #{number}] About a",
        f"[issue #{number}]",
        f"Fwd:[ISSUE #{number}]",
    ):
        assert thread_of(store, reply(subject, sender=KIM)) == Thread(number, "subject_tag")


def test_a_stranger_s_tag_opens_a_new_issue(store: Store, org: Org) -> None:
    number = open_issue(store, org, "a@customer.example")
    # MAX never wrote to Kim's issue: an issue number is no key to it.
    untrusted = Thread(number, "subject_tag_untrusted", joins=False)
    assert thread_of(store, reply(f"Re: [Issue #{number}] mine now")) == untrusted
    raw = compose(MAX, f"Re: [Issue #{number}] mine now", "hijack@other.example")
    result = deliver(store, org, raw, MAX)
    assert (result.outcome.value, result.reason) == ("created_issue", "subject_tag_untrusted")
    assert result.issue is not None and result.issue != number


def test_the_tag_threads_for_someone_who_wrote_into_the_issue(store: Store, org: Org) -> None:
    number = open_issue(store, org, "a@customer.example")
    raw = compose(
        MAX, "Re: About a", "max1@other.example", headers={"In-Reply-To": "<a@customer.example>"}
    )
    assert deliver(store, org, raw, MAX).outcome.value == "threaded"
    assert thread_of(store, reply(f"[Issue #{number}] me again")) == Thread(number, "subject_tag")


def test_a_tag_for_an_issue_that_does_not_exist_threads_nothing(store: Store, org: Org) -> None:
    open_issue(store, org, "a@customer.example")
    assert no_thread(store, reply("[Issue #999] guessed"))
    assert no_thread(store, reply("[Issue 1] not a tag"))
    raw = compose(MAX, "[Issue #999] guessed", "g@other.example")
    assert deliver(store, org, raw, MAX).outcome.value == "created_issue"


def test_reply_headers_win_over_the_tag(store: Store, org: Org) -> None:
    tagged = open_issue(store, org, "a@customer.example")
    referenced = open_issue(store, org, "b@customer.example")
    mail = reply(f"[Issue #{tagged}] hi", in_reply_to="<b@customer.example>")
    assert thread_of(store, mail) == Thread(referenced, "in_reply_to")


# --- ids in our own domain ---------------------------------------------------------


def test_a_signed_reference_threads_even_without_the_tag(
    store: Store, org: Org, signer: MessageIdSigner
) -> None:
    number = open_issue(store, org, "a@customer.example")
    mail = reply("Re: lost the tag", in_reply_to=f"<{signer.new_id(number)}>")
    assert thread_of(store, mail, signer) == Thread(number, "in_reply_to")


def test_forged_ids_in_our_domain_are_ignored(
    store: Store, org: Org, signer: MessageIdSigner
) -> None:
    first = open_issue(store, org, "a@customer.example")
    second = open_issue(store, org, "b@customer.example")
    signed = signer.new_id(first)
    moved = signed.replace(f"issue-{first}.", f"issue-{second}.", 1)
    other_key = MessageIdSigner(b"somebody else's key", signer.domain).new_id(second)
    for forged in (moved, other_key, f"issue-{second}.{'0' * 16}.{'f' * 32}@{signer.domain}"):
        assert no_thread(store, reply(in_reply_to=f"<{forged}>"), signer), forged
        # Behind the forgery, the next candidate still counts.
        mail = reply(in_reply_to=f"<{forged}>", references="<a@customer.example>")
        assert thread_of(store, mail, signer) == Thread(first, "in_reply_to")


def test_a_signed_id_for_an_issue_that_does_not_exist_is_ignored(
    store: Store, org: Org, signer: MessageIdSigner
) -> None:
    open_issue(store, org, "a@customer.example")
    assert no_thread(store, reply(in_reply_to=f"<{signer.new_id(4242)}>"), signer)


def test_without_a_signer_our_ids_are_only_looked_up(
    store: Store, org: Org, signer: MessageIdSigner
) -> None:
    number = open_issue(store, org, "a@customer.example")
    assert no_thread(store, reply(in_reply_to=f"<{signer.new_id(number)}>"), None)


def test_issues_are_numbered_in_order_and_never_untitled(store: Store, org: Org) -> None:
    numbers = [open_issue(store, org, f"{n}@customer.example") for n in range(3)]
    assert numbers == sorted(set(numbers)) and len(numbers) == 3
    # From MAX: a fourth mail from Kim within the hour would be a flood (globex: 3).
    untitled = deliver(store, org, compose(MAX, "", "untitled@other.example"), MAX)
    with store.sessions() as session:
        issue = session.get_one(Issue, untitled.issue)
        assert (issue.subject, issue.created_at) == ("(no subject)", AT)
    assert untitled.issue is not None and untitled.issue > numbers[-1]
