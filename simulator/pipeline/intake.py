"""The intake pipeline: one function every transport calls.

`process()` turns the bytes of one delivery into stored facts inside the
caller's transaction: the delivery row (raw bytes included), its outcome and
reason, the issue it created or joined, the users it created and the seat
events it caused. It never commits: `serve`, `ingest` and `demo` decide when.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, select
from sqlalchemy.orm import Session

from simulator.domain import (
    Channel,
    DuplicateReason,
    LicenseModel,
    Origin,
    Outcome,
    Reason,
    Role,
)
from simulator.licensing import seats
from simulator.org import Org, UnknownSenders
from simulator.pipeline import (
    bounces,
    classify,
    conversations,
    identity,
    ledger,
    notify,
    roles,
    signing,
)
from simulator.pipeline.ledger import SeatChange
from simulator.pipeline.parse import (
    DEFAULT_MIME_LIMITS,
    InboundMail,
    MimeLimits,
    derived_message_id,
    parse_message,
)
from simulator.store.models import Delivery, KnownMessage, User
from simulator.store.prepared import Prepared

MESSAGE_ID_MAX = 255
NO_REPLY = classify.NO_REPLY_LOCAL_PARTS
# Problems that still leave a mail readable enough to be told apart as machine mail.
MACHINE_READABLE = frozenset({Reason.NO_SENDER, Reason.BROKEN_MIME})
# Core inserts: nothing reads these rows back through the session's identity map.
INSERT_DELIVERY = Prepared(insert(Delivery.__table__))
INSERT_KNOWN_MESSAGE = Prepared(insert(KnownMessage.__table__))
_DELIVERY = Delivery.__table__.c
# The same two inserts as one statement, where a WITH may write (PostgreSQL): a round
# trip less for every new Message-ID. The known id takes the delivery's stored
# Message-ID and issue, the values INSERT_KNOWN_MESSAGE is given.
ONE_STATEMENT_STORE = frozenset({"postgresql"})
_DELIVERY_KEYS = [c.key for c in _DELIVERY if not c.primary_key]
_STORED_ROW = (_DELIVERY.id, _DELIVERY.message_id, _DELIVERY.issue_number)


def _value(key: str) -> Any:
    return bindparam(key, type_=_DELIVERY[key].type)


def _with_known(stored: Any) -> Any:
    """The known id of the delivery `stored` (a WITH) writes; (delivery id, issue)."""
    known = KnownMessage.__table__
    return (
        insert(known)
        .from_select(
            ["message_id", "delivery_id", "issue_number"],
            select(stored.c.message_id, stored.c.id, stored.c.issue_number),
        )
        .returning(known.c.delivery_id, known.c.issue_number)
    )


_STORED = (
    insert(Delivery.__table__)
    .values({k: _value(k) for k in _DELIVERY_KEYS})
    .returning(*_STORED_ROW)
    .cte("stored")
)
INSERT_DELIVERY_AND_KNOWN = Prepared(_with_known(_STORED))
# And for mail that opens an issue, the issue first (conversations.OPENED_ISSUE).
_OPENED = conversations.OPENED_ISSUE.cte("opened")
_STORED_IN_OPENED = (
    insert(Delivery.__table__)
    .from_select(
        _DELIVERY_KEYS,
        select(*(_OPENED.c.number if k == "issue_number" else _value(k) for k in _DELIVERY_KEYS)),
    )
    .returning(*_STORED_ROW)
    .cte("stored")
)
INSERT_ISSUE_DELIVERY_AND_KNOWN = Prepared(_with_known(_STORED_IN_OPENED))
# Earlier deliveries of a sender inside the flood window, counted up to the limit only:
# a sender far over it costs no more to check than one just at it.
FLOOD_WINDOW = select(func.count()).select_from(
    select(_DELIVERY.id)
    .where(
        _DELIVERY.sender == bindparam("sender"),
        _DELIVERY.received_at > bindparam("since"),
        _DELIVERY.received_at <= bindparam("at"),
        _DELIVERY.outcome != Outcome.DUPLICATE.value,
    )
    .limit(bindparam("limit", type_=Integer))
    .subquery()
)
# The two reads every delivery starts with, in one round trip: whether its Message-ID
# is known (and its issue), and the flood window's count for its sender. Nothing is
# written between this read and the flood check, so the count is the same.
_LOOK = (conversations.KNOWN, conversations.KNOWN_ISSUE_COLUMN, FLOOD_WINDOW.scalar_subquery())
FIRST_LOOK = Prepared(select(*_LOOK))
# The same with the sender's user row and Team seat state, which roles and the ledger
# would read next (one statement less, a round trip less on PostgreSQL), for a sender
# the transaction does not know yet. Nothing writes users or seat events before
# they are used.
_SENDER_FROM, _SENDER_COLUMNS = roles.sender_row(bindparam("sender"))
FIRST_LOOK_WITH_SENDER = Prepared(
    select(
        *_LOOK,
        *_SENDER_COLUMNS,
        *ledger.state_columns(roles.USERS.c.id, LicenseModel.TEAM),
    ).select_from(_SENDER_FROM)
)


@dataclass(frozen=True)
class FirstLook:
    known: bool  # the Message-ID is known
    known_issue: int | None  # the issue it belongs to
    earlier: int  # the sender's earlier deliveries in the flood window, up to the limit
    sender: roles.UserRead = roles.UNREAD  # the sender's user row, when it was read
    team_seat: ledger.SeatState | None = None  # and its Team seat's state

    def seat_read(self, user: User) -> ledger.SeatState | None:
        """The Team seat state read for `user`, when `user` is the sender's row read."""
        found = self.sender
        return (
            self.team_seat
            if found not in (None, roles.UNREAD) and found[roles.USER_ID] == user.id
            else None
        )


@dataclass
class DeliveryResult:
    """What intake did with one delivery; enough for the SMTP reply and the log line."""

    delivery_id: int
    outcome: Outcome
    reason: str | None
    sender: str | None
    role: str | None = None
    issue: int | None = None
    new_user: bool = False
    seat_changes: list[SeatChange] = field(default_factory=list)
    notifications: int = 0  # automatic emails queued in the outbox by this delivery
    # Seconds of the writer it took: its intake's CPU (pipeline.batch), plus its share
    # of its batch's commit (delivery.writer). What the cost tarpit charges its client.
    cost_seconds: float = 0.0

    def log_line(self) -> str:
        seats = " ".join(str(c) for c in self.seat_changes) or "none"
        issue = f"#{self.issue}" if self.issue is not None else "-"
        outcome = self.outcome.value + (f"/{self.reason}" if self.reason else "")
        line = (
            f"delivery={self.delivery_id} outcome={outcome} issue={issue} "
            f"sender={self.sender or '-'} role={self.role or '-'} seats={seats}"
        )
        return line + (f" queued={self.notifications}" if self.notifications else "")


def effective_message_id(mail: InboundMail, raw: bytes) -> str:
    """The dedupe key: the Message-ID, or a hash of the bytes when there is none.

    Over-long ids are hashed so they fit the unique key on every backend.
    """
    if not mail.message_id:
        return derived_message_id(raw)
    if len(mail.message_id) > MESSAGE_ID_MAX:
        digest = hashlib.sha256(mail.message_id.encode("utf-8", "replace")).hexdigest()
        return f"{digest[:32]}@long.intake-sim.invalid"
    return mail.message_id


def process(
    session: Session,
    org: Org,
    raw: bytes,
    envelope_from: str | None,
    recipients: list[str],
    received_at: datetime,
    channel: Channel = Channel.SMTP,
    mime_limits: MimeLimits = DEFAULT_MIME_LIMITS,
    peer: str = "",
) -> DeliveryResult:
    """Run one delivery through parse, dedupe, noise, roles, threading and seats.

    The outcome is decided first and the delivery row written once, with it;
    the rows that point at the delivery (known id, seat events, outbox) follow.
    """
    mail = roles.as_people(parse_message(raw, envelope_from, mime_limits), org)
    address = intake_address(mail, recipients, channel, org)
    org = org.for_address(address)  # that mailbox's own intake policy, if it has one
    row = _delivery_row(mail, raw, envelope_from, recipients, received_at, channel)
    row.update(intake_address=address, peer=peer, sender_trust=identity.NOT_ASKED)
    result = DeliveryResult(0, Outcome.FILTERED, None, mail.sender)

    look = _first_look(session, org, mail, row["message_id"], received_at)
    if look.known:
        # Attribute the resend to its sender when known; it changes nothing else.
        user = roles.find_user(session, mail.sender, look.sender) if mail.sender else None
        if user is not None:
            result.role = user.role
        _store(
            session,
            row,
            result,
            Outcome.DUPLICATE,
            DuplicateReason.MESSAGE_ID,
            look.known_issue,
            user,
        )
        return result

    # Mail to postmaster alone (RFC 5321 makes us accept it) is for whoever runs the
    # mailbox, not a support request: kept with its bytes, no user, issue, seat or ack.
    if not org.is_intake_address(address) and org.is_postmaster(address):
        _store_new(session, row, result, Outcome.FILTERED, Reason.POSTMASTER)
        return result
    # Machine mail is recognised on whatever could be read before anything is
    # quarantined: a bounce from "MAILER-DAEMON" with no domain, or one whose
    # returned original was cut short, is still a bounce.
    noise = classify.noise_reason(mail, envelope_from, org.message_id_domain)
    problem = mail.problem or (Reason.NO_SENDER if mail.sender is None else None)
    if problem is not None and (noise is None or problem not in MACHINE_READABLE):
        _store_new(session, row, result, Outcome.QUARANTINED, problem)
        return result
    sender = mail.sender
    if noise is None and sender in org.free_system_accounts:
        noise = Reason.SYSTEM_ACCOUNT
    if noise is None and sender is not None and _is_flooding(org, look.earlier):
        noise = Reason.FLOOD
    if noise is not None or sender is None:  # no sender and no noise was quarantined above
        _store_noise(session, org, mail, row, result, noise or Reason.NO_SENDER, look)
        if noise == Reason.BOUNCE:
            bounces.record(session, mail, result.delivery_id, received_at)
        return result

    if org.identities.needs_proof(roles.role_for(sender, org).value):
        row["sender_trust"] = identity.decide(org.identities, sender, mail.headers, channel, peer)
        if row["sender_trust"] == identity.UNVERIFIED:
            # A From that names an agent proves nothing by itself: kept, never acted on.
            _store_new(session, row, result, Outcome.FILTERED, Reason.UNVERIFIED_SENDER)
            return result
    user, created = roles.resolve_sender(
        session, sender, mail.sender_name, org, received_at, look.sender
    )
    if user is None:
        _store_new(session, row, result, Outcome.FILTERED, Reason.UNKNOWN_SENDER)
        return result
    result.role, result.new_user = user.role, created
    if created:
        ledger.new_user(session, user)

    signer = _signer(session, org, mail, received_at)
    thread = conversations.find_thread(session, mail, signer)
    if thread is not None and thread.joins:
        outcome, reason, number = Outcome.THREADED, thread.reason, thread.issue_number
        delivery_id = _store_new(session, row, result, outcome, reason, number, user)
    else:
        outcome, reason = Outcome.CREATED_ISSUE, thread.reason if thread else None
        delivery_id = _store_opening(session, row, result, reason, mail.subject, user)
        number = result.issue

    signal = _team_signal(user, channel)
    result.seat_changes += ledger.count_sender(
        session, user, received_at, delivery_id, signal, look.seat_read(user)
    )
    if org.intake.create_users_from_cc:
        result.seat_changes += _create_cc_users(session, org, mail, received_at, delivery_id)
    if signer is not None and org.notify.enabled:
        created = outcome is Outcome.CREATED_ISSUE
        # A derived id is ours alone; the sender's mail never carried it.
        answers = mail.message_id if mail.message_id == row["message_id"] else None
        sent = notify.after_intake(
            session,
            org,
            signer,
            mail,
            user,
            number,
            created,
            delivery_id,
            received_at,
            answers,
            envelope_from,
            peer,
        )
        result.seat_changes += sent.seat_changes
        result.notifications = sent.queued
    return result


def _team_signal(user: User, channel: Channel) -> seats.Signal:
    """What a counted delivery is to the seat engine: a web-form submitter logs in to
    the portal; the shared account stands for strangers."""
    if user.origin == Origin.SHARED:
        return seats.Signal.SHARED
    return seats.Signal.WEB_FORM if channel is Channel.WEB_FORM else seats.Signal.WROTE


def _signer(
    session: Session, org: Org, mail: InboundMail, at: datetime
) -> signing.MessageIdSigner | None:
    """The Message-ID signer, when this delivery may be answered or names one of our ids."""
    ours = "@" + org.message_id_domain
    if org.notify.enabled or any(
        i.lower().endswith(ours) for i in conversations.reply_candidates(mail)
    ):
        return signing.signer_for(session, org, at)
    return None


def intake_address(mail: InboundMail, recipients: list[str], channel: Channel, org: Org) -> str:
    """The intake mailbox a delivery came to. Over SMTP: the first RCPT that is one.
    From files, a fetch or the form: the first one named by Delivered-To, To or Cc,
    else the recipient given."""
    given = [r.strip().lower() for r in recipients]
    named: list[str] = []
    if channel is not Channel.SMTP:
        for field_name in ("delivered-to", "to", "cc"):
            values = mail.headers.get(field_name, ())
            named += [a.lower() for _, a in email.utils.getaddresses(list(values))]
    for address in [*named, *given]:
        if org.is_intake_address(address):
            return address
    return given[0] if given else ""


def _delivery_row(
    mail: InboundMail,
    raw: bytes,
    envelope_from: str | None,
    recipients: list[str],
    received_at: datetime,
    channel: Channel,
) -> dict[str, Any]:
    """The delivery's columns as far as parsing decides them; `_store` adds the outcome."""
    attachments = [
        {"name": a.name, "content_type": a.content_type, "size": a.size} for a in mail.attachments
    ]
    return {
        "received_at": received_at,
        "envelope_from": envelope_from or "",
        "recipients": ",".join(recipients),
        "message_id": effective_message_id(mail, raw),
        "sender": mail.sender,
        "sender_name": mail.sender_name,
        "sender_source": mail.sender_source,
        "subject": mail.subject,
        "body_text": mail.text,
        "attachments": json.dumps(attachments),
        "in_reply_to": " ".join(mail.in_reply_to),
        "references": " ".join(mail.references),
        "sent_at": mail.date,
        "size": len(raw),
        "channel": channel.value,
        "raw": raw,
    }


def _store(
    session: Session,
    row: dict[str, Any],
    result: DeliveryResult,
    outcome: Outcome,
    reason: str | None,
    issue: int | None = None,
    user: User | None = None,
    known: bool = False,
) -> int:
    """Write the delivery row, outcome included, in one INSERT; its id goes in `result`.
    With `known`, its Message-ID becomes known too, with its issue."""
    _fill(row, outcome, reason, issue, user)
    if known and _one_statement(session):
        delivery_id = INSERT_DELIVERY_AND_KNOWN.insert(session, row)
    else:
        delivery_id = INSERT_DELIVERY.insert(session, row)
        if known:
            known_id = {"message_id": row["message_id"], "delivery_id": delivery_id}
            INSERT_KNOWN_MESSAGE.execute(session, {**known_id, "issue_number": issue})
    return _stored(result, delivery_id, outcome, reason, issue)


def _fill(
    row: dict[str, Any], outcome: Outcome, reason: str | None, issue: int | None, user: User | None
) -> None:
    row.update(
        outcome=outcome.value,
        reason=reason,
        issue_number=issue,
        user_id=user.id if user is not None else None,
    )


def _stored(
    result: DeliveryResult,
    delivery_id: int,
    outcome: Outcome,
    reason: str | None,
    issue: int | None,
) -> int:
    result.delivery_id = delivery_id
    result.outcome, result.reason, result.issue = outcome, reason, issue
    return delivery_id


def _one_statement(session: Session) -> bool:
    return session.connection().dialect.name in ONE_STATEMENT_STORE


def _store_opening(
    session: Session,
    row: dict[str, Any],
    result: DeliveryResult,
    reason: str | None,
    subject: str,
    user: User,
) -> int:
    """`_store_new` for mail that opens an issue (conversations.create_issue), submitted
    by `user`; the issue's number goes in `result`."""
    at = row["received_at"]
    if not _one_statement(session):
        number = conversations.create_issue(session, subject, user.id, at)
        return _store_new(session, row, result, Outcome.CREATED_ISSUE, reason, number, user)
    _fill(row, Outcome.CREATED_ISSUE, reason, None, user)
    opened = conversations.opened_issue(subject, user.id, at)
    delivery_id, number = INSERT_ISSUE_DELIVERY_AND_KNOWN.one(session, {**row, **opened})
    row["issue_number"] = number
    return _stored(result, delivery_id, Outcome.CREATED_ISSUE, reason, number)


def _store_new(
    session: Session,
    row: dict[str, Any],
    result: DeliveryResult,
    outcome: Outcome,
    reason: str | None,
    issue: int | None = None,
    user: User | None = None,
) -> int:
    """`_store` for a Message-ID seen for the first time: it becomes known, with its issue."""
    return _store(session, row, result, outcome, reason, issue, user, known=True)


def _first_look(
    session: Session, org: Org, mail: InboundMail, message_id: str, at: datetime
) -> FirstLook:
    """Whether the Message-ID is known, the issue it belongs to, and the earlier
    deliveries of the sender in the flood window counted up to `flood_limit`, in one
    statement; with the sender's user and Team seat when the transaction does not
    know them (and the mail could be read: quarantined mail needs no user)."""
    sender = mail.sender
    limit = org.intake.flood_limit if sender is not None else 0
    since = at - timedelta(minutes=org.intake.flood_window_minutes)
    asked = {
        "message_id": message_id,
        "sender": sender or "",
        "since": since,
        "at": at,
        "limit": max(limit, 0),  # a limit of 0 counts nothing: the check is off
    }
    # Known ids and deliveries are Core inserts, never left pending: no flush needed.
    # A pending user would be (find_user flushes first): then the user is read apart.
    if sender is None or mail.problem or session.new or roles.remembered(session, sender):
        known, issue, earlier = FIRST_LOOK.one(session, asked)
        return FirstLook(bool(known), issue, int(earlier))
    known, issue, earlier, *user, changes, total = FIRST_LOOK_WITH_SENDER.one(session, asked)
    if user[0] is None:
        return FirstLook(bool(known), issue, int(earlier), None)
    state = ledger.as_state(changes, total)
    return FirstLook(bool(known), issue, int(earlier), tuple(user), state)


def _is_flooding(org: Org, earlier: int) -> bool:
    """More than flood_limit earlier deliveries from this sender inside the window
    (0 turns it off); this delivery is not written yet, so it is not among them."""
    limit = org.intake.flood_limit
    return limit > 0 and earlier >= limit


def _store_noise(
    session: Session,
    org: Org,
    mail: InboundMail,
    row: dict[str, Any],
    result: DeliveryResult,
    noise: str,
    look: FirstLook,
) -> None:
    """Filtered mail; under `noise_creates_users` its sender is billed as an unfiltered
    system would."""
    free_system = noise == Reason.SYSTEM_ACCOUNT  # never a user, whatever the policy
    if not org.intake.noise_creates_users or mail.sender is None or free_system:
        _store_new(session, row, result, Outcome.FILTERED, noise)
        return
    at = row["received_at"]
    user = roles.find_user(session, mail.sender, look.sender)
    if user is None:
        user = roles.create_user(
            session, mail.sender, mail.sender_name, org, Origin.SENDER, at, first_seen=at
        )
        ledger.new_user(session, user)
        result.new_user = True
    result.role = user.role
    delivery_id = _store_new(session, row, result, Outcome.FILTERED, noise, user=user)
    result.seat_changes += ledger.count_sender(
        session, user, at, delivery_id, seats.Signal.NOISE, look.seat_read(user)
    )


def _create_cc_users(
    session: Session, org: Org, mail: InboundMail, at: datetime, delivery_id: int
) -> list[SeatChange]:
    """`create_users_from_cc`: everyone on To/Cc becomes a user (and a Team seat)."""
    changes: list[SeatChange] = []
    created = 0
    for address in dict.fromkeys((*mail.to, *mail.cc)):
        if created >= org.intake.cc_users_per_message:
            break
        if not is_cc_candidate(org, mail.sender, address):
            continue
        if roles.find_user(session, address) is not None:
            continue
        user = roles.create_user(session, address, "", org, Origin.CC, at)
        ledger.new_user(session, user)
        created += 1
        # Not a sender yet (no first_seen), but billed under Team from now on.
        changes += ledger.open_team_seat(session, user, seats.Signal.CC, at, delivery_id)
    return changes


def is_cc_candidate(org: Org, sender: str | None, address: str) -> bool:
    """Whether a To/Cc address of counted mail from `sender` may become a user."""
    if address == sender or org.is_intake_address(address):
        return False
    if address.rpartition("@")[0] in NO_REPLY:
        return False
    # Strangers on Cc are only created when strangers may become users at all.
    stranger = roles.role_for(address, org) is Role.CUSTOMER
    return not stranger or org.intake.unknown_senders is UnknownSenders.CREATE
