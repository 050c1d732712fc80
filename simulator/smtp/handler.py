"""The aiosmtpd handler: what the listener answers to MAIL, RCPT and DATA.

The handler does SMTP and nothing else. RCPT is limited to the org's intake
addresses (the listener never relays); DATA hands the bytes to the group-commit
writer and answers 250 only once the delivery is committed, 451 when storage
fails. `handle_exception` makes sure no unexpected error ever reaches the
client as aiosmtpd's bare 500. The recipient and header-section limits of
`ListenerOptions` are checked here; the connection and time limits live in
smtp/server.py.
"""

from __future__ import annotations

import logging
import re

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession

from simulator.delivery.spool import SpoolReceipt
from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.pipeline.parse import normalise_address, receive_time
from simulator.smtp import replies
from simulator.smtp.chaos import Stage
from simulator.smtp.server import IntakeSMTP, ListenerOptions

log = logging.getLogger("intake_sim.smtp")


# The first byte of a header field: a line (as bytes.splitlines cuts them, at CR, LF or
# CRLF) that is neither empty nor folded (begun with a space or a tab).
_FIELD_START = re.compile(rb"(?:^|(?<=[\r\n]))[^ \t\r\n]")


def header_section(raw: bytes) -> tuple[int, int]:
    """(number of header fields, size in bytes of the header section) of raw mail.

    The fields are counted by one scan in C: a loop over the lines in Python cost 3 us
    a message, about as much as the rest of the handler's DATA."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0, 0  # an empty header section: the rest is body
    ends = [at for at in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if at >= 0]
    head = raw[: min(ends)] if ends else raw
    return len(_FIELD_START.findall(head)), len(head)


class IntakeHandler:
    def __init__(
        self, org: Org, writer: GroupCommitWriter, options: ListenerOptions | None = None
    ) -> None:
        self.org = org
        self.writer = writer
        self.options = options or ListenerOptions()
        self.accepted = 0

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        fault = self.options.chaos.fault(Stage.MAIL)
        if fault is not None:
            return fault
        # Refused here, not at DATA: a sender we cannot store must never reach a batch.
        if address.strip("<> ") and normalise_address(address) is None:
            return replies.S553_BAD_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.S250_SENDER_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fault = self.options.chaos.fault(Stage.RCPT)
        if fault is not None:
            return fault
        limit = self.options.max_recipients
        if limit and len(envelope.rcpt_tos) >= limit:
            return replies.S452_TOO_MANY_RECIPIENTS
        if self.org.is_postmaster(address):  # kept, never counted: see intake
            envelope.rcpt_tos.append(address)
            return replies.S250_RECIPIENT_OK
        normalised = normalise_address(address)
        if normalised is None:
            return replies.S553_BAD_ADDRESS
        if not self.org.is_intake_address(normalised):
            return replies.S550_NO_SUCH_MAILBOX
        envelope.rcpt_tos.append(address)
        return replies.S250_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        refusal = self.options.chaos.fault(Stage.DATA) or self._header_refusal(raw)
        if refusal is not None:
            return refusal  # logged with the envelope by IntakeSMTP.push
        item = Submission(
            raw=raw,
            envelope_from=envelope.mail_from,
            recipients=list(envelope.rcpt_tos),
            received_at=receive_time(raw, self.options.use_date_header),
            peer=_peer_address(session.peer),
        )
        try:
            result = await self.writer.submit(item)
        except StoreUnavailable as exc:
            # The cause; the refusal line itself (peer, sender, recipient) comes from push.
            log.warning("storage unavailable, answering 451: %s", exc)
            return replies.S451_STORE_UNAVAILABLE
        self.accepted += 1
        if isinstance(result, SpoolReceipt):
            # The processor logs the delivery line; one more line here would double the cost.
            log.debug(result.log_line())
            return replies.S250_SPOOLED.format(spool_id=result.spool_id)
        log.info(result.log_line())
        if isinstance(server, IntakeSMTP):
            server.charge(result.cost_seconds)  # the cost tarpit's share of the writer
        return replies.S250_ACCEPTED.format(delivery_id=result.delivery_id)

    def _header_refusal(self, raw: bytes) -> str | None:
        fields, size = header_section(raw)
        if self.options.max_header_size and size > self.options.max_header_size:
            return replies.S552_HEADER_TOO_LARGE
        if self.options.max_headers and fields > self.options.max_headers:
            return replies.S552_TOO_MANY_HEADERS
        return None

    async def handle_exception(self, error: Exception) -> str:
        log.exception("unexpected error in an SMTP session", exc_info=error)
        return replies.S451_INTERNAL_ERROR


def _peer_address(peer: object) -> str:
    """The client's IP address from aiosmtpd's peername tuple ("" when unknown)."""
    return str(peer[0])[:64] if isinstance(peer, tuple) and peer else ""
