"""Turn the raw bytes of one SMTP DATA into an `InboundMail`.

Mail comes from strangers, so this module is total: `parse_message` never raises.
Whatever it cannot understand becomes a `problem` value, and the pipeline
quarantines the delivery (raw bytes kept) instead of losing it or crashing the
listener. It is also pure: no I/O, no database, no clock.

We parse with a compat32-based policy and decode headers ourselves. The modern
`email.policy.default` parses header values lazily and can raise on malformed
input long after parsing "succeeded"; here every string is decoded once, up front,
and what comes out is plain, NUL-free, valid UTF-8.
"""

import base64
import binascii
import email.utils
import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import errors
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from functools import lru_cache
from types import MappingProxyType

from simulator.defaults import MAX_MIME_DEPTH, MAX_MIME_PARTS, MAX_PART_HEADERS
from simulator.domain import DOT_ATOM, Reason
from simulator.pipeline.mimeshape import Head, head_end, over_limits, plain_head

NO_HEADERS = Reason.NO_HEADERS
NO_SENDER = Reason.NO_SENDER
BROKEN_MIME = Reason.BROKEN_MIME
TOO_DEEP = Reason.TOO_DEEP
TOO_MANY_PARTS = Reason.TOO_MANY_PARTS
UNPARSEABLE = Reason.UNPARSEABLE
SPOOFED_SENDER = Reason.SPOOFED_SENDER
# Highest priority first: when several apply, the first one found here is reported.
PROBLEMS = (
    NO_HEADERS,
    TOO_DEEP,
    TOO_MANY_PARTS,
    Reason.TOO_MANY_HEADERS,
    UNPARSEABLE,
    BROKEN_MIME,
    SPOOFED_SENDER,
    NO_SENDER,
)
# Headers that may name the sender, in the order they are tried. Reply-To is asked
# only because From was unusable: it is where the sender wants answers to go.
SENDER_HEADERS = ("from", "sender", "reply-to")
# Labels that mailers put on text in a superset charset; decoding with the label
# alone turns the extra characters into mojibake.
CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
}

# Defects that mean a multipart's parts could not be found at all. A missing
# *closing* boundary is common and harmless, so it is deliberately not listed.
_BROKEN_DEFECTS = (
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
)
_BODY_TYPES = ("text/plain", "text/html")
# Lenient: some mailers leave spaces inside an encoded word's text; they are kept.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
# An angle address with words before the address inside the brackets
# (<power quadrant system@example.com>): not an address, and never cut down to one.
_WORDS_IN_ANGLE = re.compile(r"<[^<>@]*\S\s+[^<>\s]*@[^<>]*>")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
# Lone surrogates are bytes that were not UTF-8, kept by the listener's surrogateescape.
_NOT_IN_ADDRESS = re.compile("[\\s<>\x00-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class Attachment:
    name: str  # decoded filename, "" if none
    content_type: str  # lower-case, e.g. "application/pdf"
    size: int  # decoded payload size in bytes


@dataclass(frozen=True)
class InboundMail:
    sender: str | None
    sender_name: str
    from_header: bool
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    attachments: tuple[Attachment, ...]
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    # A read-only mapping cannot be hashed; leave it out so the mail itself can be.
    headers: Mapping[str, tuple[str, ...]] = field(hash=False)
    content_types: frozenset[str]
    problem: str | None
    # Where the sender came from: "from", "sender", "reply-to", "envelope", or "" for none.
    sender_source: str = ""
    # What a delivery report says: (Final-Recipient address, Status code) per recipient,
    # and the Message-IDs of the mail it returns (an attached original or its headers).
    failed_recipients: tuple[tuple[str, str], ...] = ()
    returned_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MimeLimits:
    """How deep, how many MIME parts and how many header fields in one part are read
    before the mail is quarantined (0: no limit)."""

    max_depth: int = MAX_MIME_DEPTH
    max_parts: int = MAX_MIME_PARTS
    max_part_headers: int = MAX_PART_HEADERS


DEFAULT_MIME_LIMITS = MimeLimits()


class _RawHeaderPolicy(Compat32):
    """compat32, except that header values always come back as the parsed string.

    Plain compat32 wraps values holding undecodable 8-bit bytes in `email.header.Header`
    objects; we decode every value ourselves, so we want the raw text every time.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawHeaderPolicy()


def parse_message(
    raw: bytes, envelope_from: str | None, limits: MimeLimits = DEFAULT_MIME_LIMITS
) -> InboundMail:
    """Parse one delivery; never raises, reports trouble in `problem`."""
    try:
        head = plain_head(raw)
    except Exception:  # the contract is "never raises": the general reading then decides
        head = None
    return _parse_message(raw, envelope_from, limits, head)


def general_parse(
    raw: bytes, envelope_from: str | None, limits: MimeLimits = DEFAULT_MIME_LIMITS
) -> InboundMail:
    """`parse_message` without the reading of a plain header section: every message
    through the stdlib parser (tests hold the two equal)."""
    return _parse_message(raw, envelope_from, limits, None)


def _parse_message(
    raw: bytes, envelope_from: str | None, limits: MimeLimits, head: Head | None
) -> InboundMail:
    try:
        # Past a MIME limit, the tree is never built: it would cost far more than the bytes.
        problem = over_limits(
            raw, limits.max_depth, limits.max_parts, limits.max_part_headers, head
        )
        if problem is None:
            return _read(
                raw, envelope_from, headers_only=False, problem=None, limits=limits, head=head
            )
    except RecursionError:
        # The stdlib parser recurses once per nesting level; very deep MIME ends here.
        problem = TOO_DEEP
    except Exception:  # the contract is "never raises": a surprise quarantines, not crashes
        problem = UNPARSEABLE
    try:
        # The body is what broke, so salvage sender, subject and ids from the headers alone.
        # Only the header section is handed over: the body is not read again.
        return _read(_head(raw), envelope_from, headers_only=True, problem=problem)
    except Exception:
        return _unread(envelope_from, problem)


_DATE_FIELD = re.compile(rb"^date:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_RECEIVED_FIELD = re.compile(rb"^received:((?:[^\r\n]|\r?\n[ \t])*)", re.IGNORECASE | re.MULTILINE)


def _head(raw: bytes) -> bytes:
    """The header section of raw mail, without the blank line that ends it."""
    end = head_end(raw)
    return raw if end is None else raw[: end[0]]


def date_header(raw: bytes) -> datetime | None:
    """The Date header as UTC, read cheaply from the header block; None if absent or bad."""
    head = _head(raw)
    found = _DATE_FIELD.search(head)
    return _date(found.group(1).decode("ascii", "replace").strip()) if found else None


def delivered_time(raw: bytes) -> datetime | None:
    """When the mailbox got a message: the date of its topmost Received header (the
    last hop's), else its Date header; None when neither reads as a time."""
    found = _RECEIVED_FIELD.search(_head(raw))
    if found and b";" in found.group(1):
        stamp = found.group(1).rsplit(b";", 1)[1]
        dated = _date(re.sub(rb"\s+", b" ", stamp).decode("ascii", "replace").strip())
        if dated is not None:
            return dated
    return date_header(raw)


def receive_time(raw: bytes, use_date_header: bool) -> datetime:
    """When a delivery counts as received: its Date header when `use_date_header` is
    set and the header reads as a time (replaying dated mail), else now."""
    dated = date_header(raw) if use_date_header else None
    return dated or datetime.now(UTC)


def derived_message_id(raw: bytes) -> str:
    """A stable stand-in Message-ID, so resends of an id-less message still dedupe.

    Line ends do not count: the same message read from an LF file, a CRLF mbox
    or an SMTP session (always CRLF) gets the same id."""
    canonical = raw.replace(b"\r\n", b"\n")
    return f"{hashlib.sha256(canonical).hexdigest()[:32]}@derived.intake-sim.invalid"


def normalise_address(value: str) -> str | None:
    """Trimmed, unbracketed, lower-cased address with an IDNA domain; None if implausible."""
    if not isinstance(value, str):
        return None
    # The intake address comes in every message's To, a sender in each of theirs: short
    # values are remembered (at most ADDRESSES_CACHED, each of ADDRESS_TEXT_MAX at most).
    if len(value) <= ADDRESS_TEXT_MAX:
        return _cached_address(value)
    return _normalised(value)


ADDRESSES_CACHED = 4096
ADDRESS_TEXT_MAX = 320


@lru_cache(maxsize=ADDRESSES_CACHED)
def _cached_address(value: str) -> str | None:
    return _normalised(value)


def _normalised(value: str) -> str | None:
    address = value.strip().strip("<>").strip()
    local, _, domain = address.partition("@")
    if address.count("@") != 1 or not local or not domain or _NOT_IN_ADDRESS.search(address):
        return None
    # `ava@acme.example.` names the same mailbox (a fully qualified domain): one user.
    domain = domain.lower().rstrip(".")
    if not domain:
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:  # empty or over-long label: not a domain we could ever match
            return None
    return f"{local.lower()}@{domain}"


def mailbox_key(address: str) -> str:
    """The mailbox a normalised address delivers to, for counting against a limit.

    `wendy+1@x` and `wendy+2@x` both reach `wendy@x`, so a tag must not buy a fresh
    allowance. Only limits use this: the users themselves stay as written.
    """
    local, at, domain = address.partition("@")
    return f"{local.partition('+')[0] or local}{at}{domain}"


# --- reading one message -----------------------------------------------------------


@dataclass(frozen=True)
class _Body:
    text: str
    attachments: tuple[Attachment, ...]
    content_types: frozenset[str]
    too_deep: bool
    broken: bool
    too_many_parts: bool = False
    failed_recipients: tuple[tuple[str, str], ...] = ()
    returned_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Part:
    message: Message
    content_type: str
    embedded: bool  # inside a message/* part: it belongs to an attached mail, not this one


def _parse(raw: bytes, headers_only: bool) -> Message:
    """The stdlib's parse of `raw`, the body of a message of one part handed over whole.

    The parser reads a body line by line, 2 µs a line, whatever the line: 2 MB of
    3-byte lines took a second. For a message that is neither multipart nor
    message/*, all it does with them is join them again into the payload. So the
    header section (to its first empty line) is parsed alone and the rest of the
    bytes appended to what the parser took for body, decoded as the parser decodes
    them: the same message (tests/pipeline/test_parse_single_part.py holds the two
    equal, and fails should the stdlib's private `_payload` change). Where the
    header section ended before that empty line (at a line that is not a header),
    the parser's payload already begins there.
    """
    parser = BytesParser(policy=_POLICY)
    end = None if headers_only else head_end(raw)
    if end is None:
        return parser.parsebytes(raw, headersonly=headers_only)
    msg = parser.parsebytes(raw[: end[1]])
    if msg.get_content_maintype() in ("multipart", "message"):
        return parser.parsebytes(raw)
    rest = raw[end[1] :].decode("ascii", "surrogateescape")
    # The payload as the parser left it: get_payload() would decode its stray bytes.
    msg.set_payload(msg._payload + rest)  # type: ignore[attr-defined]
    return msg


def _single_part(raw: bytes, head: Head) -> Message | None:
    """The message `_parse` gives for raw mail whose header section is plain, built
    from that section's fields as the parser builds them; None for a multipart or a
    message/* (the parser reads their bodies as parts).

    A plain section is read by the parser field by field, nothing else in it (no
    defect, no line taken for body), and its empty line ends it: the fields are
    the policy's reading of their lines, and the rest of the bytes are the payload
    (tests/pipeline/test_parse_fast.py holds it equal to the stdlib's parse).
    """
    msg = Message(policy=_POLICY)
    line_end = head.line_end
    for lines in head.fields:
        # The last line's end is stripped from the value: it may as well not be given.
        source = [*(line + line_end for line in lines[:-1]), lines[-1]]
        msg.set_raw(*_POLICY.header_source_parse(source))
    if _types(msg)[0].split("/")[0] in ("multipart", "message"):  # get_content_maintype
        return None
    msg.set_payload(raw[head.block.end :].decode("ascii", "surrogateescape"))
    return msg


def _read(
    raw: bytes,
    envelope_from: str | None,
    *,
    headers_only: bool,
    problem: str | None,
    limits: MimeLimits = DEFAULT_MIME_LIMITS,
    head: Head | None = None,
) -> InboundMail:
    # A plain header section has no line to re-fold: repair_folding would give raw back.
    msg = _single_part(raw, head) if head is not None else None
    if msg is None:
        msg = _parse(raw if head is not None else repair_folding(raw), headers_only)
    fields = _header_fields(msg)
    if headers_only:
        body = _Body("", (), frozenset({_content_type(msg)}), False, False)
    else:
        body = _read_body(msg, limits)
    sender_name, sender, source, spoofed = _resolve_sender(fields, envelope_from)
    from_header = source == "from"
    found = {
        problem,
        NO_HEADERS if not fields else None,
        TOO_DEEP if body.too_deep else None,
        TOO_MANY_PARTS if body.too_many_parts else None,
        BROKEN_MIME if body.broken else None,
        SPOOFED_SENDER if spoofed else None,
        NO_SENDER if sender is None else None,
    }
    return InboundMail(
        sender=sender,
        sender_name=sender_name,
        from_header=from_header,
        to=tuple(address for _, address in _addresses(fields.get("to", ()))),
        cc=tuple(address for _, address in _addresses(fields.get("cc", ()))),
        subject=_fold(_decode_words(_first(fields.get("subject", ()), ""))),
        text=body.text,
        attachments=body.attachments,
        message_id=_message_id(_first(fields.get("message-id", ()), "")),
        in_reply_to=_message_ids(fields.get("in-reply-to", ())),
        references=_message_ids(fields.get("references", ())),
        date=_date(_first(fields.get("date", ()), "")),
        # The values are clean already (_header_text), and _decode_words cleans what it decodes.
        headers=MappingProxyType(
            {name: tuple(map(_decode_words, values)) for name, values in fields.items()}
        ),
        content_types=body.content_types,
        problem=next((p for p in PROBLEMS if p in found), None),
        sender_source=source if sender is not None else "",
        failed_recipients=body.failed_recipients,
        returned_ids=body.returned_ids,
    )


def header_sender(raw: bytes) -> str | None:
    """The From header's address as intake reads it; None when it has no usable one."""
    try:
        msg = BytesParser(policy=_POLICY).parsebytes(repair_folding(raw), headersonly=True)
        _, address, _, spoofed = _resolve_sender(_header_fields(msg), None, ("from",))
    except Exception:  # never raises, like parse_message
        return None
    return None if spoofed else address


# The header fields that order intake: who sent a message, its id, and what it answers.
_ORDERING_FIELD = re.compile(
    rb"^(from|sender|reply-to|message-id|in-reply-to|references)[ \t]*:"
    rb"((?:[^\r\n]|\r?\n[ \t])*)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Ordering:
    """What decides the order a message must be run through intake in."""

    sender: str | None  # as intake resolves it: From, Sender, Reply-To, then the envelope
    message_id: str | None
    answers: tuple[str, ...]  # the ids it replies to, nearest first


def ordering(raw: bytes, envelope_from: str | None) -> Ordering:
    """The sender and ids intake will read, from a scan of the header block alone (a
    third of the cost of parsing it), for the spool to order messages by before
    intake runs. The same rules resolve and normalise them; only the reading is
    lighter: no refolding of broken headers and no charset guesses for 8-bit bytes,
    where intake may read such a message differently. Never raises: at worst, the
    envelope sender and no ids."""
    try:
        return _ordering(raw, envelope_from)
    except Exception:  # the listener's append calls this: a surprise must not fail a batch
        return Ordering(normalise_address(envelope_from or ""), None, ())


def _ordering(raw: bytes, envelope_from: str | None) -> Ordering:
    fields: dict[str, list[str]] = {}
    for name, value in _ORDERING_FIELD.findall(_head(raw)):
        text = _header_text(value.decode("utf-8", "surrogateescape"))
        fields.setdefault(name.decode("ascii").lower(), []).append(text)
    found = {name: tuple(values) for name, values in fields.items()}
    _, sender, _, _ = _resolve_sender(found, envelope_from)  # a spoofed one is None
    # Nearest first, as threading asks them: the direct parent, then References backwards.
    answers = (
        *_message_ids(found.get("in-reply-to", ())),
        *reversed(_message_ids(found.get("references", ()))),
    )
    return Ordering(
        sender=sender,
        message_id=_message_id(_first(found.get("message-id", ()), "")),
        answers=tuple(dict.fromkeys(answers)),
    )


def _resolve_sender(
    fields: Mapping[str, tuple[str, ...]],
    envelope_from: str | None,
    headers: tuple[str, ...] = SENDER_HEADERS,
) -> tuple[str, str | None, str, bool]:
    """(display name, address, where it came from, spoofed) by From, Sender, Reply-To,
    then the envelope.

    Two From addresses (or two From headers) happen; the first one is the sender.
    An encoded word inside an address is a spoof attempt (it would decode into
    someone else's address in a display): the mail is flagged, never resolved.
    """
    name = ""
    for header in headers:
        values = fields.get(header, ())
        if any(_spoofed(v) for v in values):
            return "", None, header, True
        found = [] if any(_WORDS_IN_ANGLE.search(v) for v in values) else _addresses(values)
        if found:
            return found[0][0] or name, found[0][1], header, False
        # A From with a name and no usable address still names the person.
        name = name or _first([n for n, _ in _names(values)], "")
    return name, normalise_address(envelope_from or ""), "envelope", False


def _spoofed(value: str) -> bool:
    """An RFC 2047 word inside an address part rather than in the display name."""
    return any(
        "=?" in address.partition("@")[0] for _, address in _raw_pairs([value]) if "@" in address
    )


def _raw_pairs(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(name, address) pairs of address header values, as the stdlib splits them.

    The answer depends on the text alone, the same From is read twice per message
    (the spoof check, then the sender) and the same To and From come back in mail
    after mail: short values are remembered. Long ones are not, so the cache never
    holds more than `PAIRS_CACHED * PAIRS_TEXT_MAX` characters.
    """
    text = tuple(values)
    if len(text) == 1:
        plain = _plain_pair(text[0])
        if plain is not None:
            return plain
    if sum(len(v) for v in text) <= PAIRS_TEXT_MAX:
        return _cached_pairs(text)
    return _split_addresses(text)


PAIRS_CACHED = 4096
PAIRS_TEXT_MAX = 1000
# One address in its plainest forms, `a@b.c`, `<a@b.c>` or `Some Name <a@b.c>`: ASCII
# atoms, single dots and single spaces, no quotes, comments or groups. The stdlib splits
# such a value into exactly the name and the address as written (a property test holds
# _plain_pair to getaddresses); anything else is left to getaddresses.
_PLAIN_ADDRESS = re.compile(
    rf"(?:((?:{DOT_ATOM} )*{DOT_ATOM}) ?<|(<))?({DOT_ATOM}@{DOT_ATOM})(?(1)>|(?(2)>))"
)


def _plain_pair(value: str) -> tuple[tuple[str, str]] | None:
    found = _PLAIN_ADDRESS.fullmatch(value)
    return ((found.group(1) or "", found.group(3)),) if found else None


@lru_cache(maxsize=PAIRS_CACHED)
def _cached_pairs(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return _split_addresses(values)


def _split_addresses(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(email.utils.getaddresses(list(values)))
    except Exception:  # the stdlib address parser recurses on nested comments, among others
        return ()


def _names(values: Iterable[str]) -> list[tuple[str, str]]:
    return [(_fold(_decode_words(n)), a) for n, a in _raw_pairs(values) if n]


def repair_folding(raw: bytes) -> bytes:
    """Re-fold a header block whose continuation lines lost their leading whitespace.

    Such a line would end the headers early, and every header after it (often
    Subject and From) would be read as body. Only when a real header follows the
    stray line is it taken for a continuation; a stray line before the first
    header (a forwarder's banner) is dropped.
    """
    end = head_end(raw)
    head, rest = (raw[: end[0]], raw[end[0] :]) if end else (raw, b"")
    lines = head.split(b"\n")
    stray = [i for i, line in enumerate(lines) if not _is_header_line(line)]
    if not stray or not any(_HEADER_LINE.match(line) for line in lines[stray[0] + 1 :]):
        return raw
    fixed: list[bytes] = []
    for line in lines:
        if _is_header_line(line):
            fixed.append(line)
        elif fixed:
            fixed.append(b" " + line)
    return b"\n".join(fixed) + rest


def _is_header_line(line: bytes) -> bool:
    return bool(_HEADER_LINE.match(line)) or line[:1] in (b" ", b"\t") or line in (b"", b"\r")


def _unread(envelope_from: str | None, problem: str) -> InboundMail:
    """The last resort when not even the headers could be read."""
    return InboundMail(
        sender=normalise_address(envelope_from or ""),
        sender_name="",
        from_header=False,
        to=(),
        cc=(),
        subject="",
        text="",
        attachments=(),
        message_id=None,
        in_reply_to=(),
        references=(),
        date=None,
        headers=MappingProxyType({}),
        content_types=frozenset(),
        problem=problem,
    )


def _first(values: Iterable[str], default: str) -> str:
    return next(iter(values), default)


# --- headers -------------------------------------------------------------------------


def _header_fields(msg: Message) -> dict[str, tuple[str, ...]]:
    """Lower-case name -> every value, as unfolded text not yet RFC 2047 decoded.

    Address lists must be split before encoded words are decoded: a decoded display
    name may contain the commas and angle brackets that separate addresses.
    """
    fields: dict[str, list[str]] = {}
    items = [(str(name), str(value)) for name, value in msg.items()]
    # The charset guesses matter only to a value with 8-bit bytes: most mail has none.
    plain = all(value.isascii() for _, value in items)
    guesses = () if plain else _declared_multibyte(msg)
    for name, value in items:
        text = _header_text(value, guesses)
        fields.setdefault(name.strip().lower(), []).append(text)
    return {name: tuple(values) for name, values in fields.items()}


_DECLARED_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.:-]+)", re.IGNORECASE)
_SINGLE_BYTE = re.compile(r"^(iso-8859-|windows-125|cp125|us-ascii|ascii|utf-8|koi8)")


def _declared_multibyte(msg: Message) -> tuple[str, ...]:
    """The multi-byte charsets the message declares for its parts (supersets applied).

    Raw 8-bit bytes in a header carry no label; mailers that send them (GB or
    Shift_JIS text in a Subject) nearly always use the charset of their body.
    """
    found = []
    for part in _shallow_parts(msg):
        for label in _DECLARED_CHARSET.findall(str(part.get("content-type", ""))):
            name = CHARSET_SUPERSETS.get(label.lower(), label.lower())
            if name == "iso-2022-jp":
                name = "cp932"  # raw 8-bit bytes under this label are Shift_JIS
            if not _SINGLE_BYTE.match(name):
                found.append(name)
    return tuple(dict.fromkeys(found))


CHARSET_SCAN_PARTS = 50


def _shallow_parts(msg: Message) -> list[Message]:
    """The first parts, breadth first (an attached original included): enough to find
    the body's charset, and cheap however hostile the nesting."""
    found = [msg]
    for part in found:
        if len(found) >= CHARSET_SCAN_PARTS:
            break
        found.extend(_child_messages(part))
    return found[:CHARSET_SCAN_PARTS]


def _child_messages(part: Message) -> list[Message]:
    payload = part.get_payload() if part.is_multipart() else None
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _header_text(value: str, guesses: tuple[str, ...] = ()) -> str:
    """One raw header value as clean text: UTF-8 if it is valid, else the first of the
    message's declared multi-byte charsets that reads it, else latin-1 (never fails)."""
    if not value.isascii():
        data = _raw_bytes(value)
        value = _first_reading(data, ("utf-8", *guesses)) or data.decode("latin-1")
    # Unfold: a folded header keeps the whitespace but loses the line break.
    return _clean(value.replace("\r", "").replace("\n", "")).strip()


def _first_reading(data: bytes, charsets: Iterable[str]) -> str | None:
    for charset in charsets:
        try:
            return data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _raw_bytes(value: str) -> bytes:
    """Undo the parser's surrogateescape, giving back the 8-bit bytes that were sent."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate the parser did not make; keep the rest
        return value.encode("utf-8", "replace")


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; anything undecodable stays as written."""
    if "=?" not in text:
        return text
    # Adjacent words in one charset are joined as bytes before decoding, because
    # some mailers split a multi-byte character across two encoded words.
    pieces: list[str | tuple[str, list[bytes]]] = []
    end = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[end : match.start()]
        after_word = bool(pieces) and isinstance(pieces[-1], tuple)
        # RFC 2047 6.2: whitespace between two encoded words is not part of the text.
        if gap and not (after_word and gap.isspace()):
            pieces.append(gap)
        end = match.end()
        word = _word_bytes(match)
        last = pieces[-1] if pieces else None
        if word is None:
            pieces.append(match.group(0))
        elif isinstance(last, tuple) and last[0] == word[0]:
            last[1].append(word[1])
        else:
            pieces.append((word[0], [word[1]]))
    pieces.append(text[end:])
    return _clean(
        "".join(p if isinstance(p, str) else _decode_bytes(b"".join(p[1]), p[0]) for p in pieces)
    )


def _word_bytes(match: re.Match[str]) -> tuple[str, bytes] | None:
    charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 lets a language follow: utf-8*en
    payload = match.group(3)
    try:
        if match.group(2) in "bB":
            # Senders often drop the padding; restore it rather than reject the word.
            return charset, base64.b64decode(payload + "=" * (-len(payload) % 4))
        return charset, binascii.a2b_qp(payload.encode("utf-8"), header=True)
    except ValueError:  # binascii.Error is a ValueError
        return None


def _addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(decoded display name, normalised address) for each plausible address, in order."""
    found = []
    for name, address in _raw_pairs(values):
        normalised = normalise_address(address)
        if normalised is not None:
            found.append((_fold(_decode_words(name)), normalised))
    return found


def _message_id(value: str) -> str | None:
    match = _ANGLE_ID.search(value)
    ident = "".join((match.group(1) if match else value).split()).strip("<>")
    return ident or None


def _message_ids(values: Iterable[str]) -> tuple[str, ...]:
    """Bracketed ids in header order, de-duplicated; bare tokens with an @ if none are bracketed."""
    text = " ".join(values)
    found = _ANGLE_ID.findall(text) or [token for token in text.split() if "@" in token]
    ids = ("".join(ident.split()).strip("<>") for ident in found)
    return tuple(dict.fromkeys(ident for ident in ids if ident))


def _date(value: str) -> datetime | None:
    plain = _PLAIN_DATE.fullmatch(value)
    return _plain_date(plain) if plain else _general_date(value)


# The Date most mailers write, `Sat, 28 Nov 2026 10:00:00 +0000`: single spaces, a
# four-digit year not below 1000 (the stdlib makes 0099 into 1999), a numeric zone.
# The stdlib reads such a value into exactly these numbers, and the same constructors
# then judge them (tests/pipeline/test_parse_fast.py holds the two readings equal).
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PLAIN_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (" + "|".join(_MONTHS) + r") "
    r"([1-9]\d{3}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)


def _plain_date(found: re.Match[str]) -> datetime | None:
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = found.groups()
    offset = (int(zone_hours) * 3600 + int(zone_minutes) * 60) * (-1 if sign == "-" else 1)
    try:
        zone = timezone(timedelta(seconds=offset))
        stamp = datetime(
            int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute), int(second),
            tzinfo=zone,
        )  # fmt: skip
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError):  # a day, hour or zone out of range: no date
        return None


def _general_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        # "-0000" means "zone unknown" and parses naive; UTC is the only honest reading.
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _fold(text: str) -> str:
    return " ".join(text.split())


def _clean(text: str) -> str:
    """No NULs and no lone surrogates, so every string stores as valid UTF-8."""
    text = text.replace("\x00", "")
    if text.isascii():  # constant time, and ASCII always encodes
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset; UTF-8 if none, latin-1 if we do not know it."""
    name = (charset or "").strip().lower() or "utf-8"
    # UTF-8 is a superset of ASCII, and "us-ascii" labels on UTF-8 text are common.
    name = CHARSET_SUPERSETS.get(name, name)
    if name == "iso-2022-jp":
        return _clean(_decode_iso2022jp(data))
    try:
        return _clean(data.decode(name, "replace"))
    except (LookupError, ValueError):  # unknown name, or a codec (idna) refusing "replace"
        return _clean(data.decode("latin-1"))


def _decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP as labelled, its extended form next, and Shift_JIS last: Japanese
    mailers often send Shift_JIS (raw 8-bit) under the ISO-2022-JP label."""
    for codec in ("iso-2022-jp", "iso-2022-jp-2", "iso-2022-jp-ext"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("cp932", "replace")


# --- body ----------------------------------------------------------------------------


def _read_body(msg: Message, limits: MimeLimits) -> _Body:
    parts, too_deep = _walk(msg, limits.max_depth)
    # An attached mail is the sender's business: a bounce often returns its original
    # cut short, and that must not make the report itself unreadable.
    broken = any(
        isinstance(d, _BROKEN_DEFECTS) for p in parts if not p.embedded for d in p.message.defects
    )
    body_part, text = _body_text(parts)
    attachments = tuple(_attachment(p) for p in parts if p is not body_part and _is_attachment(p))
    return _Body(
        text=text,
        attachments=attachments,
        content_types=frozenset(p.content_type for p in parts),
        too_deep=too_deep,
        broken=broken,
        too_many_parts=len(parts) > limits.max_parts > 0,
        failed_recipients=_failed_recipients(parts),
        returned_ids=_returned_ids(parts),
    )


def _failed_recipients(parts: list[_Part]) -> tuple[tuple[str, str], ...]:
    """(address, status) for each recipient block of the message/delivery-status parts.

    Its payload is a list of header blocks: the first is about the reporting MTA, each
    later one about a recipient (RFC 3464). Blocks without a usable address are skipped.
    """
    found: list[tuple[str, str]] = []
    for part in parts:
        if part.content_type != "message/delivery-status" or part.embedded:
            continue
        blocks = part.message.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, Message):
                continue
            recipient = _header_text(str(block.get("final-recipient", "")))
            address = normalise_address(recipient.rpartition(";")[2])
            status = _header_text(str(block.get("status", ""))).split(" ")[0]
            if address is not None:
                found.append((address, status[:16]))
    return tuple(dict.fromkeys(found))


_RETURNED_ID = re.compile(r"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


def _returned_ids(parts: list[_Part]) -> tuple[str, ...]:
    """Message-IDs of the mail a report returns: an attached message/rfc822, or the
    text/rfc822-headers part that MTAs send when they return the headers only."""
    found: list[str] = []
    for part in parts:
        if part.embedded:
            continue
        if part.content_type == "message/rfc822":
            for child in _children(part.message, part.content_type):
                found.extend(_message_ids([_header_text(str(child.get("message-id", "")))]))
        elif part.content_type == "text/rfc822-headers":
            text = _decode_bytes(_payload(part.message), "utf-8")
            found.extend(_message_ids(_RETURNED_ID.findall(text)))
    return tuple(dict.fromkeys(found))


def _walk(root: Message, max_depth: int) -> tuple[list[_Part], bool]:
    """Every MIME part in document order, and whether nesting went past max_depth (0: no cap).

    An explicit stack rather than `Message.walk`, which recurses: hostile nesting
    then costs list entries, not Python stack frames.
    """
    parts: list[_Part] = []
    too_deep = False
    stack: list[tuple[Message, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, embedded = stack.pop()
        content_type = _content_type(node)
        parts.append(_Part(node, content_type, embedded))
        children = _children(node, content_type)
        if children and max_depth and depth >= max_depth:
            too_deep = True
            continue
        inner = embedded or content_type.startswith("message/")
        # Reversed, so that popping visits children in document order.
        stack.extend((child, depth + 1, inner) for child in reversed(children))
    return parts, too_deep


def _children(node: Message, content_type: str) -> list[Message]:
    # A delivery-status "payload" is a list of header blocks, not MIME parts; walking
    # into it would invent text/plain parts that are not in the message.
    # Ask is_multipart() first: get_payload() on a leaf decodes it with the declared
    # charset and raises for some (charset=idna), though we only want the list.
    if content_type == "message/delivery-status" or not node.is_multipart():
        return []
    payload = node.get_payload()
    return [child for child in payload if isinstance(child, Message)]


def _body_text(parts: list[_Part]) -> tuple[_Part | None, str]:
    """The first non-blank text/plain part, else the first non-blank HTML part as text."""
    candidates = [
        p
        for p in parts
        if p.content_type in _BODY_TYPES and not p.embedded and not _marked_attachment(p)
    ]
    for wanted in _BODY_TYPES:
        for part in candidates:
            if part.content_type != wanted:
                continue
            text = _decode_bytes(_payload(part.message), _charset(part.message))
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if wanted == "text/html":
                text = _html_to_text(text)
            # Some senders ship an empty text/plain next to the real HTML body.
            if text.strip():
                return part, text
    return None, ""


def _is_attachment(part: _Part) -> bool:
    if part.embedded or part.content_type.startswith("multipart/"):
        return False
    return _marked_attachment(part) or not part.content_type.startswith("text/")


def _marked_attachment(part: _Part) -> bool:
    if not _may_name_a_file(part.message):
        return False  # no Content-Disposition at all, nor a filename
    disposition = part.message.get_content_disposition()
    return disposition == "attachment" or bool(_filename(part.message))


def _may_name_a_file(msg: Message) -> bool:
    # With neither a Content-Disposition nor a name parameter, get_filename finds no name.
    return "content-disposition" in msg or "name" in str(msg.get("content-type", "")).lower()


def _attachment(part: _Part) -> Attachment:
    return Attachment(
        name=_filename(part.message),
        content_type=part.content_type,
        size=len(_payload(part.message)),
    )


def _content_type(msg: Message) -> str:
    return _types(msg)[1]


def _types(msg: Message) -> tuple[str, str]:
    """The content type as the stdlib reads it, and as we report it."""
    value = msg.get("content-type")
    if isinstance(value, str) and len(value) <= FIELD_TEXT_MAX:
        return _declared_type(value)
    return _read_types(msg)


def _read_types(msg: Message) -> tuple[str, str]:
    # The stdlib lower-cases it but leaves any raw 8-bit bytes as surrogates.
    kind = msg.get_content_type()
    return kind, _header_text(kind).lower()


def _charset(msg: Message) -> str | None:
    value = msg.get("content-type")
    if isinstance(value, str) and len(value) <= FIELD_TEXT_MAX:
        return _declared_charset(value)
    return _message_charset(msg)


# A part's type and charset are read from its first Content-Type field alone, and the
# same few fields ("text/plain; charset=utf-8") come back in mail after mail: short ones
# are read once, on a message holding that field only. At most FIELDS_CACHED of them
# are kept, each of at most FIELD_TEXT_MAX characters.
FIELDS_CACHED = 1024
FIELD_TEXT_MAX = 1000


def _field_alone(name: str, value: str) -> Message:
    msg = Message(policy=_POLICY)
    msg.set_raw(name, value)
    return msg


@lru_cache(maxsize=FIELDS_CACHED)
def _declared_type(value: str) -> tuple[str, str]:
    return _read_types(_field_alone("Content-Type", value))


@lru_cache(maxsize=FIELDS_CACHED)
def _declared_charset(value: str) -> str | None:
    return _message_charset(_field_alone("Content-Type", value))


def _message_charset(msg: Message) -> str | None:
    try:
        charset = msg.get_content_charset()
    except (LookupError, ValueError):  # an RFC 2231 charset name holding a NUL, for one
        return None
    return charset if isinstance(charset, str) else None


def _filename(msg: Message) -> str:
    if not _may_name_a_file(msg):
        return ""
    try:
        name = msg.get_filename() or ""
    except (LookupError, ValueError):  # an RFC 2231 charset the codec machinery rejects
        return ""
    return _fold(_decode_words(_header_text(str(name))))


def _payload(msg: Message) -> bytes:
    """The decoded payload; for an attached mail (message/*), the mail as it would be saved."""
    if msg.is_multipart():
        try:
            return b"".join(child.as_bytes() for child in _children(msg, _content_type(msg)))
        except Exception:  # re-serialising hostile mail can fail; only the size is lost
            return b""
    payload = msg.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


# --- HTML ----------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tr", "ul",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_SKIPPED_TAGS = frozenset({"script", "style"})
_TAG_NAME = re.compile(r"</?([a-zA-Z][^\s/>]*)")


class _TextOut:
    """The text of an HTML body as the scanner finds its pieces."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.line_started = False

    def tag(self, tag: str, *, opening: bool) -> None:
        if tag == "br":
            self._newline()
        elif tag in _BLOCK_TAGS and self.line_started:
            # "</p><div>" is one line break, not two: blocks only end a started line.
            self._newline()
        elif tag in _CELL_TAGS:
            self.chunks.append(" ")

    def _newline(self) -> None:
        self.chunks.append("\n")
        self.line_started = False

    def data(self, data: str) -> None:
        if not data:
            return
        data = html.unescape(data)
        # Line breaks in HTML source are just spaces; only tags break lines.
        self.chunks.append(" ".join(data.split("\n")))
        self.line_started = self.line_started or not data.isspace()


def _html_to_text(markup: str) -> str:
    """Readable text from HTML: script/style dropped, entities unescaped, blocks on new lines.

    One pass over the markup, each character looked at a bounded number of times,
    so its cost is linear in its size whatever a stranger writes. The stdlib's
    HTMLParser rescans an unclosed tag on every feed and took minutes on a few
    hundred KB of `<x y=z ` (issue 18).
    """
    out = _TextOut()
    lower = markup.lower()
    pos, end = 0, len(markup)
    while pos < end:
        lt = markup.find("<", pos)
        if lt < 0:
            out.data(markup[pos:])
            break
        out.data(markup[pos:lt])
        pos = _markup_at(markup, lower, lt, out)
    lines = [_fold(line) for line in "".join(out.chunks).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _markup_at(markup: str, lower: str, lt: int, out: _TextOut) -> int:
    """Read the markup that starts with the "<" at `lt`; return where the text goes on."""
    if markup.startswith("<!--", lt):
        return _past(markup, "-->", lt + 4)
    if markup.startswith(("<!", "<?"), lt):  # a doctype or processing instruction
        return _past(markup, ">", lt + 2)
    name = _TAG_NAME.match(markup, lt)
    if name is None:  # "a < b": the "<" is text
        out.data("<")
        return lt + 1
    gt = markup.find(">", name.end())
    if gt < 0:  # never closed: the rest is text, as a browser shows it
        out.data(markup[lt:])
        return len(markup)
    tag, opening = name.group(1).lower(), markup[lt + 1] != "/"
    out.tag(tag, opening=opening)
    if opening and tag in _SKIPPED_TAGS:
        # Script and style hold no text; their end tag is read like any other.
        close = lower.find("</" + tag, gt + 1)
        return len(markup) if close < 0 else close
    return gt + 1


def _past(markup: str, closing: str, start: int) -> int:
    found = markup.find(closing, start)
    return len(markup) if found < 0 else found + len(closing)
