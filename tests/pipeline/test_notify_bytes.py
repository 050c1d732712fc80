"""Property: automatic email is written byte for byte as the standard library composes it.

`notify.message_bytes` writes the headers it can as they are and hands the rest
to the policy; the reference below is the plain `email.message` composition the
pipeline used before (every header assigned, `set_content`, `as_bytes`). For
arbitrary subjects, names, addresses, ids and dates both must give the same
bytes and the same stored Subject, or both must fail.
"""

from __future__ import annotations

import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, EmailPolicy
from email.utils import format_datetime
from functools import cache

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from simulator.org import Org, load_org
from simulator.pipeline import classify, notify
from simulator.pipeline.notify import (
    REFERENCES_MAX,
    SAFE_MESSAGE_ID,
    IssueFacts,
    NotificationKind,
    Outgoing,
    header_text,
    message_bytes,
    tagged_subject,
)
from simulator.pipeline.parse import InboundMail, parse_message
from simulator.pipeline.signing import MessageIdSigner
from tests.support.mail import compose as compose_mail
from tests.support.samples import org_file


def reference(org: Org, outgoing: Outgoing, message_id: str, at: datetime) -> EmailMessage:
    """The message as `email.message` composes it: the oracle."""
    issue, mail = outgoing.issue, outgoing.mail
    acknowledgement = outgoing.kind is NotificationKind.ACKNOWLEDGEMENT
    recipient, name = outgoing.recipient, header_text(outgoing.recipient_name)
    message = EmailMessage(policy=SMTP if recipient.isascii() else SMTPUTF8)
    message["From"] = Address(display_name=header_text(org.name), addr_spec=org.notify.from_address)
    message["To"] = (
        Address(display_name=name, addr_spec=recipient) if recipient.isascii() else recipient
    )
    message["Subject"] = tagged_subject(
        issue.number, mail.subject if acknowledgement else issue.subject
    )
    message["Date"] = format_datetime(at)
    message["Message-ID"] = f"<{message_id}>"
    references = [i for i in mail.references if SAFE_MESSAGE_ID.match(i)][-REFERENCES_MAX:]
    if outgoing.reply_to_id and SAFE_MESSAGE_ID.match(outgoing.reply_to_id):
        message["In-Reply-To"] = f"<{outgoing.reply_to_id}>"
        references.append(outgoing.reply_to_id)
    if references:
        message["References"] = " ".join(f"<{i}>" for i in dict.fromkeys(references))
    message["Auto-Submitted"] = "auto-replied" if acknowledgement else "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["Precedence"] = "bulk"
    message[classify.LOOP_HEADER] = org.message_id_domain
    message.set_content(notify._body(org, outgoing))
    return message


@cache
def base_org() -> Org:
    return load_org(org_file("initech.toml"))


@cache
def base_mail() -> InboundMail:
    return parse_message(compose_mail("ann@cust.test", "placeholder", "m1@cust.test"), None)


# Text that stresses the header writer: specials, encoded-word markers, controls,
# line breaks, non-ASCII, surrogates, long runs without a space.
TRICKY = st.sampled_from(
    [
        "=?utf-8?q?Help=0D=0ABcc=3A_x?=",
        "a=?b",
        '"quoted" (comment) <angle> @ , ; : . [ ] \\',
        "Re: [Issue #7] Printer",
        "Jürgen Müller",
        "\u2028\r\nBcc: victim@x",
        "x" * 90,
        "word " * 30,
        "\udcff",
        "",
        "   ",
    ]
)
TEXT = st.one_of(TRICKY, st.text(max_size=120), st.text(string.printable, max_size=120))
ATOM = st.text(string.ascii_lowercase + string.digits + "_+-", min_size=1, max_size=20)
PLAIN = st.builds(lambda a, b, c: f"{a}.{b}@{c}.example", ATOM, ATOM, ATOM)
ADDRESSES = st.one_of(
    PLAIN,
    st.emails(),
    st.sampled_from(
        [
            "jürgen@bücher.example",
            '"odd one"@quoted.example',
            "a" * 70 + "@long-domain-name-for-folding.example",
            "ann+tag@cust.test",
            "x@[127.0.0.1]",
        ]
    ),
)
IDS = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60),
    st.text(max_size=30),
    PLAIN,
)
OFFSETS = st.integers(-23 * 3600, 23 * 3600).map(lambda s: timezone(timedelta(seconds=s)))
ZONES = st.one_of(st.just(UTC), st.none(), OFFSETS, st.timezones())
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)


@st.composite
def outgoing_mail(draw: st.DrawFn) -> tuple[Org, Outgoing, str, datetime]:
    org = replace(base_org(), name=draw(TEXT))
    mail = replace(
        base_mail(),
        subject=draw(TEXT),
        sender_name=draw(TEXT),
        text=draw(st.text(max_size=300)),
        references=tuple(draw(st.lists(IDS, max_size=12))),
    )
    recipient = draw(ADDRESSES)
    assume(notify._addressable(recipient))
    issue = IssueFacts(draw(st.integers(1, 10**9)), draw(TEXT), 1)
    kind = draw(st.sampled_from(list(NotificationKind)))
    reply_to = draw(st.one_of(st.none(), IDS))
    outgoing = Outgoing(kind, issue, recipient, draw(TEXT), mail, reply_to)
    # Domains of every length around the folding limit of a Message-ID line.
    short = st.integers(1, 40).map(lambda n: "d" * n + ".ex")
    domain = draw(st.one_of(st.just(org.message_id_domain), short))
    message_id = MessageIdSigner(b"k", domain).new_id(issue.number)
    return org, outgoing, message_id, draw(MOMENTS)


def assert_same(org: Org, outgoing: Outgoing, message_id: str, at: datetime) -> None:
    try:
        expected = reference(org, outgoing, message_id, at)
        expected_bytes = expected.as_bytes()
    except Exception as failure:
        try:
            message_bytes(org, outgoing, message_id, at)
        except Exception:
            return
        raise AssertionError(
            f"the reference fails ({failure!r}), the fast writer does not"
        ) from None
    raw, subject = message_bytes(org, outgoing, message_id, at)
    assert raw == expected_bytes
    assert subject == str(expected["Subject"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outgoing_mail())
@example(
    (
        base_org(),
        Outgoing(
            NotificationKind.ACKNOWLEDGEMENT,
            IssueFacts(7, "Printer", 1),
            "ann@cust.test",
            "Ann O'Neil (Sales)",
            replace(base_mail(), subject="=?utf-8?q?hi?=", references=("a@b", "c@d")),
            "m1@cust.test",
        ),
        "issue-7.0123456789abcdef.0123456789abcdef0123456789abcdef@notify.initech.test",
        datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
    )
)
def test_same_bytes_as_the_email_package(case: tuple[Org, Outgoing, str, datetime]) -> None:
    assert_same(*case)


@pytest.mark.parametrize("length", range(3, 130))
@pytest.mark.parametrize("policy", [SMTP, SMTPUTF8])
def test_message_id_lines_of_every_length(policy: EmailPolicy, length: int) -> None:
    message_id = "a" * max(length - len("@x.example"), 1) + "@x.example"
    name, parsed = policy.header_store_parse("Message-ID", f"<{message_id}>")
    assert notify._message_id_line(policy, "Message-ID", message_id) == policy.fold_binary(
        name, parsed
    )
