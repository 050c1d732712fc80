"""One set of dated messages written out as every kind of mail source the reader takes:
a folder of .eml files, a Maildir++ (cur/, new/, a sub-folder, a tmp/ to ignore),
mbox files in three line-end styles, and compressed mbox.

The messages carry what trips naive readers: an unescaped "From " line in a
body, a ">From " line that mboxrd must escape and unescape, a folded From
header, and no Message-ID on one of them.
"""

from __future__ import annotations

import gzip
import lzma
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

CUSTOMERS = ("ann", "bo", "cy", "dee", "ed", "flo")
INTAKE = "support@acme.example"


def dated_messages(months: int = 6, year: int = 2026) -> list[bytes]:
    """One message per month from January on, each from a new customer (LF line ends)."""
    found = []
    for index in range(months):
        who = CUSTOMERS[index % len(CUSTOMERS)]
        when = datetime(year, index + 1, 10 + index, 9, 30, tzinfo=UTC)
        sender = f"{who.title()} Customer <{who}@customer.example>"
        if index == 2:
            sender = f'"{who.title()} Customer, Accounts Payable"\n <{who}@customer.example>'
        lines = [
            f"Return-Path: <{who}@customer.example>",
            f"From: {sender}",
            f"To: {INTAKE}",
            f"Subject: Request {index + 1} from {who}",
            f"Date: {format_datetime(when)}",
        ]
        if index != 4:
            lines.append(f"Message-ID: <m{index + 1}.{who}@customer.example>")
        body = [f"Hello, this is request {index + 1}.", ""]
        if index == 1:
            body += ["From the start it failed,", "and then it stopped.", ""]
        if index == 3:
            body += [">From a quoted mail:", "> it broke", ""]
        lines += ["MIME-Version: 1.0", "Content-Type: text/plain", "", *body]
        found.append(("\n".join(lines) + "\n").encode())
    return found


def write_eml_folder(folder: Path, messages: list[bytes]) -> Path:
    folder.mkdir(parents=True)
    for index, raw in enumerate(messages, start=1):
        (folder / f"{index:02}.eml").write_bytes(raw)
    return folder


def write_maildir(root: Path, messages: list[bytes]) -> Path:
    """Maildir++: the first half in the inbox (new/ and cur/), the rest in `.Archive`."""
    half = len(messages) // 2
    for box in (root, root / ".Archive"):
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True, exist_ok=True)
    (root / "tmp" / "1700000000.partial.host").write_bytes(b"From: half@written.example\n")
    (root / "dovecot-uidlist").write_bytes(b"3 V1 N1\n")
    (root / ".Archive" / "maildirfolder").write_bytes(b"")
    for index, raw in enumerate(messages):
        box = root if index < half else root / ".Archive"
        sub, flags = ("new", "") if index % 2 else ("cur", ":2,S")
        (box / sub / f"{1767225600 + index * 86400}.M{index}P1.host{flags}").write_bytes(raw)
    return root


def mbox_bytes(messages: list[bytes], line_end: str = "\n") -> bytes:
    """An mbox: mboxrd escaping of ">From " lines, and a "From " body line left as it is."""
    parts = []
    for index, raw in enumerate(messages):
        text = raw.decode()
        text = re.sub(r"^(>+From )", r">\1", text, flags=re.MULTILINE)
        sender = re.search(r"^Return-Path: <([^>]*)>", text, re.MULTILINE)
        address = sender.group(1) if sender else "MAILER-DAEMON"
        parts.append(f"From {address} Sat Jan {index + 1:2} 09:30:00 2026\n{text}\n")
    return "".join(parts).replace("\n", line_end).encode()


def write_all_sources(root: Path, messages: list[bytes]) -> dict[str, Path]:
    """Every kind of source for `messages`, by name."""
    root.mkdir(parents=True, exist_ok=True)
    sources = {
        "eml folder": write_eml_folder(root / "eml", messages),
        "maildir": write_maildir(root / "Maildir", messages),
    }
    for name, end in (("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")):
        path = root / f"box-{name}"  # no suffix: an mbox by its content
        path.write_bytes(mbox_bytes(messages, end))
        sources[f"mbox {name}"] = path
    plain = mbox_bytes(messages)
    (root / "box.mbox.gz").write_bytes(gzip.compress(plain))
    (root / "box.xz").write_bytes(lzma.compress(plain))
    sources["mbox gzip"], sources["mbox xz"] = root / "box.mbox.gz", root / "box.xz"
    return sources
