"""The one reader of mail sources, streamed: `send`, `ingest` and `demo` all read here.

A source is a path: a message file (any name; recognised by its content, or by
an .eml/.msg suffix), a folder (walked recursively, hidden entries skipped), an
mbox (mboxo or mboxrd, LF, CRLF or CR line ends, optionally gzip- or
xz-compressed), or a Maildir / Maildir++ (messages in cur/ and new/, each
sub-folder read as a folder of its own; flags ignored, tmp/ never read).

Messages are yielded one at a time, so a large mbox never sits in memory.
Every source is checked before the first message is yielded: a missing path,
or one that holds no mail, is one IntakeSimError naming it and why.
"""

from __future__ import annotations

import gzip
import io
import lzma
import re
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from simulator.errors import IntakeSimError
from simulator.smtp.mailfiles import MailFile, envelope_sender

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
TRUSTED_SUFFIXES = {".eml", ".msg"}  # mail by name, whatever the content (hostile samples)
SNIFF_BYTES = 16384
MAILDIR_MESSAGES = ("cur", "new")
# A header field (RFC 5322 field name, then a colon), or a folded continuation line.
HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
CONTINUATION = re.compile(rb"^[ \t]")
# At least one of these makes a header block mail rather than, say, YAML.
MAIL_FIELDS = re.compile(
    rb"^(from|to|subject|date|message-id|received|return-path|delivered-to|mime-version)"
    rb"[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)
ESCAPED_FROM = re.compile(r"^>+From ")


class NoMail(IntakeSimError):
    """A source that is missing, or that holds no message."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{why}: {path}")
        self.path = path


def read_mail(paths: Iterable[str | Path]) -> Iterator[MailFile]:
    """Every message under `paths`, in the order given and a stable order inside each.

    Checks every source first (raising NoMail), then returns a lazy iterator.
    """
    sources = [Path(given) for given in paths]
    for source in sources:
        _check(source)
    return (mail for source in sources for mail in _messages(source))


def load_mail(paths: Iterable[str | Path]) -> list[MailFile]:
    """`read_mail` as a list, for callers that need every message at hand (the demo)."""
    return list(read_mail(paths))


def _check(source: Path) -> None:
    if not source.exists():
        raise NoMail(source, "no such file or folder")
    with closing(_messages(source)) as found:
        if next(found, None) is not None:
            return
    if source.is_dir():
        raise NoMail(source, "no email in this folder (no .eml file, mbox or Maildir)")
    if source.stat().st_size == 0:
        raise NoMail(source, "empty file, no email in it")
    raise NoMail(source, "not an email, an mbox or a compressed mbox")


def _messages(source: Path) -> Iterator[MailFile]:
    if source.is_dir():
        yield from _folder(source)
    elif source.is_file():
        yield from _file(source)


def is_maildir(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in MAILDIR_MESSAGES)


def _folder(folder: Path) -> Iterator[MailFile]:
    maildir = is_maildir(folder)
    if maildir:
        # Maildir names start with the delivery time, so name order is arrival order.
        boxes = [folder / name for name in MAILDIR_MESSAGES if (folder / name).is_dir()]
        files = [p for box in boxes for p in box.iterdir() if p.is_file()]
        arrived = sorted((p for p in files if not p.name.startswith(".")), key=lambda p: p.name)
        for path in arrived:
            raw = path.read_bytes()
            yield MailFile(str(path), raw, envelope_sender(raw))
    for entry in sorted(folder.iterdir()):
        if maildir and (entry.name in {*MAILDIR_MESSAGES, "tmp"} or not entry.is_dir()):
            continue
        if entry.name.startswith(".") and not (maildir and is_maildir(entry)):
            continue  # .git and the like; a Maildir++ sub-folder is a dot-folder too
        if entry.is_dir():
            yield from _folder(entry)
        elif entry.is_file():
            yield from _file(entry)


def _file(path: Path) -> Iterator[MailFile]:
    with _open(path) as stream:
        head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if _looks_like_mbox(head):
            yield from _mbox(path, stream)
            return
        if not head:
            return  # an empty file is no message, whatever its name
        if not (path.suffix.lower() in TRUSTED_SUFFIXES or _looks_like_message(head)):
            return
        raw = stream.read()
    yield MailFile(str(path), raw, envelope_sender(raw))


@contextmanager
def _open(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, decompressed when it is gzip or xz; each opener can `peek`."""
    with path.open("rb") as probe:
        magic = probe.read(len(XZ_MAGIC))
    if magic.startswith(GZIP_MAGIC):
        with gzip.open(path, "rb") as unzipped:
            yield unzipped
    elif magic == XZ_MAGIC:
        with lzma.open(path, "rb") as unxz:
            yield unxz
    else:
        with path.open("rb") as plain:
            yield plain


def _first_lines(head: bytes, count: int) -> list[bytes]:
    return re.split(rb"\r\n|\r|\n", head, maxsplit=count)[:count]


def _looks_like_mbox(head: bytes) -> bool:
    first, second = [*_first_lines(head, 2), b"", b""][:2]
    return first.startswith(b"From ") and bool(HEADER_LINE.match(second))


def _looks_like_message(head: bytes) -> bool:
    """A header block first (fields and continuations only), naming a mail field."""
    block = re.split(rb"\r\n\r\n|\n\n|\r\r", head, maxsplit=1)[0]
    lines = re.split(rb"\r\n|\r|\n", block)
    if not lines or not HEADER_LINE.match(lines[0]):
        return False
    complete = lines if len(block) < len(head) else lines[:-1]  # the cut-off last line
    structured = all(HEADER_LINE.match(ln) or CONTINUATION.match(ln) for ln in complete)
    return structured and bool(MAIL_FIELDS.search(block))


def _mbox(path: Path, stream: io.BufferedIOBase) -> Iterator[MailFile]:
    # latin-1 maps every byte to one character and back; newline="" splits on
    # LF, CRLF and CR alike while keeping each line's own ending.
    with io.TextIOWrapper(stream, encoding="latin-1", newline="") as text:
        for index, (from_line, lines) in enumerate(split_mbox(text), start=1):
            raw = "".join(_unescape(line) for line in lines).encode("latin-1")
            yield MailFile(f"{path}#{index}", raw, envelope_sender(raw, from_line))


def split_mbox(lines: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    """(From_ line's text, the message's lines) for each message of an mbox.

    A "From " line separates messages only where a header line follows it;
    elsewhere it is body text that was never escaped. The blank line before a
    separator belongs to the mbox, not to the message.
    """
    from_line: str | None = None
    body: list[str] = []
    held: str | None = None  # a "From " line waiting for the line after it
    for line in lines:
        if held is not None:
            if HEADER_LINE.match(line.encode("latin-1")):
                if from_line is not None:
                    yield from_line, _message_lines(body)
                from_line, body = held[5:].strip(), []
            elif from_line is not None:
                body.append(held)
            held = None
        if line.startswith("From "):
            held = line
        elif from_line is not None:
            body.append(line)
    if held is not None and from_line is not None:
        body.append(held)
    if from_line is not None:
        yield from_line, _message_lines(body)


def _message_lines(body: list[str]) -> list[str]:
    if body and body[-1] in ("\n", "\r\n", "\r"):
        body = body[:-1]
    # CR-only line ends (old Macs) become LF, which every mail parser reads.
    return [line[:-1] + "\n" if line.endswith("\r") else line for line in body]


def _unescape(line: str) -> str:
    """mboxrd: one '>' comes off a quoted ">From " line (mboxo's single '>' too)."""
    return line[1:] if ESCAPED_FROM.match(line) else line
