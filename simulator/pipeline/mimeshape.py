"""How many MIME parts a message has and how deep they nest, read from its bytes.

The stdlib parser builds the whole tree before anyone can count it: a million
empty parts (7 MB) took 44 s and 584 MB to build, only to be quarantined for
having more than `--max-mime-parts`. `over_limits` reads the same structure from
the raw bytes first, the way the parser finds it (a boundary line of any open
multipart ends the parts inside it; a message/* part holds a message), and stops
at the first part past a limit, so a message over a limit costs about what its
bytes cost to read.

It only has to be right in one direction: when it says "over", the tree would be
over too. Whatever it cannot follow (a boundary it does not find, say) is left
to the parser and to the count on the tree that follows.

`plain_head` reads the message's own header section once for both this count and
the parser: when the section is plain (every line a field or the continuation of
one, one kind of line end, up to an empty line), over_limits takes its first block
from it, and parse builds the message's header fields from the same lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from functools import lru_cache

from simulator.domain import Reason

# As the stdlib's feedparser reads lines and header fields: any of CR, LF or CRLF
# ends a line; a header line is a name and a colon, a folded continuation, or an
# mbox "From " line; the first line that is none of these ends the header section.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_DASHES = re.compile(rb"^--[^\r\n]*(?:\r\n|\r|\n)?", re.MULTILINE)
# A field's first line: a name of printable characters but the colon, then the colon.
_FIELD_START = re.compile(r"[!-9;-~]+:")


@dataclass(frozen=True)
class _Block:
    end: int  # where the body after the header block starts
    boundary: bytes | None  # a multipart's boundary
    message: bool  # a message/* part: its body is a message with headers of its own
    fields: int = 0  # header fields in the block


@dataclass(frozen=True)
class Head:
    """A plain header section at the start of a message, split as the parser splits it."""

    fields: tuple[tuple[str, ...], ...]  # each field's lines, line ends taken off
    line_end: str  # "\r\n" or "\n": every line of the section ends so
    block: _Block  # what over_limits reads of it


def plain_head(raw: bytes) -> Head | None:
    """The message's header section when it is plain, else None (the parser's to read).

    Plain: it ends at an empty line, its lines all end in CRLF or all in LF (a lone CR
    ends a line for the parser but not for a split on LF), and every line is a field
    (a name and a colon) or, after the first, a continuation. The parser then keeps
    exactly these fields and reads no line of it as body; text is decoded as the
    parser decodes it (ASCII, other bytes kept as surrogates)."""
    end = head_end(raw)
    if end is None:
        return None
    text = raw[: end[0]].decode("ascii", "surrogateescape")
    crs = text.count("\r")
    line_end = "\r\n" if crs else "\n"
    if crs and not crs == text.count("\r\n") == text.count("\n"):
        return None
    fields: list[list[str]] = []
    for line in text.split(line_end):
        if line[:1] in (" ", "\t") and fields:
            fields[-1].append(line)
        elif _FIELD_START.match(line):
            fields.append([line])
        else:
            return None
    content_type = next((f for f in fields if f[0][:13].lower() == "content-type:"), None)
    # The same bytes _header_block joins: the first line after the name, then the rest.
    type_bytes = (
        "".join((content_type[0][13:], *content_type[1:])).encode("ascii", "surrogateescape")
        if content_type
        else b""
    )
    return Head(tuple(map(tuple, fields)), line_end, _block(end[1], type_bytes))


def head_end(raw: bytes) -> tuple[int, int] | None:
    """Where the first `\\r?\\n\\r?\\n` in raw starts and ends: the empty line that ends a
    header section whose lines do not end in a lone CR. Found with two plain searches,
    several times quicker than the pattern, which is tried at every byte."""
    found = [at for at in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if at >= 0]
    if not found:
        return None
    at = min(found)
    start = at - 1 if at and raw[at - 1] == 13 else at  # a CR before it belongs to it
    return start, at + (3 if raw[at + 1] == 13 else 2)


def over_limits(
    raw: bytes,
    max_depth: int,
    max_parts: int,
    max_part_headers: int = 0,
    head: Head | None = None,
) -> Reason | None:
    """TOO_DEEP, TOO_MANY_PARTS or TOO_MANY_HEADERS when the parsed tree would be past
    a limit (0: none). Each part's header fields are counted too (not the message's
    own): the parser keeps every one, so 10^5 fields in a part cost like 10^5 parts.
    `head`, when given, is `plain_head(raw)`: the message's own header section is
    then not read again."""
    # Open multiparts, innermost last: (boundary, depth of the multipart).
    open_parts: list[tuple[bytes, int]] = []
    parts = 0
    pos, depth = 0, 0
    while True:
        # A part (or the message itself) at `depth` starts at `pos` with its headers.
        parts += 1
        if max_parts and parts > max_parts:
            return Reason.TOO_MANY_PARTS
        # The message's own header section is the listener's to bound (--max-headers).
        fields_limit = max_part_headers if parts > 1 else 0
        if parts == 1 and head is not None:
            block = head.block
        else:
            block = _header_block(raw, pos, open_parts, fields_limit)
        if fields_limit and block.fields > fields_limit:
            return Reason.TOO_MANY_HEADERS
        pos = block.end
        if block.message:
            if max_depth and depth >= max_depth:
                return Reason.TOO_DEEP
            depth += 1
            continue
        if block.boundary is not None:
            open_parts.append((block.boundary, depth))
        found = _next_part(raw, pos, open_parts)
        if found is None:
            return None
        pos, depth = found
        if max_depth and depth - 1 >= max_depth:
            return Reason.TOO_DEEP


def _next_part(raw: bytes, pos: int, open_parts: list[tuple[bytes, int]]) -> tuple[int, int] | None:
    """Where the next part's headers start, and its depth; None at the end of the mail.

    A boundary line of any open multipart ends the parts inside it; its closing
    line (`--B--`) ends that multipart too.
    """
    while open_parts:
        line = _DASHES.search(raw, pos)
        if line is None:
            return None
        pos = line.end()
        found = _delimiter(line.group().rstrip(b"\r\n"), open_parts)
        if found is None:
            continue
        index, closing = found
        depth = open_parts[index][1]
        if closing:
            del open_parts[index:]
        else:
            del open_parts[index + 1 :]  # the multiparts inside it end here
            return pos, depth + 1
    return None


def _delimiter(line: bytes, open_parts: list[tuple[bytes, int]]) -> tuple[int, bool] | None:
    """(which open multipart, whether it closes) when `line` is one of their boundary lines."""
    if not line.startswith(b"--"):
        return None
    text = line[2:].rstrip(b" \t")
    for index in range(len(open_parts) - 1, -1, -1):
        boundary = open_parts[index][0]
        if text == boundary:
            return index, False
        if text == boundary + b"--":
            return index, True
    return None


def _header_block(
    raw: bytes, pos: int, open_parts: list[tuple[bytes, int]], max_fields: int = 0
) -> _Block:
    """The header section that starts at `pos`, read as the stdlib parser reads it;
    the count stops one past `max_fields` (0: no limit)."""
    content_type: list[bytes] = []  # the first Content-Type field's lines
    reading_type = False  # the field being read is that Content-Type
    fields = 0
    at = pos
    while at < len(raw):
        line = _LINE.match(raw, at)
        assert line is not None  # the pattern matches everywhere, if only the empty string
        text = line.group().rstrip(b"\r\n")
        if not text:
            at = line.end()  # the blank line that ends the headers is neither header nor body
            break
        if not _HEADER_LINE.match(text) or _delimiter(text, open_parts) is not None:
            break  # the parser reads this line again, as body or as the next boundary
        if text[:1] in (b" ", b"\t"):
            if reading_type:
                content_type.append(text)
        else:
            fields += 1
            if max_fields and fields > max_fields:
                return _Block(line.end(), None, False, fields)
            reading_type = not content_type and text[:13].lower() == b"content-type:"
            if reading_type:
                content_type.append(text[13:])
        at = line.end()
    block = _block(at, b"".join(content_type))
    return _Block(block.end, block.boundary, block.message, fields)


def _block(body: int, content_type: bytes) -> _Block:
    """What the Content-Type field says about the body, as the stdlib's Message reads it."""
    boundary, message = _declared_shape(content_type)
    return _Block(body, boundary, message)


# The same few Content-Type fields come back part after part and mail after mail: short
# ones are read once. At most TYPES_CACHED are kept, each of at most TYPE_BYTES_MAX bytes.
TYPES_CACHED = 1024
TYPE_BYTES_MAX = 1000


def _declared_shape(content_type: bytes) -> tuple[bytes | None, bool]:
    """(a multipart's boundary, whether it is a message/* part) by the Content-Type."""
    if len(content_type) <= TYPE_BYTES_MAX:
        return _cached_shape(content_type)
    return _read_shape(content_type)


@lru_cache(maxsize=TYPES_CACHED)
def _cached_shape(content_type: bytes) -> tuple[bytes | None, bool]:
    return _read_shape(content_type)


def _read_shape(content_type: bytes) -> tuple[bytes | None, bool]:
    if not content_type or not content_type.isascii():
        # None, or 8-bit bytes in it that the parser may read otherwise: its call.
        return None, False
    header = Message()
    header["Content-Type"] = content_type.decode("ascii", "surrogateescape")
    try:
        kind = header.get_content_type()
        boundary = header.get_boundary() if kind.startswith("multipart/") else None
    except Exception:  # a value the stdlib cannot read: let the parser judge it
        return None, False
    if kind.startswith("message/") and kind != "message/delivery-status":
        return None, True
    if not boundary:
        return None, False
    return boundary.encode("ascii"), False
