"""The one SMTP client: one connection reused for many messages, reopened after a failure.

`send()` makes one transaction and returns the server's final reply; a listener
that cannot be reached at all is an IntakeSimError. It is what `send`, `demo`,
`simulate` and the outbox's relay sender use. `attempt()` is its retry mode, for
callers that retry on their own (`crash-test`, `fuzz`, the outbox): it never
raises, and no connection at all comes back as code 0. `noop()` is the whole
session of the readiness check.
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from simulator.errors import IntakeSimError
from simulator.smtp import replies
from simulator.smtp.mailfiles import MailFile

SEND_TIMEOUT_SECONDS = 60
RETRY_TIMEOUT_SECONDS = 30
HELO_NAME = "intake-sim-sender.localhost"
# What `send` answers itself when a non-ASCII address meets a server without SMTPUTF8.
SMTPUTF8_UNSUPPORTED_CODE = 553
SMTPUTF8_UNSUPPORTED = "5.6.7 the server does not offer SMTPUTF8 for a non-ASCII address"


@dataclass(frozen=True)
class SendResult:
    """The server's final reply to one message (`reply` is its text, without the code)."""

    source: str
    code: int  # 0: no reply (connection refused, reset or timed out)
    reply: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def delivery_id(self) -> int | None:
        """The delivery id of a 250 "Accepted as delivery N" reply."""
        return replies.delivery_id(self.reply) if self.code == 250 else None

    @property
    def spooled(self) -> bool:
        """A 250 from a `serve --ack spool`: the delivery id is not known yet."""
        return self.code == 250 and replies.spool_id(self.reply) is not None


class _SMTP(smtplib.SMTP):
    """smtplib, except that commands go out as UTF-8 and a surrogate-escaped byte (how
    Python keeps a byte that was not UTF-8, from an mbox From line or `fuzz`) goes out
    as that byte: the server answers it, instead of the client raising mid-session."""

    def send(self, s: bytes | str) -> None:
        super().send(s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s)


class NoSession(IntakeSimError):
    """No SMTP session could be opened: no listener, or a greeting other than 220."""

    def __init__(self, host: str, port: int, cause: OSError | smtplib.SMTPException) -> None:
        super().__init__(f"cannot connect to an SMTP listener at {host}:{port}: {cause}")
        self.cause = cause

    @property
    def greeting_code(self) -> int | None:
        """The code of a greeting other than 220; None when nothing answered."""
        return self.cause.smtp_code if isinstance(self.cause, smtplib.SMTPConnectError) else None


class SmtpClient:
    """One SMTP connection to host:port, reused for many messages, reopened after a failure."""

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = SEND_TIMEOUT_SECONDS,
        source_address: str = "",
    ):
        self.host, self.port, self.timeout = host, port, timeout
        # The local address to connect from ("": the system's choice).
        self.source_address = source_address
        self.greeting = ""  # the text of the last session's 220
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()

    def _connect(self) -> smtplib.SMTP:
        if self._client is None:
            source = (self.source_address, 0) if self.source_address else None
            client = _SMTP(timeout=self.timeout, source_address=source)
            try:
                code, greeting = client.connect(self.host, self.port)
                if code != 220:
                    raise smtplib.SMTPConnectError(code, greeting)
                client.ehlo(HELO_NAME)
            except (OSError, smtplib.SMTPException) as exc:
                client.close()
                raise NoSession(self.host, self.port, exc) from None
            self._client, self.greeting = client, _text(greeting)
        return self._client

    def send(self, mail: MailFile, recipients: Sequence[str]) -> SendResult:
        """One SMTP transaction; the result carries the server's final reply."""
        client = self._connect()
        utf8 = needs_smtputf8(mail.envelope_from, recipients)
        if utf8 and not client.has_extn("smtputf8"):
            # RFC 6531: without the extension a non-ASCII address cannot be sent at all.
            return SendResult(mail.source, SMTPUTF8_UNSUPPORTED_CODE, SMTPUTF8_UNSUPPORTED)
        try:
            code, reply = client.mail(mail.envelope_from, _mail_options(client, mail, utf8))
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

    def attempt(
        self, address: tuple[str, int], mail: MailFile, recipient: str, *more: str
    ) -> SendResult:
        """Retry mode: one try at `address`, never raising; no session at all is code 0.

        A new address (a listener restarted on another port) drops the old connection.
        """
        if address != (self.host, self.port):
            self.close()
            self.host, self.port = address
        try:
            return self.send(mail, [recipient, *more])
        except NoSession as exc:
            return SendResult(mail.source, 0, str(exc))

    def noop(self) -> int:
        """The code of the reply to NOOP, in a session opened if need be (`greeting` is its 220)."""
        client = self._connect()
        try:
            code, _ = client.noop()
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise NoSession(self.host, self.port, exc) from None
        return code

    def _failed(self, mail: MailFile, code: int, reply: bytes | str) -> SendResult:
        self._reset()
        return SendResult(mail.source, code, _text(reply))

    def _reset(self) -> None:
        try:
            if self._client is not None:
                self._client.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def quit(self) -> None:
        """End the session politely (QUIT), as leaving a `with` block does."""
        if self._client is not None:
            try:
                self._client.quit()
            except (TimeoutError, smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None

    def close(self) -> None:
        """Drop the connection without a word: after a failure, or on the listener's own loop."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()


def send_all(
    host: str,
    port: int,
    mail: Iterable[MailFile],
    recipients: Sequence[str],
    progress: Callable[[SendResult], None] | None = None,
) -> list[SendResult]:
    """Every message in turn over one reused connection; `progress` sees each result."""
    results = []
    with SmtpClient(host, port) as client:
        for item in mail:
            result = client.send(item, recipients)
            if progress is not None:
                progress(result)
            results.append(result)
    return results


def needs_smtputf8(envelope_from: str, recipients: Sequence[str]) -> bool:
    """Whether an address of the transaction is non-ASCII (jürgen@bücher.example)."""
    return not envelope_from.isascii() or not all(r.isascii() for r in recipients)


def _mail_options(client: smtplib.SMTP, mail: MailFile, utf8: bool) -> list[str]:
    options = []
    if client.has_extn("8bitmime") and any(b > 0x7F for b in mail.raw):
        options.append("BODY=8BITMIME")
    if client.has_extn("smtputf8") and utf8:
        options.append("SMTPUTF8")
    return options


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
