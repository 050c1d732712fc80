"""parse_message: the fields other stages rely on, each problem value, and hostile input."""

import base64
import time
import tracemalloc
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from simulator.pipeline import parse
from simulator.pipeline.parse import (
    MAX_MIME_DEPTH,
    Attachment,
    InboundMail,
    derived_message_id,
    normalise_address,
    parse_message,
    repair_folding,
)


def mail(*headers: str, body: str | bytes = "Hello.\r\n") -> bytes:
    """A message from header lines and a body, with CRLF line endings as SMTP delivers them."""
    head = "".join(f"{line}\r\n" for line in headers).encode("utf-8")
    return head + b"\r\n" + (body.encode("utf-8") if isinstance(body, str) else body)


def nested_multipart(depth: int) -> bytes:
    """`depth` multiparts, each holding the next, with a text part at the bottom."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    head = b"From: deep@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    return head + opening + b"Content-Type: text/plain\r\n\r\nbottom\r\n" + closing


def assert_clean(result: InboundMail) -> None:
    """Every string the parser hands on is NUL-free and encodable as UTF-8."""
    strings: list[str] = []
    for f in fields(result):
        value = getattr(result, f.name)
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, tuple | frozenset):
            strings.extend(v for v in value if isinstance(v, str))
    strings.extend(a.name for a in result.attachments)
    strings.extend(a.content_type for a in result.attachments)
    for name, values in result.headers.items():
        strings.append(name)
        strings.extend(values)
    for text in strings:
        assert "\x00" not in text
        text.encode("utf-8")  # raises on lone surrogates


# --- ordinary mail -------------------------------------------------------------------


def test_plain_message() -> None:
    raw = mail(
        "From: Alice Example <Alice@Example.COM>",
        "To: support@help.example, Bob <bob@example.com>",
        "Cc: carol@example.com",
        "Subject:   Printer   is\r\n on fire",
        "Message-ID: <m1@example.com>",
        "Date: Mon, 01 Jan 2024 10:00:00 +0200",
        "X-Custom: one",
        "X-Custom: two",
        body="The printer is on fire.\r\nPlease help.\r\n",
    )

    result = parse_message(raw, "bounce@example.com")

    assert result.problem is None
    assert result.sender == "alice@example.com"
    assert result.sender_name == "Alice Example"
    assert result.from_header is True
    assert result.to == ("support@help.example", "bob@example.com")
    assert result.cc == ("carol@example.com",)
    assert result.subject == "Printer is on fire"
    assert result.text == "The printer is on fire.\nPlease help.\n"
    assert result.attachments == ()
    assert result.message_id == "m1@example.com"
    assert result.date == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert result.headers["x-custom"] == ("one", "two")
    assert result.headers["from"] == ("Alice Example <Alice@Example.COM>",)
    assert result.content_types == frozenset({"text/plain"})


def test_html_only_message_becomes_text() -> None:
    html = (
        "<html><head><style>p { color: red }</style><script>alert('x')</script></head>"
        "<body><p>Fish &amp; chips&nbsp;&lt;today&gt;</p><div>second\n  line</div>"
        "<br><ul><li>one</li><li>two</li></ul></body></html>"
    )
    raw = mail("From: a@example.com", "Content-Type: text/html; charset=utf-8", body=html)

    result = parse_message(raw, None)

    assert result.problem is None
    assert result.text == "Fish & chips <today>\nsecond line\n\none\ntwo"
    assert "alert" not in result.text
    assert "color" not in result.text


def test_html_markup_pieces_read_as_a_browser_would() -> None:
    html = (
        "<!DOCTYPE html><!-- a <p> in a comment --><p>a < b</p><br/><STYLE>x{}</STYLE>"
        "<table><tr><td>one</td><td>two</td></tr></table><p>cut <b"
    )
    assert parse._html_to_text(html) == "a < b\n\none two\ncut <b"


def cost(raw: bytes) -> tuple[float, int, str | None]:
    """(seconds, peak bytes allocated, problem) of parsing `raw`; the best time of three."""
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        parse_message(raw, None)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        problem = parse_message(raw, None).problem
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return min(seconds), peak, problem


def test_too_many_parts_costs_what_its_bytes_cost() -> None:
    """200,000 empty parts (1.4 MB, well under the size limit): the tree the stdlib builds
    for them took seconds and hundreds of MB before the count on it said "too many". The
    count comes first now, so the message costs no more than a plain one of its size."""
    parts = mail(
        "From: a@example.com",
        'Content-Type: multipart/mixed; boundary="b"',
        body=b"--b\r\n\r\n" * 200_000 + b"--b--\r\n",
    )
    plain = mail("From: a@example.com", body=(b"x" * 74 + b"\r\n") * (len(parts) // 76))
    parts_seconds, parts_peak, problem = cost(parts)
    plain_seconds, plain_peak, _ = cost(plain)
    assert problem == "too_many_parts"
    assert parts_seconds < 2 * plain_seconds, (parts_seconds, plain_seconds)
    assert parts_peak < 2 * plain_peak, (parts_peak, plain_peak)


def test_headers_inside_a_part_are_bounded() -> None:
    """10^5 header fields inside one MIME part were all kept by the parser (the
    listener's --max-headers sees only the message's own header section)."""

    def part_with(fields: int) -> bytes:
        head = b"".join(b"X-F%d: v\r\n" % n for n in range(fields))
        return mail(
            "From: a@example.com",
            'Content-Type: multipart/mixed; boundary="b"',
            body=b"--b\r\n" + head + b"\r\nbody\r\n--b--\r\n",
        )

    many = part_with(100_000)
    seconds, peak, problem = cost(many)
    assert problem == "too_many_headers"
    plain = mail("From: a@example.com", body=(b"x" * 74 + b"\r\n") * (len(many) // 76))
    plain_seconds, plain_peak, _ = cost(plain)
    assert seconds < 2 * plain_seconds + 0.05, (seconds, plain_seconds)
    assert peak < 2 * plain_peak, (peak, plain_peak)
    assert parse_message(part_with(1000), None).problem is None
    assert parse_message(part_with(1001), None).problem == "too_many_headers"
    # `--max-part-headers 0` lifts the limit, as 0 does for the other MIME limits.
    unlimited = parse.MimeLimits(max_part_headers=0)
    assert parse_message(part_with(1001), None, unlimited).problem is None


def test_too_deep_is_found_before_the_tree_is_built() -> None:
    deep = nested_multipart(MAX_MIME_DEPTH + 5)
    assert parse.over_limits(deep, MAX_MIME_DEPTH, 0) == "too_deep"
    assert parse.over_limits(nested_multipart(MAX_MIME_DEPTH - 1), MAX_MIME_DEPTH, 0) is None
    assert parse_message(deep, None).problem == "too_deep"


def test_unclosed_tags_cost_linear_time() -> None:
    """`<x y=z ` repeated on 981-byte lines: the stdlib HTMLParser rescanned the open
    tag on every feed, and 157 KB took 157 s; every other client's 250 waited on it."""
    line = (b"<x y=z " * 141)[:981] + b"\r\n"
    raw = mail("From: a@example.com", "Content-Type: text/html", body=line * 160)
    assert len(raw) > 157_000
    started = time.perf_counter()
    result = parse_message(raw, None)
    assert time.perf_counter() - started < 0.5
    assert result.problem is None and result.text.startswith("<x y=z <x y=z")


def test_multipart_with_attachment() -> None:
    pdf = b"%PDF-1.4 fake" * 10
    body = (
        "--outer\r\n"
        'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        "--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain body\r\n"
        "--inner\r\nContent-Type: text/html\r\n\r\n<p>HTML body</p>\r\n"
        "--inner--\r\n"
        "--outer\r\n"
        "Content-Type: application/pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="=?utf-8?q?R=C3=A9sum=C3=A9.pdf?="\r\n\r\n'
        f"{base64.encodebytes(pdf).decode()}\r\n"
        "--outer\r\n"
        "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(b'png').decode()}\r\n"
        "--outer--\r\n"
    )
    raw = mail(
        "From: a@example.com",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="outer"',
        body=body,
    )

    result = parse_message(raw, None)

    assert result.problem is None
    assert result.text == "Plain body"
    assert result.attachments == (
        Attachment(name="Résumé.pdf", content_type="application/pdf", size=len(pdf)),
        Attachment(name="", content_type="image/png", size=3),
    )
    assert result.content_types == {
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
        "image/png",
    }


def test_bounce_content_types_are_listed() -> None:
    body = (
        "--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\n\r\n"
        "--r\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: me@example.com\r\nSubject: original\r\n\r\nOriginal text\r\n"
        "--r--\r\n"
    )
    raw = mail(
        "From: MAILER-DAEMON@example.com",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        body=body,
    )

    result = parse_message(raw, "")

    assert result.problem is None
    assert {"multipart/report", "message/delivery-status", "message/rfc822"} <= (
        result.content_types
    )
    assert result.text == "Delivery failed."  # the CRLF before a boundary belongs to it


def test_rfc2047_display_name_and_subject() -> None:
    raw = mail(
        "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>",
        # A multi-byte character split across two encoded words, plus a base64 word.
        "Subject: =?utf-8?b?ww==?= =?utf-8?b?qQ==?=  =?UTF-8?B?Y2Fmw6k?= ok",
    )

    result = parse_message(raw, None)

    assert result.sender_name == "Jörg Müller"
    # Whitespace between encoded words is dropped (RFC 2047 6.2); missing padding is forgiven.
    assert result.subject == "écafé ok"
    assert result.headers["subject"] == ("écafé ok",)


def test_8bit_headers_are_decoded() -> None:
    utf8 = parse_message(b"From: a@example.com\r\nSubject: caf\xc3\xa9\r\n\r\nx", None)
    latin1 = parse_message(b"From: a@example.com\r\nSubject: caf\xe9\r\n\r\nx", None)

    assert utf8.subject == "café"
    assert latin1.subject == "café"


@pytest.mark.parametrize(
    ("content_type", "payload", "expected"),
    [
        ("text/plain; charset=iso-8859-1", b"caf\xe9 cr\xe8me", "café crème"),
        ("text/plain; charset=windows-1252", b"\x93quoted\x94", "\u201cquoted\u201d"),
        ("text/plain; charset=x-made-up", b"caf\xe9", "café"),  # unknown charset -> latin-1
        ("text/plain", b"caf\xc3\xa9", "café"),  # no charset -> UTF-8
        ("text/plain", b"caf\xe9", "caf\ufffd"),  # ... with replacement, never an error
        ("text/plain; charset=us-ascii", b"caf\xc3\xa9", "café"),  # mislabelled UTF-8
    ],
)
def test_body_charsets(content_type: str, payload: bytes, expected: str) -> None:
    raw = mail("From: a@example.com", f"Content-Type: {content_type}", body=payload)

    assert parse_message(raw, None).text == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  <bob@example.com>  ", "bob@example.com"),
        ("bob@bücher.example", "bob@xn--bcher-kva.example"),
        ("Bob@BÜCHER.Example", "bob@xn--bcher-kva.example"),
        ("", None),
        ("<>", None),
        ("no-at-sign", None),
        ("two@@example.com", None),
        ("a@b@example.com", None),
        ("@example.com", None),
        ("bob@", None),
        ("bob smith@example.com", None),
        ("bob@exa mple.com", None),
        ("bob@bü..example", None),  # IDNA refuses an empty label
    ],
)
def test_normalise_address(value: str, expected: str | None) -> None:
    assert normalise_address(value) == expected


def test_idn_sender() -> None:
    raw = mail("From: Ünal <Unal@Bücher.Example>", "To: Info <info@bücher.example>")

    result = parse_message(raw, None)

    assert result.sender == "unal@xn--bcher-kva.example"
    assert result.sender_name == "Ünal"
    assert result.to == ("info@xn--bcher-kva.example",)


def test_reply_headers() -> None:
    raw = mail(
        "From: a@example.com",
        "Message-ID:\r\n <new@example.com>",
        "In-Reply-To: <parent@example.com> (Bob's message of Monday)",
        "References: <root@example.com>\r\n\t<middle@example.com> <root@example.com>",
        "References: <parent@example.com>",
    )

    result = parse_message(raw, None)

    assert result.message_id == "new@example.com"
    assert result.in_reply_to == ("parent@example.com",)
    assert result.references == ("root@example.com", "middle@example.com", "parent@example.com")


def test_unbracketed_reply_ids_are_still_read() -> None:
    raw = mail("From: a@example.com", "In-Reply-To: parent@example.com")

    assert parse_message(raw, None).in_reply_to == ("parent@example.com",)


@pytest.mark.parametrize("header", [None, "Message-ID:", "Message-ID: <>", "Message-ID:   "])
def test_missing_message_id(header: str | None) -> None:
    headers = ["From: a@example.com"] + ([header] if header else [])

    assert parse_message(mail(*headers), None).message_id is None


def test_derived_message_id_is_stable() -> None:
    raw = mail("From: a@example.com", "Subject: no id")

    first = derived_message_id(raw)

    assert first == derived_message_id(bytes(raw))
    assert first != derived_message_id(raw + b"!")
    crlf, lf = b"Subject: x\r\n\r\nbody\r\n", b"Subject: x\n\nbody\n"
    assert derived_message_id(crlf) == derived_message_id(lf)  # line ends do not count
    local, domain = first.split("@")
    assert len(local) == 32
    assert int(local, 16) >= 0
    assert domain == "derived.intake-sim.invalid"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 1 Jan 2024 10:00:00 -0500", datetime(2024, 1, 1, 15, 0, tzinfo=UTC)),
        ("1 Jan 2024 10:00:00 -0000", datetime(2024, 1, 1, 10, 0, tzinfo=UTC)),  # naive
        ("yesterday-ish", None),
        ("Mon, 1 Jan 2024 10:00:00 +9999999999", None),
    ],
)
def test_date(date: str, expected: datetime | None) -> None:
    result = parse_message(mail("From: a@example.com", f"Date: {date}"), None)

    assert result.date == expected
    if result.date is not None:
        assert result.date.tzinfo is UTC


def test_two_from_addresses_use_the_first() -> None:
    one_header = mail("From: First <first@example.com>, second@example.com")
    two_headers = mail("From: first@example.com", "From: second@example.com")

    assert parse_message(one_header, None).sender == "first@example.com"
    assert parse_message(one_header, None).sender_name == "First"
    assert parse_message(two_headers, None).sender == "first@example.com"


# --- problems ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"hello\r\n", b"", b"\xff\xfe\x00junk\x80" * 50])
def test_no_headers(raw: bytes) -> None:
    result = parse_message(raw, "someone@example.com")

    assert result.problem == "no_headers"
    assert result.headers == {}
    # The envelope sender is still reported, for the quarantine record.
    assert result.sender == "someone@example.com"


@pytest.mark.parametrize("envelope", [None, "", "<>", "not an address"])
def test_no_sender(envelope: str | None) -> None:
    result = parse_message(mail("Subject: who sent this?", "From: Undisclosed"), envelope)

    assert result.problem == "no_sender"
    assert result.sender is None
    assert result.subject == "who sent this?"


def test_envelope_sender_is_the_fallback() -> None:
    result = parse_message(mail("Subject: no from"), "<Robot@Example.com>")

    assert result.problem is None
    assert result.sender == "robot@example.com"
    assert result.from_header is False
    assert result.sender_name == ""


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/mixed",  # no boundary parameter
        'multipart/mixed; boundary="never-used"',  # boundary absent from the body
    ],
)
def test_broken_mime(content_type: str) -> None:
    raw = mail("From: a@example.com", "Subject: broken", f"Content-Type: {content_type}")

    result = parse_message(raw, None)

    assert result.problem == "broken_mime"
    assert result.sender == "a@example.com"
    assert result.subject == "broken"


def test_broken_nested_multipart() -> None:
    body = "--outer\r\nContent-Type: multipart/alternative\r\n\r\nlost\r\n--outer--\r\n"
    raw = mail("From: a@example.com", 'Content-Type: multipart/mixed; boundary="outer"', body=body)

    assert parse_message(raw, None).problem == "broken_mime"


def test_nesting_up_to_the_limit_is_fine() -> None:
    result = parse_message(nested_multipart(MAX_MIME_DEPTH), None)

    assert result.problem is None
    assert result.text == "bottom"


@pytest.mark.parametrize("depth", [MAX_MIME_DEPTH + 1, 3_000])
def test_too_deep(depth: int) -> None:
    result = parse_message(nested_multipart(depth), None)

    assert result.problem == "too_deep"
    assert result.sender == "deep@example.com"
    assert result.subject == "deep"


def test_unexpected_error_is_unparseable(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(msg: object) -> None:
        raise ValueError("simulated parser bug")

    monkeypatch.setattr(parse, "_read_body", explode)

    result = parse_message(mail("From: a@example.com", "Subject: still read"), None)

    assert result.problem == "unparseable"
    assert result.sender == "a@example.com"
    assert result.subject == "still read"


def test_unparseable_even_without_headers_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise ValueError("simulated parser bug")

    monkeypatch.setattr(parse, "_header_fields", explode)

    result = parse_message(mail("From: a@example.com"), "env@example.com")

    assert result.problem == "unparseable"
    assert result.sender == "env@example.com"


@pytest.mark.parametrize(
    ("raw", "envelope", "expected"),
    [
        (b"hello\r\n", None, "no_headers"),  # no_headers beats no_sender
        (nested_multipart(3_000).replace(b"From: deep@example.com\r\n", b""), None, "too_deep"),
        (b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nx", None, "broken_mime"),
    ],
)
def test_problem_priority(raw: bytes, envelope: str | None, expected: str) -> None:
    assert parse_message(raw, envelope).problem == expected


# --- hostile input -------------------------------------------------------------------


def _hostile() -> dict[str, bytes]:
    many_headers = "".join(f"X-Filler-{i}: value {i}\r\n" for i in range(10_000))
    return {
        "no headers": b"just a line\r\nand another\r\n",
        "binary junk": bytes(range(256))[::-1] * 40,
        "garbage encodings": (
            b"From: =?bogus-charset?q?J=F6rg?= <j@example.com>\r\n"
            b"Subject: =?utf-8?b?!!!not base64?= =?utf-8?x?y?= =?idna?q?=FF?= \xff\xfe\r\n"
            b"To: =?utf-8?q?=00=FF?= <\xe9@example.com>\r\n"
            b"Content-Type: text/plain; charset=idna\r\n"
            b"X-Part: =?utf-8?q?unterminated\r\n"
            b"Content-Disposition: inline; filename*=idna''%FF\r\n\r\n\xff\xfe body"
        ),
        "nul in rfc2231 charset": mail(
            "From: a@example.com", "Content-Type: text/plain; charset*=x\x00y'en'utf-8"
        ),
        "nul bytes": (
            b"From: a\x00b <nul@example.com>\r\nSubject: nul\x00here\r\n"
            b"X-Nul: =?utf-8?q?a=00b?=\r\n\r\nbody\x00with nul\r\n"
        ),
        "10,000 headers": mail("From: a@example.com", body="x").replace(
            b"\r\n\r\n", b"\r\n" + many_headers.encode() + b"\r\n", 1
        ),
        "3,000-deep multipart": nested_multipart(3_000),
        "long lines": mail(
            "From: a@example.com",
            "Subject: " + "long " * 2_000,
            "References: " + " ".join(f"<{i}@example.com>" for i in range(2_000)),
            body="word " * 200_000,
        ),
        "8-bit content types": mail(
            "From: a@example.com", 'Content-Type: multipart/mixed; boundary="b"', body="x"
        ).replace(
            b"\r\n\r\nx", b"\r\n\r\n--b\r\nContent-Type: image/p\xffng\r\n\r\n\xff\r\n--b--\r\n"
        ),
        "bare LF": b"From: lf@example.com\nSubject: bare\n line feeds\n\nbody\nmore\n",
        "two From": mail("From: one@example.com, two@example.com", "From: three@example.com"),
        "nested comments": mail("From: " + "(" * 5_000 + "x@example.com"),
        "bad base64 and html": mail(
            "From: a@example.com",
            "Content-Type: text/html",
            "Content-Transfer-Encoding: base64",
            body=base64.b64encode(b"<![bogus[ x ]]><p>hi &amp; bye</p>").decode() + "===!",
        ),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_never_raises(name: str) -> None:
    result = parse_message(HOSTILE[name], None)

    assert isinstance(result, InboundMail)
    # "unparseable" is the catch-all for surprises: known-hostile input must not need it.
    assert result.problem != "unparseable"
    assert_clean(result)


def test_hostile_inputs_keep_what_they_can() -> None:
    assert parse_message(HOSTILE["no headers"], None).problem == "no_headers"
    assert parse_message(HOSTILE["binary junk"], None).problem == "no_headers"
    assert parse_message(HOSTILE["3,000-deep multipart"], None).problem == "too_deep"
    assert parse_message(HOSTILE["nested comments"], None).problem == "no_sender"

    many = parse_message(HOSTILE["10,000 headers"], None)
    assert many.problem is None
    assert len(many.headers) == 10_001

    long = parse_message(HOSTILE["long lines"], None)
    assert long.subject == ("long " * 2_000).strip()
    assert len(long.references) == 2_000

    bare = parse_message(HOSTILE["bare LF"], None)
    assert (bare.sender, bare.subject, bare.text) == (
        "lf@example.com",
        "bare line feeds",
        "body\nmore\n",
    )

    nul = parse_message(HOSTILE["nul bytes"], None)
    assert (nul.sender, nul.sender_name, nul.subject) == ("nul@example.com", "ab", "nulhere")
    assert nul.text == "bodywith nul\n"

    garbage = parse_message(HOSTILE["garbage encodings"], None)
    assert garbage.problem is None
    assert garbage.sender == "j@example.com"
    assert garbage.sender_name == "Jörg"  # unknown charset read as latin-1

    # HTMLParser raises on "<![bogus["; the regex fallback still yields readable text.
    assert "hi & bye" in parse_message(HOSTILE["bad base64 and html"], None).text

    two = parse_message(HOSTILE["two From"], None)
    assert two.sender == "one@example.com"


# --- sender resolution ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "sender", "source"),
    [
        (("From: a@example.com", "Reply-To: r@example.com"), "a@example.com", "from"),
        (('From: "Name only" <>', "Sender: s@example.com"), "s@example.com", "sender"),
        (("From: Undisclosed", "Reply-To: <r@example.com>"), "r@example.com", "reply-to"),
        (("Subject: none of them",), "env@example.com", "envelope"),
    ],
)
def test_sender_is_from_then_sender_then_reply_to_then_envelope(
    headers: tuple[str, ...], sender: str, source: str
) -> None:
    result = parse_message(mail(*headers), "env@example.com")

    assert (result.sender, result.sender_source, result.problem) == (sender, source, None)
    assert result.from_header is (source == "from")


def test_a_name_without_an_address_is_kept_as_the_name() -> None:
    result = parse_message(mail('From: "Wei Zhang" <>', "Reply-To: <w@example.com>"), None)

    assert (result.sender, result.sender_name) == ("w@example.com", "Wei Zhang")


def test_words_inside_the_angle_brackets_are_not_cut_down_to_an_address() -> None:
    raw = mail('From: "your secret past" <power quadrant system@example.com>')

    assert parse_message(raw, "relay@example.net").sender == "relay@example.net"
    result = parse_message(raw, None)
    assert (result.sender, result.problem, result.sender_source) == (None, "no_sender", "")


@pytest.mark.parametrize(
    "value", ["=?utf-8?q?agent?=@example.com", "Agent <=?utf-8?b?YWdlbnQ=?=@example.com>"]
)
def test_an_encoded_word_inside_an_address_is_a_spoof(value: str) -> None:
    result = parse_message(mail(f"From: {value}"), "mallory@example.net")

    assert (result.problem, result.sender) == ("spoofed_sender", None)


def test_an_encoded_word_in_the_display_name_is_no_spoof() -> None:
    result = parse_message(mail("From: =?iso-8859-1?Q?B=FCrling,=20Ann?= <ann@example.com>"), None)

    assert (result.problem, result.sender) == (None, "ann@example.com")


# --- charsets, encoded words, folding ------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("gb2312", "关于祎的发票"),  # 祎 is GBK, not GB2312
        ("shift_jis", "①請求書"),  # ① is a Windows extension of Shift_JIS
        ("iso-2022-jp", "請求書"),
    ],
)
def test_charset_labels_are_read_as_their_supersets(charset: str, text: str) -> None:
    codec = {"gb2312": "gb18030", "shift_jis": "cp932"}.get(charset, charset)
    word = base64.b64encode(text.encode(codec)).decode()

    assert parse_message(mail(f"Subject: =?{charset}?B?{word}?="), None).subject == text


def test_shift_jis_under_an_iso_2022_jp_label_is_read() -> None:
    word = base64.b64encode("請求書".encode("cp932")).decode()

    assert parse_message(mail(f"Subject: =?iso-2022-jp?B?{word}?="), None).subject == "請求書"


def test_encoded_words_with_spaces_inside_are_decoded() -> None:
    raw = mail("Subject: =?utf-8?q?Rechnung Nr. 5?= =?utf-8?b?w6Q= ?=")

    assert parse_message(raw, None).subject == "Rechnung Nr. 5ä"


def test_a_continuation_line_without_indent_keeps_the_headers_after_it() -> None:
    raw = mail(
        "Received: from mail.example.com",
        "by mx.example.net; Thu, 6 Mar 2025 08:55:00 +0000",
        "From: Noor <noor@example.com>",
        "Subject: kept",
    )

    result = parse_message(raw, None)
    assert (result.sender, result.subject, result.problem) == ("noor@example.com", "kept", None)
    assert "by mx.example.net" in result.headers["received"][0]


def test_a_banner_line_before_the_headers_is_dropped() -> None:
    raw = b"---- Original email message ----\r\n" + mail("From: a@example.com", "Subject: s")

    assert parse_message(raw, None).subject == "s"


def test_a_header_block_ending_in_body_text_is_left_alone() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\nHello there\r\n\r\nmore\r\n"

    assert parse_message(raw, None).subject == "s"
    assert repair_folding(raw) == raw


def test_a_broken_multipart_inside_an_attached_mail_is_not_broken_mime() -> None:
    inner = "From: b@example.com\r\nContent-Type: multipart/mixed\r\n\r\n--lost\r\ncut short\r\n"
    body = (
        "--outer\r\nContent-Type: text/plain\r\n\r\nreturned\r\n"
        f"--outer\r\nContent-Type: message/rfc822\r\n\r\n{inner}--outer--\r\n"
    )
    raw = mail("From: a@example.com", 'Content-Type: multipart/mixed; boundary="outer"', body=body)

    assert parse_message(raw, None).problem is None


def test_raw_8bit_header_bytes_are_read_in_the_body_s_multibyte_charset() -> None:
    subject = "转发整体提升".encode("gb18030")
    raw = (
        b"From: a@example.com\r\nSubject: " + subject + b"\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="gb2312"\r\n\r\nbody\r\n'
    )

    assert parse_message(raw, None).subject == "转发整体提升"


def test_raw_8bit_header_bytes_without_a_multibyte_label_are_latin1() -> None:
    raw = b"From: a@example.com\r\nSubject: caf\xe9\r\n\r\nbody\r\n"

    assert parse_message(raw, None).subject == "café"
