"""Every SMTP reply line intake-sim sends, named once (RFC 5321 / RFC 3463 codes).

A name starts with S and the reply code, so `S452_TOO_MANY_RECIPIENTS` can only
ever hold a 452 line; tests/smtp/test_replies.py checks that every name matches.
The numbered 250 lines are read back (by our own clients) with `delivery_id`
and `spool_id`, next to the lines they parse.
"""

from __future__ import annotations

import functools
import re

S250_OK = "250 2.0.0 OK"
S250_ACCEPTED = "250 2.0.0 Accepted as delivery {delivery_id}"
# `serve --ack spool`: committed to the spool; the delivery follows when intake has run.
S250_SPOOLED = "250 2.0.0 Queued as spool {spool_id}"
S250_SENDER_OK = "250 2.1.0 Sender OK"
S250_RECIPIENT_OK = "250 2.1.5 Recipient OK"
# 421: the service closes the transmission channel (RFC 5321 3.8, 4.2.3).
S421_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
S421_TOO_MANY_FROM_CLIENT = "421 4.7.0 Too many connections from your address, try again later"
S421_IDLE_TIMEOUT = "421 4.4.2 Idle too long, closing connection"
S421_COMMAND_TIMEOUT = "421 4.4.2 Command line took too long, closing connection"
S421_DATA_TIMEOUT = "421 4.4.2 Message data took too long, closing connection"
S421_TOO_MANY_ERRORS = "421 4.7.0 Too many errors, closing connection"
S421_SESSION_TIMEOUT = "421 4.4.2 Session time limit reached, closing connection"
S451_STORE_UNAVAILABLE = "451 4.3.0 Storage unavailable, try again later"
S451_INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
# RFC 5321 4.5.3.1.10: too many recipients is 452, and the client sends the rest later.
S452_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
# Message data past --max-data-memory (in all, or a client's quarter of it): the
# listener holds no more, and the client sends the message again later.
S452_DATA_MEMORY = "452 4.3.1 Insufficient system storage, try again later"
S500_LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
S552_TOO_MUCH_DATA = "552 5.3.4 Message too big for this listener"
S550_NO_SUCH_MAILBOX = "550 5.1.1 No such intake address here"
S552_TOO_MANY_HEADERS = "552 5.3.4 Too many header fields"
S552_HEADER_TOO_LARGE = "552 5.3.4 Header section too large"
S553_BAD_ADDRESS = "553 5.1.3 Recipient address not understood"
# A sender that is not a plausible UTF-8 address; the null sender <> is always accepted.
S553_BAD_SENDER = "553 5.1.7 Sender address not understood"

# Fault injection (`serve --chaos`): the code is chosen by the operator.
CHAOS = "{code} {enhanced} Injected fault at {stage} (chaos)"


@functools.cache
def _numbered(line: str, field: str) -> re.Pattern[str]:
    """A pattern for one of our numbered lines, its leading reply code optional.

    smtplib hands a client the reply without its code, so both forms are read.
    """
    code, text = line.split(" ", 1)
    before, after = text.split("{" + field + "}")
    return re.compile(rf"(?:{code} )?{re.escape(before)}(\d+){re.escape(after)}")


def _number(line: str, field: str, reply: str) -> int | None:
    found = _numbered(line, field).fullmatch(reply.strip())
    return int(found.group(1)) if found else None


def delivery_id(reply: str) -> int | None:
    """N of an "Accepted as delivery N" reply (S250_ACCEPTED); None for any other reply."""
    return _number(S250_ACCEPTED, "delivery_id", reply)


def spool_id(reply: str) -> int | None:
    """N of a "Queued as spool N" reply (S250_SPOOLED); None for any other reply."""
    return _number(S250_SPOOLED, "spool_id", reply)
