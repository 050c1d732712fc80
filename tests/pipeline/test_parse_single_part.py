"""A message of one part is parsed from its header section, its body handed over
whole: the same message, and the same intake reading, as the stdlib's full parse."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.pipeline import parse
from simulator.pipeline.parse import _POLICY, _parse, general_parse
from tests.support.mail import shape

LINE_ENDS = st.sampled_from([b"\r\n", b"\n", b"\r", b""])
HEADER_LINES = st.sampled_from(
    [
        b"From: Ava <ava@customer.example>",
        b"To: support@acme.example",
        b"Subject: =?utf-8?q?caf=C3=A9?= help",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Type: text/html",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: message/rfc822",
        b"Content-Type: bogus",
        b"Content-Transfer-Encoding: base64",
        b"Message-ID: <1@customer.example>",
        b" folded on",
        b"not a header line",
        b"",
        b"--b",
        b"--b--",
        b"From nobody",
        b"caf\xc3\xa9 \xff\x00 text",
    ]
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(HEADER_LINES, LINE_ENDS), max_size=12))
    body = draw(st.binary(max_size=200))
    return b"".join(line + end for line, end in lines) + body


def full_parse(raw: bytes) -> Message:
    return BytesParser(policy=_POLICY).parsebytes(raw)


@settings(max_examples=600, deadline=None)
@given(messages())
def test_the_single_part_parse_is_the_full_parse(raw: bytes) -> None:
    assert shape(_parse(raw, headers_only=False)) == shape(full_parse(raw))


@settings(max_examples=300, deadline=None)
@given(messages(), st.sampled_from([None, "bounce@relay.example"]))
def test_intake_reads_the_same_either_way(raw: bytes, envelope_from: str | None) -> None:
    fast = general_parse(raw, envelope_from)
    original = parse._parse
    parse._parse = lambda data, headers_only: BytesParser(policy=_POLICY).parsebytes(  # type: ignore[assignment]
        data, headersonly=headers_only
    )
    try:
        slow = general_parse(raw, envelope_from)
    finally:
        parse._parse = original
    assert fast == slow


def test_short_lines_are_one_payload() -> None:
    body = b"x\r\n" * 100_000
    raw = b"From: a@customer.example\r\nSubject: lines\r\n\r\n" + body
    msg = _parse(raw, headers_only=False)
    assert msg._payload == body.decode()  # type: ignore[attr-defined]
    assert shape(msg) == shape(full_parse(raw))
