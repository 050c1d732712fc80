"""Automatic email to customers: acknowledgements and updates, decided at intake.

Runs inside the delivery's transaction (called from `intake.process`), so an
outgoing email exists exactly when the delivery that caused it is committed:
each one becomes a row of the `outbox` table, with its bytes already built, and
the sender task (`outbox.py`) delivers it after COMMIT.

Loop protection, as mature helpdesks do it:
- only deliveries that created or joined an issue are answered; noise, our own
  mail coming back and quarantined mail never are (they never get here);
- nothing goes to our intake addresses, our own domain, no-reply or bounce
  addresses, or agents (they work in the agent UI);
- every message says it is automatic (`Auto-Submitted`, `Precedence: bulk`,
  `X-Auto-Response-Suppress: All`) and carries our loop marker, so well-behaved
  auto-responders stay quiet and our own mail is recognised if it comes back;
- a recipient gets at most `per_recipient_cap` messages per `cap_window_hours`;
  the rest are recorded as `suppressed` and not sent. That is what ends a
  ping-pong with an auto-responder that ignores all of the above.

Licensing: a person who receives automatic updates must be a user. A recipient
who is not one yet becomes one (origin `notified`) and, like every user, a Team
seat (ledger reason `notified`). Strangers are only made users when the org's
`unknown_senders` policy is `create`; otherwise they get no mail.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email._header_value_parser import SPECIALS, quote_string  # Address's own quoting
from email.contentmanager import _encode_text  # set_content's own choice of encoding
from email.generator import NLCRE  # the line ends the generator rewrites
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, EmailPolicy
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, ScalarSelect, bindparam, func, insert, select
from sqlalchemy.orm import Session

from simulator.domain import NotificationKind, Origin, OutboxStatus, Role
from simulator.licensing import seats
from simulator.org import Org, UnknownSenders
from simulator.pipeline import bounces, classify, conversations, identity, ledger, roles
from simulator.pipeline.conversations import SUBJECT_TAG
from simulator.pipeline.ledger import SeatChange
from simulator.pipeline.parse import InboundMail, mailbox_key
from simulator.pipeline.signing import MessageIdSigner
from simulator.store.models import Issue, IssueParticipant, OutboxMessage, User

log = logging.getLogger("intake_sim.notify")
SUBJECT_MAX = 200
QUOTE_MAX = 4000
REFERENCES_MAX = 10
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: none may reach
# a header, where a CR or LF would start a header of the attacker's choosing.
HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SAFE_MESSAGE_ID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,250}$")  # printable, no < or >
NEVER_NOTIFIED = classify.NO_REPLY_LOCAL_PARTS | classify.BOUNCE_SENDERS
INSERT_OUTBOX = insert(OutboxMessage.__table__)


@dataclass
class Notified:
    """What notifications one delivery caused: queued, suppressed, seat changes."""

    queued: int = 0
    suppressed: int = 0
    seat_changes: list[SeatChange] = field(default_factory=list)


@dataclass(frozen=True)
class IssueFacts:
    """What an email about an issue names of it; read as three columns, not as an
    ORM object, since intake only reads them."""

    number: int
    subject: str
    submitter_id: int


_ISSUE = Issue.__table__.c
ISSUE_FACTS = select(_ISSUE.number, _ISSUE.subject, _ISSUE.submitter_id).where(
    _ISSUE.number == bindparam("number")
)


@dataclass(frozen=True)
class Outgoing:
    kind: NotificationKind
    issue: IssueFacts
    recipient: str
    recipient_name: str
    mail: InboundMail
    reply_to_id: str | None  # the incoming Message-ID this answers, when it had a real one


def header_text(value: str, limit: int = SUBJECT_MAX) -> str:
    """Text safe for a header: controls out, whitespace folded, length bounded."""
    return " ".join(HEADER_UNSAFE.sub(" ", value).split())[:limit]


def after_intake(
    session: Session,
    org: Org,
    signer: MessageIdSigner,
    mail: InboundMail,
    sender: User,
    issue_number: int,
    created: bool,
    delivery_id: int,
    at: datetime,
    reply_to_id: str | None,
    envelope_from: str | None = None,
    peer: str = "",
) -> Notified:
    """Record participants and queue the acknowledgement or updates this delivery calls for."""
    policy = org.notify
    result = Notified()
    if not ((created and policy.acknowledge) or policy.notify_participants_on_reply):
        return result  # no acknowledgement to send, no participants to keep or update
    if created:
        # Opened by this very delivery, from this mail, by this sender: nothing to read back.
        issue = IssueFacts(issue_number, conversations.issue_subject(mail.subject), sender.id)
    else:
        # Issues are written with Core inserts and never changed through the session:
        # no flush can be owed to this read.
        found = session.connection().execute(ISSUE_FACTS, {"number": issue_number}).first()
        if found is None:
            return result
        issue = IssueFacts(*found)
    if policy.notify_participants_on_reply:
        _record_participants(session, org, mail, sender, issue_number, delivery_id, at)
    if created and policy.acknowledge:
        if not _may_acknowledge(org, mail, envelope_from):
            return result
        kind, addresses = NotificationKind.ACKNOWLEDGEMENT, [mail.sender or ""]
    elif not created and policy.notify_participants_on_reply:
        kind, addresses = NotificationKind.UPDATE, _others(session, issue, mail, sender)
    else:
        return result
    # The sender was just resolved and counted (a Team seat already): no need to look again.
    known = {mail.sender: sender} if mail.sender == sender.email else {}
    for address in addresses:
        user = known[address] if address in known else roles.find_user(session, address)
        name = _eligible(org, address, user)
        if name is None:
            continue
        outgoing = Outgoing(kind, issue, address, name, mail, reply_to_id)
        why = _why_not(session, org, address, at, kind, peer)
        suppressed = bool(why)
        # Built before anything is written, so a failure to build costs only this email.
        row = _outbox_row(org, signer, outgoing, delivery_id, at, why)
        if row is None:
            continue
        row["mailbox"], row["peer"] = mailbox_key(address), peer
        if not suppressed and address not in known:
            result.seat_changes += _as_user(session, org, address, user, at, delivery_id)
        # A Core insert: nothing reads the row back through the session, and the cap
        # query of the next email sees it at once, with no flush.
        session.connection().execute(INSERT_OUTBOX, row)
        result.suppressed += suppressed
        result.queued += not suppressed
    return result


def _record_participants(
    session: Session,
    org: Org,
    mail: InboundMail,
    sender: User,
    issue_number: int,
    delivery_id: int,
    at: datetime,
) -> None:
    """The sender and the To/Cc people of counted mail are who later updates go to."""
    copied = [a for a in dict.fromkeys((*mail.to, *mail.cc)) if may_receive(org, a)]
    # The real sender, not the account it maps to (the shared account is nobody's mailbox).
    author = mail.sender or sender.email
    for address in dict.fromkeys([author, *copied[: org.intake.cc_users_per_message]]):
        if session.get(IssueParticipant, (issue_number, address)) is None:
            session.add(
                IssueParticipant(
                    issue_number=issue_number, email=address, added_at=at, delivery_id=delivery_id
                )
            )
    session.flush()  # so the next delivery of the batch sees them (get() reads flushed rows)


def _others(session: Session, issue: IssueFacts, mail: InboundMail, sender: User) -> list[str]:
    """Participants other than this mail's author and those it already reached directly."""
    participants = session.scalars(
        select(IssueParticipant.email)
        .where(IssueParticipant.issue_number == issue.number)
        .order_by(IssueParticipant.added_at, IssueParticipant.email)
    ).all()
    submitter = session.get(User, issue.submitter_id)
    everyone = [submitter.email] if submitter else []
    reached = {mail.sender, sender.email, *mail.to, *mail.cc}
    return [a for a in dict.fromkeys([*everyone, *participants]) if a not in reached]


def may_receive(org: Org, address: str) -> bool:
    if not address or address.count("@") != 1:
        return False
    local, _, domain = address.rpartition("@")
    if org.is_intake_address(address) or address == org.notify.from_address:
        return False
    if domain == org.message_id_domain or domain.endswith("." + org.message_id_domain):
        return False
    return local not in NEVER_NOTIFIED


def _eligible(org: Org, address: str, user: User | None) -> str | None:
    """The display name to address someone by, or None when they get no automatic mail."""
    role = None if user is None else user.role
    shared = user is not None and user.origin == Origin.SHARED.value
    if not may_notify(org, address, role, shared):
        return None
    return "" if user is None else user.name


def may_notify(org: Org, address: str, role: str | None, shared: bool) -> bool:
    """Whether `address` may get automatic mail: `role` is its user's (None: no user
    yet), `shared` whether that user is the shared account. The fast traffic model
    asks the same question."""
    if not may_receive(org, address) or not _addressable(address):
        return False
    if role is None:
        stranger = roles.role_for(address, org) is Role.CUSTOMER
        # Only users get updates, and other policies make no users of strangers.
        return not stranger or org.intake.unknown_senders is UnknownSenders.CREATE
    # Agents work in the agent UI; the shared account is a placeholder, not a mailbox.
    return role != Role.AGENT.value and not shared


def _as_user(
    session: Session, org: Org, address: str, user: User | None, at: datetime, delivery_id: int
) -> list[SeatChange]:
    """Whoever receives automatic updates is a user, and under Team a paid seat."""
    if user is None:
        user = roles.create_user(session, address, "", org, Origin.NOTIFIED, at)
        ledger.new_user(session, user)
    return ledger.open_team_seat(session, user, seats.Signal.NOTIFIED, at, delivery_id)


MAX_PATH_OCTETS = 256
PLAIN_ADDRESS = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.I)


@lru_cache(maxsize=8192)
def _addressable(address: str) -> bool:
    """Whether the address stands in a To header exactly as it goes in the envelope.

    The header parser drops comments and refuses some local parts; mail whose
    header and envelope would disagree is not sent. A non-ASCII address
    (jürgen@bücher.example) is written as UTF-8 (RFC 6532) and sent with SMTPUTF8.
    An address longer than RFC 5321 allows a path (256 octets) is never sent to
    either: no relay would take it, and it would not fit the stored columns.
    The answer depends on the address alone, and the header parser is slow: it is
    remembered.
    """
    if len(address.encode("utf-8")) > MAX_PATH_OCTETS:
        return False
    if PLAIN_ADDRESS.fullmatch(address):
        return True  # dot-atoms only: the header writes it as it is (and it is the common case)
    try:
        probe = EmailMessage(policy=_policy_for(address))
        probe["To"] = _to_header(address, "")
        return str(probe["To"]) == address
    except Exception:  # ValueError, HeaderParseError and header defects alike
        return False


def _policy_for(address: str) -> EmailPolicy:
    """SMTP's policy; its UTF-8 form for a non-ASCII address, which has no ASCII spelling."""
    return SMTP if address.isascii() else SMTPUTF8


def _to_header(address: str, name: str) -> Address | str:
    # The stdlib's Address refuses a non-ASCII local part under every policy, though the
    # header parser reads one; such an address goes in bare, without a display name.
    return Address(display_name=name, addr_spec=address) if address.isascii() else address


def _may_acknowledge(org: Org, mail: InboundMail, envelope_from: str | None) -> bool:
    """`acknowledge_only`: how sure we must be that the From address wrote this mail
    before we answer it (an answer to a forged From is backscatter to a stranger)."""
    rule, sender = org.notify.acknowledge_only, mail.sender or ""
    if rule == "aligned":
        envelope = (envelope_from or "").strip("<> ").lower()
        return bool(envelope) and envelope.rpartition("@")[2] == sender.rpartition("@")[2]
    if rule == "authenticated":
        return identity.authenticated(org.identities, sender, mail.headers)
    return True


OUTBOX = OutboxMessage.__table__.c
ACKNOWLEDGED = OUTBOX.kind == NotificationKind.ACKNOWLEDGEMENT.value


def _sent_since(limit: str, *where: ColumnElement[bool]) -> ScalarSelect[int]:
    """How many outbox rows since :since were (or will be) sent, counted up to the
    bound parameter `limit` only, so a flood costs no more to check than a sender
    just at it; suppressed ones do not count."""
    found = (
        select(OUTBOX.id)
        .where(OUTBOX.status != OutboxStatus.SUPPRESSED.value)
        .where(OUTBOX.created_at > bindparam("since"), *where)
        .limit(bindparam(limit, type_=Integer))
    )
    return select(func.count()).select_from(found.subquery()).scalar_subquery()


# Every question `_why_not` asks, in one statement per kind of email: the bounce,
# the per-recipient cap and, for an acknowledgement, the two acknowledgement rates.
# A limit of 0 counts nothing, so a check that is off costs the database nothing.
_STOPS = (
    bounces.latest_permanent(bounces.BOUNCED.status),
    bounces.latest_permanent(bounces.BOUNCED.delivery_id),
    _sent_since("cap", OUTBOX.mailbox == bindparam("mailbox")),
)
UPDATE_STOPS = select(*_STOPS)
ACKNOWLEDGEMENT_STOPS = select(
    *_STOPS,
    _sent_since("per_client", OUTBOX.peer == bindparam("peer"), ACKNOWLEDGED),
    _sent_since("per_window", ACKNOWLEDGED),
)


def _why_not(
    session: Session,
    org: Org,
    address: str,
    at: datetime,
    kind: NotificationKind = NotificationKind.UPDATE,
    peer: str = "",
) -> str:
    """Why no email may go to `address` now ("" when it may): a permanent bounce
    reported for it, the per-recipient cap (its +tags counted as one mailbox), or,
    for an acknowledgement, the per-client and overall acknowledgement rates.
    Asked in one round trip; outbox rows are Core inserts, so no flush is needed."""
    policy = org.notify
    acknowledgement = kind is NotificationKind.ACKNOWLEDGEMENT
    cap = max(policy.per_recipient_cap, 0)
    per_client = max(policy.acknowledgements_per_client, 0) if peer else 0
    per_window = max(policy.acknowledgements_per_window, 0)
    asked: dict[str, Any] = {
        "address": address,
        "since": at - timedelta(hours=policy.cap_window_hours),
        "mailbox": mailbox_key(address),
        "cap": cap,
    }
    if acknowledgement:
        asked.update(peer=peer, per_client=per_client, per_window=per_window)
    statement = ACKNOWLEDGEMENT_STOPS if acknowledgement else UPDATE_STOPS
    status, bounce, *sent = session.connection().execute(statement, asked).one()
    if status is not None:
        return f"undeliverable: {status} bounce (delivery {bounce})"
    hours = f"{policy.cap_window_hours:g} h"
    if cap > 0 and sent[0] >= cap:
        return f"per-recipient cap: {cap} in {hours}"
    if not acknowledgement:
        return ""
    if per_client > 0 and sent[1] >= per_client:
        return f"acknowledgement rate: {per_client} per client in {hours}"
    if per_window > 0 and sent[2] >= per_window:
        return f"acknowledgement rate: {per_window} in all in {hours}"
    return ""


def _outbox_row(
    org: Org,
    signer: MessageIdSigner,
    outgoing: Outgoing,
    delivery_id: int,
    at: datetime,
    suppressed: str,
) -> dict[str, Any] | None:
    """The outbox row with the message's bytes; None (and a log line) if it cannot be built."""
    message_id = signer.new_id(outgoing.issue.number)
    try:
        raw, subject = message_bytes(org, outgoing, message_id, at)
    except Exception:  # a surprise in odd input must not cost the delivery that caused it
        log.exception("no %s to %s: building it failed", outgoing.kind.value, outgoing.recipient)
        return None
    return {
        "created_at": at,
        "kind": outgoing.kind.value,
        "issue_number": outgoing.issue.number,
        "delivery_id": delivery_id,
        "recipient": outgoing.recipient,
        "message_id": message_id,
        "subject": subject,
        "raw": raw,
        "status": (OutboxStatus.SUPPRESSED if suppressed else OutboxStatus.PENDING).value,
        "attempts": 0,
        "next_attempt_at": at,
        "last_error": suppressed,
        "sent_at": None,
    }


def tagged_subject(number: int, subject: str) -> str:
    """ "[Issue #N] subject", without doubling a tag the subject already has."""
    clean = header_text(subject) or "(no subject)"
    if any(int(m.group(1)) == number for m in SUBJECT_TAG.finditer(clean)):
        return clean
    return f"[Issue #{number}] {clean}"


def message_bytes(org: Org, outgoing: Outgoing, message_id: str, at: datetime) -> tuple[bytes, str]:
    """The whole outgoing message as `EmailMessage.as_bytes()` writes it, and its
    Subject as `str(message["Subject"])` reads it back.

    Each header is what the policy stores and folds (`header_store_parse`, then
    `fold_binary`), so the SMTP policy refuses CR/LF in any of them, and every
    value from incoming mail is cleaned first: nothing from a customer can add a
    header. The header parser is most of the cost of composing, so a value that
    is known to come out unchanged (`_plain_line`) is written as it is; the
    property test `tests/pipeline/test_notify_bytes.py` holds both ways to the
    stdlib's composition of the same message.
    """
    issue, mail = outgoing.issue, outgoing.mail
    acknowledgement = outgoing.kind is NotificationKind.ACKNOWLEDGEMENT
    policy = _policy_for(outgoing.recipient)
    subject = tagged_subject(issue.number, mail.subject if acknowledgement else issue.subject)
    subject_line, stored_subject = _unstructured(policy, "Subject", subject)
    lines = [
        _from_line(policy, header_text(org.name), org.notify.from_address),
        _to_line(policy, outgoing.recipient, header_text(outgoing.recipient_name)),
        subject_line,
        _date_line(policy, at),
        _message_id_line(policy, "Message-ID", message_id),
    ]
    references = [i for i in mail.references if SAFE_MESSAGE_ID.match(i)][-REFERENCES_MAX:]
    if outgoing.reply_to_id and SAFE_MESSAGE_ID.match(outgoing.reply_to_id):
        lines.append(_unstructured(policy, "In-Reply-To", f"<{outgoing.reply_to_id}>")[0])
        references.append(outgoing.reply_to_id)
    if references:
        value = " ".join(f"<{i}>" for i in dict.fromkeys(references))
        lines.append(_unstructured(policy, "References", value)[0])
    # RFC 3834: an acknowledgement answers a message; an update is generated by an event.
    automatic = "auto-replied" if acknowledgement else "auto-generated"
    lines.append(_fixed(policy, "Auto-Submitted", automatic))
    lines.append(_fixed(policy, "X-Auto-Response-Suppress", "All"))
    lines.append(_fixed(policy, "Precedence", "bulk"))
    lines.append(_fixed(policy, classify.LOOP_HEADER, org.message_id_domain))
    lines.append(text_part(policy, _body(org, outgoing)))
    return b"".join(lines), stored_subject


# Printable ASCII with no blank at either end: the header parsers read such a value
# back token for token, and folding leaves a line that fits as it is. An encoded
# word ("=?") would be decoded by the parser, so a value with one is never plain.
PLAIN_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def _plain_line(policy: EmailPolicy, name: str, value: str) -> bytes | None:
    """`name: value` as the policy would write it, when no folding or encoding can
    change it; None when the header must go through the policy."""
    if len(name) + 2 + len(value) > policy.max_line_length or "=?" in value:
        return None
    if not PLAIN_VALUE.fullmatch(value):
        return None
    return f"{name}: {value}{policy.linesep}".encode("ascii")


def _stored(policy: EmailPolicy, name: str, value: object) -> tuple[bytes, str]:
    """The policy's own way: parse the value into its header object, then fold it."""
    name, parsed = policy.header_store_parse(name, value)
    return policy.fold_binary(name, parsed), str(parsed)


def _unstructured(policy: EmailPolicy, name: str, value: str) -> tuple[bytes, str]:
    """An unstructured header (Subject, In-Reply-To, References) and its value as read back."""
    line = _plain_line(policy, name, value)
    return (line, value) if line is not None else _stored(policy, name, value)


def _to_line(policy: EmailPolicy, address: str, name: str) -> bytes:
    """`To`: `str(Address(name, address))` is "name <address>" with the name quoted
    when it has a special, or the bare address; written as it is when plain."""
    if PLAIN_ADDRESS.fullmatch(address):
        shown = quote_string(name) if not SPECIALS.isdisjoint(name) else name
        line = _plain_line(policy, "To", f"{shown} <{address}>" if name else address)
        if line is not None:
            return line
    return _stored(policy, "To", _to_header(address, name))[0]


def _message_id_line(policy: EmailPolicy, name: str, message_id: str) -> bytes:
    """Our own id, a dot-atom at a dot-atom as the signer makes it, reads back as written.

    Its line is written as it is when it fits, and also when the id is too long to
    fit even on a line of its own (ours usually are): a msg-id may not be encoded,
    and there is no blank in it to fold at, so the folder leaves it on the first
    line. Between the two it moves the id to a continuation line: the policy's way.
    """
    value = f"<{message_id}>"
    if not PLAIN_ADDRESS.fullmatch(message_id):
        return _stored(policy, name, value)[0]
    if len(value) + 1 > policy.max_line_length:
        return f"{name}: {value}{policy.linesep}".encode("ascii")
    line = _plain_line(policy, name, value)
    return line if line is not None else _stored(policy, name, value)[0]


def _date_line(policy: EmailPolicy, at: datetime) -> bytes:
    """`Date`: the header re-reads the date and writes it again, which gives back the
    same text unless the year is one a two-digit year is read as (below 100) or the
    offset is not in whole minutes."""
    value = format_datetime(at)
    offset = at.utcoffset()
    whole_minutes = offset is None or not offset % timedelta(minutes=1)
    line = _plain_line(policy, "Date", value) if at.year >= 1000 and whole_minutes else None
    return line if line is not None else _stored(policy, "Date", value)[0]


def text_part(policy: EmailPolicy, body: str) -> bytes:
    """What `set_content(body)` adds to a message, as `as_bytes()` writes it: its three
    headers, the blank line, and the payload the stdlib's own encoder makes, with
    the line ends the generator writes."""
    cte, payload = _encode_text(body, "utf-8", None, policy)
    head = _fixed(policy, "Content-Type", 'text/plain; charset="utf-8"')
    head += _fixed(policy, "Content-Transfer-Encoding", cte) + _fixed(policy, "MIME-Version", "1.0")
    text = policy.linesep.join(NLCRE.split(payload))
    return head + policy.linesep.encode("ascii") + text.encode("ascii", "surrogateescape")


# Headers that are the same on every email an org sends, written once per value.
@lru_cache(maxsize=256)
def _fixed(policy: EmailPolicy, name: str, value: str) -> bytes:
    return _stored(policy, name, value)[0]


@lru_cache(maxsize=64)
def _from_line(policy: EmailPolicy, name: str, address: str) -> bytes:
    return _stored(policy, "From", Address(display_name=name, addr_spec=address))[0]


def _body(org: Org, outgoing: Outgoing) -> str:
    issue, mail = outgoing.issue, outgoing.mail
    tag = f"[Issue #{issue.number}]"
    footer = (
        f"\n-- \n{header_text(org.name)}\n"
        "This message was sent automatically. Reply to it to add to the issue; "
        f"keep {tag} in the subject.\n"
    )
    if outgoing.kind is NotificationKind.ACKNOWLEDGEMENT:
        return (
            f'Hello,\n\nwe have received your message "{header_text(mail.subject)}" '
            f"and opened issue #{issue.number} for it.\n" + footer
        )
    quoted = "\n".join("> " + line for line in mail.text[:QUOTE_MAX].splitlines())
    return (
        f'There is a new message on issue #{issue.number} "{header_text(issue.subject)}" '
        f"from {header_text(mail.sender_name or mail.sender or '')}:\n\n{quoted}\n" + footer
    )
