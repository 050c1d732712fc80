"""Reading mail from disk and delivering it to a listener over real SMTP.

Used by `send`, `ingest` and `demo`. Files may be single messages (.eml or any
other name), folders of them, or mbox files. The envelope sender comes from a
`Return-Path` header when there is one (that is where delivered mail keeps
it), else the mbox "From " line, else the From header.
"""

from __future__ import annotations

import mailbox
import re
import smtplib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import IntakeSimError
from simulator.pipeline.parse import normalise_address

HEADER_END = re.compile(rb"\r?\n\r?\n")
RETURN_PATH = re.compile(rb"^return-path:[ \t]*<?([^>\r\n]*)>?", re.IGNORECASE | re.MULTILINE)
FROM_HEADER = re.compile(
    rb"^from:[^\r\n]*?<?([^<>\s\"]+@[^<>\s\"]+)>?", re.IGNORECASE | re.MULTILINE
)
MESSAGE_SUFFIXES = {".eml", ".msg", ".txt", ""}
MBOX_SUFFIXES = {".mbox", ".mbx"}
SEND_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class MailFile:
    source: str  # file path, or "path#N" for the Nth message of an mbox
    raw: bytes
    envelope_from: str  # "" means the null sender <>


@dataclass(frozen=True)
class SendResult:
    source: str
    code: int
    reply: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300


def envelope_sender(raw: bytes, mbox_from: str | None = None) -> str:
    """Return-Path, else the mbox From_ line, else the From header; "" is the null sender."""
    head = HEADER_END.split(raw, maxsplit=1)[0]
    found = RETURN_PATH.search(head)
    if found:
        return found.group(1).decode("utf-8", "replace").strip()
    if mbox_from:
        return mbox_from.split()[0] if mbox_from.split() else ""
    found = FROM_HEADER.search(head)
    if found:
        return normalise_address(found.group(1).decode("utf-8", "replace")) or ""
    return ""


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


class SmtpSender:
    """One SMTP connection reused for many messages, reopened after a failure."""

    def __init__(self, host: str, port: int, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        if self._client is None:
            try:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                client.ehlo("intake-sim-sender.localhost")
            except (OSError, smtplib.SMTPException) as exc:
                raise IntakeSimError(
                    f"cannot connect to an SMTP listener at {self.host}:{self.port}: {exc}"
                ) from None
            self._client = client
        return self._client

    def send(self, mail: MailFile, recipients: list[str]) -> SendResult:
        """One SMTP transaction; the result carries the server's final reply."""
        client = self._connect()
        try:
            code, reply = client.mail(mail.envelope_from, _mail_options(client, mail))
            if code != 250:
                return self._failed(mail, code, reply)
            accepted = 0
            for recipient in recipients:
                code, reply = client.rcpt(recipient)
                accepted += code in (250, 251)
            if not accepted:
                return self._failed(mail, code, reply)
            code, reply = client.data(mail.raw)
        except smtplib.SMTPResponseException as exc:
            return self._failed(mail, exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return SendResult(mail.source, 0, f"connection failed: {exc}")
        return SendResult(mail.source, code, _text(reply))

    def _failed(self, mail: MailFile, code: int, reply: bytes | str) -> SendResult:
        self._reset()
        return SendResult(mail.source, code, _text(reply))

    def _reset(self) -> None:
        try:
            if self._client is not None:
                self._client.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (TimeoutError, smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None


def _mail_options(client: smtplib.SMTP, mail: MailFile) -> list[str]:
    options = []
    if client.has_extn("8bitmime") and any(b > 0x7F for b in mail.raw):
        options.append("BODY=8BITMIME")
    if client.has_extn("smtputf8") and not mail.envelope_from.isascii():
        options.append("SMTPUTF8")
    return options


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
