"""A message read from a source, and its envelope sender; smtp/sources.py reads them
and smtp/client.py delivers them.

The envelope sender comes from a `Return-Path` header when there is one (that
is where delivered mail keeps it), else the mbox "From " line, else the From
header. Headers are read unfolded, so a From header folded over two lines
still gives its address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.pipeline.parse import header_sender

HEADER_END = re.compile(rb"\r?\n\r?\n")
FOLD = re.compile(rb"\r?\n(?=[ \t])")
RETURN_PATH = re.compile(rb"^return-path:[ \t]*<?([^>\r\n]*)>?", re.IGNORECASE | re.MULTILINE)
FROM_HEADER = re.compile(rb"^from:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
# Google Takeout writes a message number, not an address, in its From_ lines.
TAKEOUT_FROM = re.compile(r"^[0-9]+@xxx$")


@dataclass(frozen=True)
class MailFile:
    source: str  # file path, or "path#N" for the Nth message of an mbox
    raw: bytes
    envelope_from: str  # "" means the null sender <>


def envelope_sender(raw: bytes, mbox_from: str | None = None) -> str:
    """Return-Path, else the mbox From_ line, else the From header; "" is the null sender."""
    head = FOLD.sub(b"", HEADER_END.split(raw, maxsplit=1)[0])
    found = RETURN_PATH.search(head)
    if found:
        return found.group(1).decode("utf-8", "replace").strip()
    words = (mbox_from or "").split()
    if mbox_from and not (words and TAKEOUT_FROM.match(words[0])):
        return words[0] if words else ""
    # Read the way intake reads it, so that a From that is not an address
    # (<power quadrant system@example.com>) is not cut down into one here. Such a
    # From is kept as written: "" would claim the null sender, which means a bounce.
    found = FROM_HEADER.search(head)
    if found is None:
        return ""
    return header_sender(head + b"\n\n") or found.group(1).decode("utf-8", "replace").strip()
