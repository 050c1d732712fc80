"""The quick readings beside the general ones give the same answers, on hostile input.

A plain header section is read once (mimeshape.plain_head) and the message built from
it; one plain address is split without the stdlib's address parser; a body that names
no DSN field is not searched for them. Each is held here to the general reading, and
intake's whole reading (the InboundMail and its noise reason) to `general_parse`.
"""

from __future__ import annotations

import email.utils
import random
import re
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulator.pipeline import classify, mimeshape, parse
from simulator.pipeline.parse import (
    _POLICY,
    MimeLimits,
    _charset,
    _message_charset,
    _plain_pair,
    _read_types,
    _single_part,
    _types,
    general_parse,
    parse_message,
    repair_folding,
)
from simulator.reliability.fuzzmail import MailFuzzer
from tests.support.mail import shape

LINE_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\n", b"\r", b""])
ADDRESSES = st.sampled_from(
    [
        "ava@customer.example",
        "<ava@customer.example>",
        "Ava Customer <ava@customer.example>",
        "Ava<ava@customer.example>",
        '"Customer, Ava" <ava@customer.example>',
        "=?utf-8?q?Ava_Caf=C3=A9?= <ava@customer.example>",
        "ava=?utf-8?q?x?=@customer.example",
        "<power quadrant system@example.com>",
        "a@b.example, c@d.example",
        "MAILER-DAEMON",
        "Mail Delivery Subsystem <MAILER-DAEMON@mx.example>",
        "noreply@shop.example",
        "(comment) ava@customer.example",
        "ava@customer.example.",
        "Ava <ava@bücher.example>",
        "",
        "<>",
        "Group: a@b.example;",
    ]
)
VALUES = st.sampled_from(
    [
        "help",
        "=?utf-8?q?caf=C3=A9?= help",
        "=?utf-8?b?Y2Fmw6k=?=",
        "=?iso-2022-jp?b?GyRCJEgbKEI=?=",
        "Undelivered Mail Returned to Sender",
        "Out of Office: away",
        "<1@customer.example>",
        "<1@customer.example> <2@customer.example>",
        "Sat, 28 Nov 2026 10:00:00 +0000",
        "Mon, 1 Jan 2024 10:00:00 -0000",
        "not a date",
        "auto-replied",
        "bulk",
        "",
        "  spaced  ",
    ]
)
NAMES = st.sampled_from(
    [
        "From",
        "from",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "X-Failed-Recipients",
        "X-Custom",
        "Content-Disposition",
    ]
)
CONTENT_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/plain; charset=utf-8",
        'text/plain;\r\n\tcharset="iso-8859-1"',
        "text/plain; charset=gb2312",
        "text/plain; charset*=utf-8''%E2%82%AC",
        "text/plain; charset=idna",
        "TEXT/HTML; charset=UTF-8",
        "text/rfc822-headers",
        "text/plain; name=report.txt",
        'application/pdf; name="a.pdf"',
        "multipart/mixed; boundary=b",
        "multipart/\r\n mixed; boundary=b",
        "multipart/report; report-type=delivery-status; boundary=b",
        "message/rfc822",
        "message/delivery-status",
        "mess\r\n age/rfc822",
        "bogus",
        "",
    ]
)
ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "BASE64"])
RAW_LINES = st.sampled_from(
    [
        b" folded on",
        b"\tfolded on",
        b"not a header line",
        b"From nobody Sat Nov 28 10:00:00 2026",
        b":no name",
        b"Subject : spaced name",
        b"Subject: caf\xc3\xa9 \xff 8-bit",
        b"X-Nul: a\x00b",
        b"",
        b"--b",
        b"Content-Type: text/plain\r\n\r\nfinal-recipient: rfc822; jo@x.example",
        b"--b--",
    ]
)
BODIES = st.sampled_from(
    [
        b"Hello.\r\n",
        b"Final-Recipient: rfc822; jo@customer.example\r\nDiagnostic-Code: smtp; 550\r\n",
        b" final-recipient: a\r\n\r\n remote-mta : b\r\n",
        "f\u0131nal-recipient: a\nreporting-mta: b\n".encode(),
        b'{"notificationType": "Bounce"}',
        b"<p>Hello <b>there</b></p>",
        b"SGVsbG8uDQo=\r\n",
        b"caf=C3=A9\r\n",
        b"\xff\xfe latin \xe9\r\n",
        b"",
    ]
)


@st.composite
def fields(draw: st.DrawFn) -> bytes:
    """One header line (or a few, or something that is not one) without its line end."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        name = draw(st.sampled_from(["From", "To", "Cc", "Sender", "Reply-To"]))
        return f"{name}: {draw(ADDRESSES)}".encode()
    if kind == 1:
        return f"Content-Type: {draw(CONTENT_TYPES)}".encode()
    if kind == 2:
        return f"Content-Transfer-Encoding: {draw(ENCODINGS)}".encode()
    if kind == 3:
        return draw(RAW_LINES)
    if kind == 4:
        text = draw(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20))
        return f"{draw(NAMES)}: {text}".encode("utf-8", "surrogateescape")
    return f"{draw(NAMES)}: {draw(VALUES)}".encode()


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Mostly plain header sections (so the quick reading is taken), some not, with line
    ends of every kind; then an empty line (or not) and a body."""
    one_end = draw(st.integers(0, 3)) > 0
    first_end = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = draw(st.lists(st.tuples(fields(), LINE_ENDS), max_size=10))
    head = b"".join(line + (first_end if one_end else end) for line, end in lines)
    blank = draw(st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\r\n"]))
    return head + blank + draw(BODIES | st.binary(max_size=120))


LIMITS = st.sampled_from(
    [MimeLimits(), MimeLimits(1, 1, 1), MimeLimits(0, 0, 0), MimeLimits(2, 3, 2)]
)
PLAIN = (
    b"From: Customer 7 <customer7@client7.example>\r\nTo: <support@acme.example>\r\n"
    b"Subject: Bench ticket 7\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <t.7@bench.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
)


def full_parse(raw: bytes) -> Message:
    return BytesParser(policy=_POLICY).parsebytes(raw)


@settings(max_examples=1500, deadline=None)
@given(messages())
@example(PLAIN)
@example(PLAIN.replace(b"\r\n", b"\n"))
@example(b"Subject: a\r\n folded\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\n\r\nhi")
def test_a_plain_head_is_what_the_parser_reads(raw: bytes) -> None:
    head = mimeshape.plain_head(raw)
    if head is None:
        return
    # Nothing in it to re-fold, and over_limits reads the same first block from it.
    assert repair_folding(raw) == raw
    block = mimeshape._header_block(raw, 0, [])
    assert (head.block.end, head.block.boundary, head.block.message) == (
        block.end,
        block.boundary,
        block.message,
    )
    msg = _single_part(raw, head)
    if msg is not None:
        assert shape(msg) == shape(full_parse(raw))
        assert msg.get_unixfrom() is None


@settings(max_examples=1500, deadline=None)
@given(messages(), st.sampled_from([None, "", "<>", "bounce@relay.example"]), LIMITS)
@example(PLAIN, "customer7@client7.example", MimeLimits())
def test_intake_reads_every_message_as_the_general_parse_does(
    raw: bytes, envelope_from: str | None, limits: MimeLimits
) -> None:
    fast = parse_message(raw, envelope_from, limits)
    general = general_parse(raw, envelope_from, limits)
    assert fast == general
    assert classify.noise_reason(fast, envelope_from, "acme.example") == classify.noise_reason(
        general, envelope_from, "acme.example"
    )


def test_the_benchmark_message_takes_the_quick_reading() -> None:
    """Not only equal: the plain message is read without the stdlib parser."""
    head = mimeshape.plain_head(PLAIN)
    assert head is not None
    assert _single_part(PLAIN, head) is not None
    assert mimeshape.plain_head(PLAIN.replace(b"Subject:", b"Subject :")) is None


PAIR_TEXT = st.lists(
    st.sampled_from(list("aZ09.-_+=?!#$%&'*/^`{|}~ \t<>@,;:\"()[]\\é\r\n")), max_size=30
).map("".join)
WORDS = st.from_regex(r"\A[a-z0-9]{1,4}\Z") | st.text("aZ9.-_=?'é", max_size=5)
GAPS = st.sampled_from(["", " ", " ", "  ", "\t", " \r\n ", ".", ",", '"', "(", ")"])


@st.composite
def address_values(draw: st.DrawFn) -> str:
    """Names, brackets and addresses put together, with gaps of every kind between."""
    phrase = "".join(draw(WORDS) + draw(GAPS) for _ in range(draw(st.integers(0, 3))))
    local = draw(st.lists(WORDS, min_size=1, max_size=3).map(".".join))
    domain = draw(st.lists(WORDS, min_size=1, max_size=3).map(".".join))
    opening, closing = draw(st.sampled_from([("<", ">"), ("", ""), ("<", ""), ("", ">")]))
    space = draw(GAPS)
    return (
        f"{phrase}{space}{opening}{local}@{domain}{closing}{draw(st.sampled_from(['', ' ', ',']))}"
    )


@settings(max_examples=3000, deadline=None)
@given(PAIR_TEXT | address_values())
@example("Customer 7 <customer7@client7.example>")
@example("J. Doe <a@b.example>")
@example("Ava  Customer <ava@customer.example>")
def test_a_plain_address_splits_as_the_stdlib_splits_it(value: str) -> None:
    plain = _plain_pair(value)
    if plain is not None:
        assert list(plain) == email.utils.getaddresses([value])


_SEARCHED = re.compile(rb"\r?\n\r?\n")


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"x", b"\r\n", b"\n\r"]), max_size=12).map(b"".join))
def test_the_end_of_the_head_is_where_the_pattern_finds_it(raw: bytes) -> None:
    found = _SEARCHED.search(raw)
    assert mimeshape.head_end(raw) == (found.span() if found else None)


DSN_TEXT = st.lists(
    st.sampled_from(
        [
            *classify.DSN_FIELD_NAMES,
            *(name.upper() for name in classify.DSN_FIELD_NAMES),
            *(name.replace("-", " ") for name in classify.DSN_FIELD_NAMES),
            "f\u0131nal-recipient",  # dotless i: re.I matches it to "i"
            "diagno\u017ftic-code",  # long s: re.I matches it to "s"
            ":",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\x1c",
            "word",
            "-",
        ]
    ),
    max_size=14,
).map("".join)


def test_every_dsn_field_name_has_the_mark() -> None:
    assert all(classify.DSN_NAME_MARK in name for name in classify.DSN_FIELD_NAMES)


@settings(max_examples=3000, deadline=None)
@given(DSN_TEXT)
@example("Final-Recipient: a\nDiagnostic-Code: b")
@example("f\u0131nal-recipient: a\nf\u0131nal-recipient: b")
def test_dsn_fields_are_counted_as_the_pattern_counts_them(text: str) -> None:
    assert classify._has_dsn_fields(text) == (len(classify.DSN_FIELDS.findall(text)) >= 2)


@settings(max_examples=1000, deadline=None)
@given(CONTENT_TYPES | st.text(max_size=40))
def test_the_remembered_content_type_is_the_messages_own(value: str) -> None:
    msg = Message(policy=_POLICY)
    msg.set_raw("Content-Type", value)
    assert _types(msg) == _read_types(msg)
    assert _charset(msg) == _message_charset(msg)
    assert parse._content_type(msg) == _read_types(msg)[1]


def usually(plain: list[str], other: list[str]) -> st.SearchStrategy[str]:
    """One of `plain` four times in five, else one of `other`."""
    return st.sampled_from(plain * (4 * len(other)) + other * len(plain))


@st.composite
def dates(draw: st.DrawFn) -> str:
    """Dates in the plain form with numbers in and out of range, and a few other forms."""
    weekday = draw(usually(["Sat, ", ""], ["Sat ", "Xyz, ", "Sat,"]))
    day = draw(usually(["1", "07", "28", "31", "0", "32"], ["123", "x"]))
    month = draw(usually(["Nov", "Feb", "Dec"], ["nov", "November", "Foo"]))
    year = draw(usually(["2026", "1000", "9999", "1969"], ["0099", "99", "10000"]))
    clock = draw(usually(["10:00:00", "23:59:59", "24:00:00", "10:60:00", "10:00:60"], ["10:00"]))
    zone = draw(
        usually(
            ["+0000", "-0000", "+0200", "-0530", "+2359", "+2400", "-0099"], ["GMT", "+000", ""]
        )
    )
    gap = draw(usually([" "], ["  ", ""]))
    return f"{weekday}{day} {month} {year} {clock}{gap}{zone}"


@settings(max_examples=3000, deadline=None)
@given(dates())
@example("Sat, 28 Nov 2026 10:00:00 +0000")
@example("Sat, 28 Nov 2026 10:00:00 -0000")
@example("Sat, 28 Nov 0099 10:00:00 +0000")
@example("Fri, 31 Dec 9999 23:59:59 -2359")
@example("Mon, 31 Feb 2024 24:00:60 +2400")
def test_a_plain_date_reads_as_the_stdlib_reads_it(value: str) -> None:
    assert parse._date(value) == parse._general_date(value)


SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "emails"
CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


def real_mail() -> list[Path]:
    """The sample emails, and the real-world corpora beside the repository when present."""
    found = sorted(SAMPLES.glob("*.eml"))
    if CORPORA.is_dir():
        found += sorted(CORPORA.rglob("*.eml")) + sorted(CORPORA.rglob("*.box"))
    return found


def test_real_mail_reads_as_the_general_parse_reads_it() -> None:
    """Every sample and corpus message: the same InboundMail and noise reason either way."""
    paths = real_mail()
    quick = 0
    for path in paths:
        raw = path.read_bytes()
        for envelope_from in (None, "<>"):
            fast = parse_message(raw, envelope_from)
            general = general_parse(raw, envelope_from)
            assert fast == general, path
            assert classify.noise_reason(fast, envelope_from, "acme.example") == (
                classify.noise_reason(general, envelope_from, "acme.example")
            ), path
        head = mimeshape.plain_head(raw)
        quick += head is not None and _single_part(raw, head) is not None
    assert quick > len(paths) // 10  # the quick reading is taken, not only its fallback


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_fuzzed_mail_reads_as_the_general_parse_reads_it(rng: random.Random) -> None:
    """The listener fuzzer's hostile MIME (damaged, nested, 8-bit, mixed line ends)."""
    fuzzer = MailFuzzer(rng)
    for _ in range(10):
        raw = fuzzer.message()
        assert parse_message(raw, "x@customer.example") == general_parse(raw, "x@customer.example")
