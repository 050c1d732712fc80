"""Reading mail from disk; smtp/client.py delivers what is read here.

Used by `send`, `ingest` and `demo`. Files may be single messages (.eml or any
other name), folders of them, or mbox files. The envelope sender comes from a
`Return-Path` header when there is one (that is where delivered mail keeps
it), else the mbox "From " line, else the From header.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import IntakeSimError
from simulator.pipeline.parse import header_sender

HEADER_END = re.compile(rb"\r?\n\r?\n")
RETURN_PATH = re.compile(rb"^return-path:[ \t]*<?([^>\r\n]*)>?", re.IGNORECASE | re.MULTILINE)
FROM_HEADER = re.compile(rb"^from:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
MESSAGE_SUFFIXES = {".eml", ".msg", ".txt", ""}
MBOX_SUFFIXES = {".mbox", ".mbx"}


@dataclass(frozen=True)
class MailFile:
    source: str  # file path, or "path#N" for the Nth message of an mbox
    raw: bytes
    envelope_from: str  # "" means the null sender <>


def envelope_sender(raw: bytes, mbox_from: str | None = None) -> str:
    """Return-Path, else the mbox From_ line, else the From header; "" is the null sender."""
    head = HEADER_END.split(raw, maxsplit=1)[0]
    found = RETURN_PATH.search(head)
    if found:
        return found.group(1).decode("utf-8", "replace").strip()
    if mbox_from:
        return mbox_from.split()[0] if mbox_from.split() else ""
    # Read the way intake reads it, so that a From that is not an address
    # (<power quadrant system@example.com>) is not cut down into one here. Such a
    # From is kept as written: "" would claim the null sender, which means a bounce.
    found = FROM_HEADER.search(head)
    if found is None:
        return ""
    return header_sender(head + b"\n\n") or found.group(1).decode("utf-8", "replace").strip()


def _is_mbox(path: Path) -> bool:
    if path.suffix.lower() in MBOX_SUFFIXES:
        return True
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def _read_mbox(path: Path) -> Iterator[MailFile]:
    box = mailbox.mbox(path, create=False)
    try:
        for index, key in enumerate(box.keys(), start=1):
            message = box.get_message(key)
            raw = box.get_bytes(key)
            yield MailFile(f"{path}#{index}", raw, envelope_sender(raw, message.get_from()))
    finally:
        box.close()


def _files_in(folder: Path) -> list[Path]:
    wanted = MESSAGE_SUFFIXES | MBOX_SUFFIXES
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted and p.suffix
    )


def load_mail(paths: Iterable[str | Path]) -> list[MailFile]:
    """Every message under `paths`, in a stable order; a missing path is an IntakeSimError."""
    found: list[MailFile] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise IntakeSimError(f"no such file or folder: {path}")
        for file in _files_in(path) if path.is_dir() else [path]:
            if _is_mbox(file):
                found.extend(_read_mbox(file))
            else:
                raw = file.read_bytes()
                found.append(MailFile(str(file), raw, envelope_sender(raw)))
    return found
