"""An SMTP client for load runs: one reused connection, reopened after any failure.

`deliver()` makes one attempt and returns the final reply of the transaction;
a refused connection, a reset or a timeout comes back as code 0, so callers
can decide to retry. Used by `crash-test` and `fuzz`.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
from dataclasses import dataclass

ACCEPTED = re.compile(r"delivery (\d+)")
SPOOLED = re.compile(r"Queued as spool \d+")
CLIENT_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Reply:
    code: int  # 0: no reply (connection refused, reset or timed out)
    text: str

    @property
    def delivery_id(self) -> int | None:
        """The delivery id of a 250 "Accepted as delivery N" reply."""
        found = ACCEPTED.search(self.text) if self.code == 250 else None
        return int(found.group(1)) if found else None

    @property
    def spooled(self) -> bool:
        """A 250 from a `serve --ack spool`: the delivery id is not known yet."""
        return self.code == 250 and SPOOLED.search(self.text) is not None


class LoadClient:
    def __init__(self, timeout: float = CLIENT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._client: smtplib.SMTP | None = None
        self._address: tuple[str, int] | None = None

    def deliver(self, address: tuple[str, int], mail_from: str, rcpt: str, raw: bytes) -> Reply:
        try:
            client = self._connect(address)
            code, text = client.mail(mail_from, ["BODY=8BITMIME"])
            if code == 250:
                code, text = client.rcpt(rcpt)
            if code == 250:
                code, text = client.data(raw)
        except smtplib.SMTPResponseException as exc:  # e.g. 421 as the greeting
            self.close()
            return Reply(exc.smtp_code, _text(exc.smtp_error))
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            return Reply(0, f"{type(exc).__name__}: {exc}")
        if code != 250:
            self._reset()
        return Reply(code, _text(text))

    def _reset(self) -> None:
        """After a refusal: RSET for the next message, or drop a connection that is gone."""
        try:
            if self._client is not None:
                self._client.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def _connect(self, address: tuple[str, int]) -> smtplib.SMTP:
        if self._client is None or self._address != address:
            self.close()
            client = smtplib.SMTP(timeout=self.timeout)
            client.connect(*address)
            self._client, self._address = client, address
            client.ehlo("load.intake-sim.localhost")
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
