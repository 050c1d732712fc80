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
from datetime import UTC, datetime
from email import errors
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from types import MappingProxyType

from simulator.domain import Reason
from simulator.pipeline.mimeshape import over_limits

MAX_MIME_DEPTH = 50
MAX_MIME_PARTS = 1000

NO_HEADERS = Reason.NO_HEADERS
NO_SENDER = Reason.NO_SENDER
BROKEN_MIME = Reason.BROKEN_MIME
TOO_DEEP = Reason.TOO_DEEP
TOO_MANY_PARTS = Reason.TOO_MANY_PARTS
UNPARSEABLE = Reason.UNPARSEABLE
# Highest priority first: when several apply, the first one found here is reported.
PROBLEMS = (NO_HEADERS, TOO_DEEP, TOO_MANY_PARTS, UNPARSEABLE, BROKEN_MIME, NO_SENDER)

# Defects that mean a multipart's parts could not be found at all. A missing
# *closing* boundary is common and harmless, so it is deliberately not listed.
_BROKEN_DEFECTS = (
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
)
_BODY_TYPES = ("text/plain", "text/html")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
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


@dataclass(frozen=True)
class MimeLimits:
    """How deep and how many MIME parts are read before the mail is quarantined."""

    max_depth: int = MAX_MIME_DEPTH
    max_parts: int = MAX_MIME_PARTS


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
        # Past a MIME limit, the tree is never built: it would cost far more than the bytes.
        problem = over_limits(raw, limits.max_depth, limits.max_parts)
        if problem is None:
            return _read(raw, envelope_from, headers_only=False, problem=None, limits=limits)
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
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _head(raw: bytes) -> bytes:
    """The header section of raw mail, without the blank line that ends it."""
    return _HEADER_END.split(raw, maxsplit=1)[0]


def date_header(raw: bytes) -> datetime | None:
    """The Date header as UTC, read cheaply from the header block; None if absent or bad."""
    head = _head(raw)
    found = _DATE_FIELD.search(head)
    return _date(found.group(1).decode("ascii", "replace").strip()) if found else None


def receive_time(raw: bytes, use_date_header: bool) -> datetime:
    """When a delivery counts as received: its Date header when `use_date_header` is
    set and the header reads as a time (replaying dated mail), else now."""
    dated = date_header(raw) if use_date_header else None
    return dated or datetime.now(UTC)


def derived_message_id(raw: bytes) -> str:
    """A stable stand-in Message-ID, so resends of an id-less message still dedupe."""
    return f"{hashlib.sha256(raw).hexdigest()[:32]}@derived.intake-sim.invalid"


def normalise_address(value: str) -> str | None:
    """Trimmed, unbracketed, lower-cased address with an IDNA domain; None if implausible."""
    if not isinstance(value, str):
        return None
    address = value.strip().strip("<>").strip()
    local, _, domain = address.partition("@")
    if address.count("@") != 1 or not local or not domain or _NOT_IN_ADDRESS.search(address):
        return None
    domain = domain.lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:  # empty or over-long label: not a domain we could ever match
            return None
    return f"{local.lower()}@{domain}"


# --- reading one message -----------------------------------------------------------


@dataclass(frozen=True)
class _Body:
    text: str
    attachments: tuple[Attachment, ...]
    content_types: frozenset[str]
    too_deep: bool
    broken: bool
    too_many_parts: bool = False


@dataclass(frozen=True)
class _Part:
    message: Message
    content_type: str
    embedded: bool  # inside a message/* part: it belongs to an attached mail, not this one


def _read(
    raw: bytes,
    envelope_from: str | None,
    *,
    headers_only: bool,
    problem: str | None,
    limits: MimeLimits = DEFAULT_MIME_LIMITS,
) -> InboundMail:
    msg = BytesParser(policy=_POLICY).parsebytes(bytes(raw), headersonly=headers_only)
    fields = _header_fields(msg)
    if headers_only:
        body = _Body("", (), frozenset({_content_type(msg)}), False, False)
    else:
        body = _read_body(msg, limits)
    # Two From addresses (or two From headers) happen; the first one is the sender.
    senders = _addresses(fields.get("from", ()))
    sender_name, sender = senders[0] if senders else ("", None)
    from_header = sender is not None
    if sender is None:
        sender = normalise_address(envelope_from or "")
    found = {
        problem,
        NO_HEADERS if not fields else None,
        TOO_DEEP if body.too_deep else None,
        TOO_MANY_PARTS if body.too_many_parts else None,
        BROKEN_MIME if body.broken else None,
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
        headers=MappingProxyType(
            {
                name: tuple(_clean(_decode_words(v)) for v in values)
                for name, values in fields.items()
            }
        ),
        content_types=body.content_types,
        problem=next((p for p in PROBLEMS if p in found), None),
    )


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
    for name, value in msg.items():
        fields.setdefault(str(name).strip().lower(), []).append(_header_text(str(value)))
    return {name: tuple(values) for name, values in fields.items()}


def _header_text(value: str) -> str:
    """One raw header value as clean text: UTF-8 if it is valid, else latin-1 (never fails)."""
    if not value.isascii():
        data = _raw_bytes(value)
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = data.decode("latin-1")
    # Unfold: a folded header keeps the whitespace but loses the line break.
    return _clean(value.replace("\r", "").replace("\n", "")).strip()


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
    try:
        pairs = email.utils.getaddresses(list(values))
    except Exception:  # the stdlib address parser recurses on nested comments, among others
        return []
    found = []
    for name, address in pairs:
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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset; UTF-8 if none, latin-1 if we do not know it."""
    name = (charset or "").strip().lower()
    if name in ("", "us-ascii", "ascii"):
        # UTF-8 is a superset of ASCII, and "us-ascii" labels on UTF-8 text are common.
        name = "utf-8"
    try:
        return _clean(data.decode(name, "replace"))
    except (LookupError, ValueError):  # unknown name, or a codec (idna) refusing "replace"
        return _clean(data.decode("latin-1"))


# --- body ----------------------------------------------------------------------------


def _read_body(msg: Message, limits: MimeLimits) -> _Body:
    parts, too_deep = _walk(msg, limits.max_depth)
    broken = any(isinstance(d, _BROKEN_DEFECTS) for p in parts for d in p.message.defects)
    body_part, text = _body_text(parts)
    attachments = tuple(_attachment(p) for p in parts if p is not body_part and _is_attachment(p))
    return _Body(
        text=text,
        attachments=attachments,
        content_types=frozenset(p.content_type for p in parts),
        too_deep=too_deep,
        broken=broken,
        too_many_parts=len(parts) > limits.max_parts > 0,
    )


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
    disposition = part.message.get_content_disposition()
    return disposition == "attachment" or bool(_filename(part.message))


def _attachment(part: _Part) -> Attachment:
    return Attachment(
        name=_filename(part.message),
        content_type=part.content_type,
        size=len(_payload(part.message)),
    )


def _content_type(msg: Message) -> str:
    # The stdlib lower-cases it but leaves any raw 8-bit bytes as surrogates.
    return _header_text(msg.get_content_type()).lower()


def _filename(msg: Message) -> str:
    try:
        name = msg.get_filename() or ""
    except (LookupError, ValueError):  # an RFC 2231 charset the codec machinery rejects
        return ""
    return _fold(_decode_words(_header_text(str(name))))


def _charset(msg: Message) -> str | None:
    try:
        charset = msg.get_content_charset()
    except (LookupError, ValueError):  # an RFC 2231 charset name holding a NUL, for one
        return None
    return charset if isinstance(charset, str) else None


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
