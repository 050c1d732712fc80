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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from simulator.domain import Reason

# As the stdlib's feedparser reads lines and header fields: any of CR, LF or CRLF
# ends a line; a header line is a name and a colon, a folded continuation, or an
# mbox "From " line; the first line that is none of these ends the header section.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_DASHES = re.compile(rb"^--[^\r\n]*(?:\r\n|\r|\n)?", re.MULTILINE)


@dataclass(frozen=True)
class _Block:
    end: int  # where the body after the header block starts
    boundary: bytes | None  # a multipart's boundary
    message: bool  # a message/* part: its body is a message with headers of its own
    fields: int = 0  # header fields in the block


def over_limits(
    raw: bytes, max_depth: int, max_parts: int, max_part_headers: int = 0
) -> Reason | None:
    """TOO_DEEP, TOO_MANY_PARTS or TOO_MANY_HEADERS when the parsed tree would be past
    a limit (0: none). Each part's header fields are counted too (not the message's
    own): the parser keeps every one, so 10^5 fields in a part cost like 10^5 parts."""
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
    if not content_type or not content_type.isascii():
        # None, or 8-bit bytes in it that the parser may read otherwise: its call.
        return _Block(body, None, False)
    header = Message()
    header["Content-Type"] = content_type.decode("ascii", "surrogateescape")
    try:
        kind = header.get_content_type()
        boundary = header.get_boundary() if kind.startswith("multipart/") else None
    except Exception:  # a value the stdlib cannot read: let the parser judge it
        return _Block(body, None, False)
    if kind.startswith("message/") and kind != "message/delivery-status":
        return _Block(body, None, True)
    if not boundary:
        return _Block(body, None, False)
    return _Block(body, boundary.encode("ascii"), False)
