"""The vocabulary every layer speaks: roles, origins, outcomes, channels, licensing
models, reason codes and the submission that enters intake.

Plain enums, one frozen dataclass, and what a plain address is made of. This
module imports nothing of ours, so any layer may use it; the store keeps these
values as strings, the reports print them, and the JSON contract is made of them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    EMPLOYEE = "employee"
    CUSTOMER = "customer"


class Origin(StrEnum):
    DIRECTORY = "directory"  # listed in the org file
    SENDER = "sender"  # auto-created from a counted email's sender
    CC = "cc"  # auto-created from a counted email's To/Cc
    SHARED = "shared"  # the one account strangers map to under `shared_user`
    NOTIFIED = "notified"  # auto-created because the system sent them an automatic update


class Outcome(StrEnum):
    CREATED_ISSUE = "created_issue"
    THREADED = "threaded"
    DUPLICATE = "duplicate"
    FILTERED = "filtered"
    QUARANTINED = "quarantined"


class Channel(StrEnum):
    """How a delivery reached intake."""

    SMTP = "smtp"  # the SMTP listener
    WEB_FORM = "web_form"  # the customer web form (the submitter logs in to a portal)
    INGEST = "ingest"  # `intake-sim ingest`, files through the pipeline without SMTP
    FETCH = "fetch"  # `intake-sim fetch`, pulled from an IMAP or POP3 mailbox


class Ack(StrEnum):
    """When the listener answers 250 (`serve --ack`); the spool (delivery/spool.py) does
    the work, the enum lives here so that the command line can name it cheaply."""

    INTAKE = "intake"  # after the pipeline's transaction has committed the delivery
    SPOOL = "spool"  # after the raw message is committed to the spool


class MailProtocol(StrEnum):
    """What `fetch` speaks to a mailbox server (smtp/fetch.py)."""

    IMAP = "imap"
    POP3 = "pop3"


class Security(StrEnum):
    """How `fetch` protects its connection to a mailbox server (smtp/fetch.py)."""

    TLS = "tls"  # implicit TLS: IMAPS (993), POP3S (995)
    STARTTLS = "starttls"  # plain connect, then STARTTLS / STLS before login
    PLAIN = "plain"  # no TLS at all: the password crosses the network readable


class LicenseModel(StrEnum):
    """The two ways the vendor licenses users."""

    SUPPORT = "support"  # per agent: only agents are paid seats
    TEAM = "team"  # per user: everyone who logs in or sends an email is a paid seat


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENT = "sent"  # the relay accepted it
    FAILED = "failed"  # refused for good, or out of attempts
    # never sent: the recipient was over the per-recipient cap, or a permanent bounce
    # said the address cannot be reached (last_error says which)
    SUPPRESSED = "suppressed"


class NotificationKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"  # to the submitter of a new issue
    UPDATE = "update"  # to the other participants when someone replies


class Reason(StrEnum):
    """Why a delivery was filtered or quarantined (the `reason` of a delivery)."""

    # filtered: noise, stored and recorded, but no issue, no user, no seat
    LOOP = "loop"
    SYSTEM_ACCOUNT = "system_account"  # from a free `[[system_accounts]]` address
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    LIST = "list"
    NO_REPLY = "no_reply"
    FLOOD = "flood"
    UNKNOWN_SENDER = "unknown_sender"
    COMPLAINT = "complaint"  # an abuse or spam feedback report (ARF, RFC 5965)
    UNVERIFIED_SENDER = "unverified_sender"  # a role under [identity] without its proof
    POSTMASTER = "postmaster"  # to postmaster@ only: kept for a person to read, never counted
    # quarantined: could not be understood; the raw bytes are kept for a look
    NO_HEADERS = "no_headers"
    NO_SENDER = "no_sender"
    BROKEN_MIME = "broken_mime"
    SPOOFED_SENDER = "spoofed_sender"  # an encoded word inside the sender's address
    TOO_DEEP = "too_deep"
    TOO_MANY_PARTS = "too_many_parts"
    TOO_MANY_HEADERS = "too_many_headers"  # a MIME part past --max-part-headers fields
    UNPARSEABLE = "unparseable"
    INTERNAL_ERROR = "internal_error"
    # created_issue: an `[Issue #N]` tag from someone who takes no part in issue N
    SUBJECT_TAG_UNTRUSTED = "subject_tag_untrusted"
    # outbox (last_error of a suppressed row): a non-ASCII address, and a relay that
    # does not offer SMTPUTF8
    SMTPUTF8_UNSUPPORTED = "smtputf8_unsupported"


class ThreadReason(StrEnum):
    """Why a delivery joined an issue (the `reason` of a threaded delivery)."""

    IN_REPLY_TO = "in_reply_to"  # In-Reply-To or References names one of the issue's mail
    SUBJECT_TAG = "subject_tag"  # an `[Issue #N]` tag from a participant of issue N


class DuplicateReason(StrEnum):
    """Why a delivery is a duplicate (the `reason` of a duplicate delivery)."""

    MESSAGE_ID = "message_id"  # its Message-ID was taken in before


# Every `reason` a delivery can carry: what the messages filter accepts.
DELIVERY_REASONS = tuple(r.value for kind in (Reason, ThreadReason, DuplicateReason) for r in kind)


class SeatReason(StrEnum):
    """Why a seat event was written (the `reason` of a ledger row)."""

    DIRECTORY_AGENT = "directory_agent"  # a directory agent's Support seat
    ROLE_CHANGED = "role_changed"  # an agent who is no longer one
    DIRECTORY_LOGIN = "directory_login"  # a directory user who logs in
    DIRECTORY_REMOVED = "directory_removed"  # gone from the org file
    NO_LOGIN = "no_login"  # a directory employee who no longer logs in
    FIRST_EMAIL = "first_email"  # a user's first counted email
    WEB_FORM = "web_form"  # a web-form submitter, who logs in to the portal
    SHARED_USER = "shared_user"  # the shared account strangers map to
    CC_CREATED = "cc_created"  # auto-created from a counted email's To/Cc
    NOTIFIED = "notified"  # auto-created to receive an automatic update


@dataclass(frozen=True)
class Submission:
    """One message handed to intake: its bytes and envelope, whatever the transport."""

    raw: bytes
    envelope_from: str | None
    recipients: list[str]
    received_at: datetime
    channel: Channel = Channel.SMTP
    # The SMTP client's IP address ("" for files, fetches and the form's own server):
    # what per-client limits count and what `[identity] trusted_relays` is checked on.
    peer: str = ""


# RFC 5322's dot-atom, ASCII only: the characters the email package's parser takes as
# an atom and hands back as they are. The listener's reading of a plain MAIL or RCPT
# address and the parser's reading of a plain From both stand on it (each held to the
# library it stands in for by a property test).
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
DOT_ATOM = rf"{ATEXT}(?:\.{ATEXT})*"


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only (any 127/8 or ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
