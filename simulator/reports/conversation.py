"""One conversation in full: an issue with every message filed under it, and one
message with its text, headers, attachments and raw bytes (`intake-sim show`,
`/api/issues/N`, `/api/messages/N`).

The text and attachment list are the ones intake stored; the headers are read
back from the kept raw bytes, so quarantined mail can be looked at too.
"""

from __future__ import annotations

import json
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from simulator.errors import NotFound
from simulator.reports.rows import Row, iso
from simulator.store.models import Delivery, Issue, User


def _headers(raw: bytes) -> list[list[str]]:
    """Every header field as [name, value], in order; undecodable ones as they are."""
    parsed = BytesHeaderParser(policy=default).parsebytes(raw)
    fields = []
    for name, value in parsed.raw_items():
        try:
            shown = str(parsed.policy.header_fetch_parse(name, value))
        except Exception:  # a malformed header is shown as received, not refused
            shown = str(value)
        fields.append([name, shown])
    return fields


def _message(delivery: Delivery) -> Row:
    attachments: list[Any] = json.loads(delivery.attachments or "[]")
    return {
        "id": delivery.id,
        "received_at": iso(delivery.received_at),
        "message_id": delivery.message_id,
        "sender": delivery.sender,
        "sender_name": delivery.sender_name,
        "envelope_from": delivery.envelope_from,
        "recipients": delivery.recipients,
        "subject": delivery.subject,
        "sent_at": iso(delivery.sent_at),
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "issue": delivery.issue_number,
        "channel": delivery.channel,
        "peer": delivery.peer,
        "sender_trust": delivery.sender_trust,
        "size": delivery.size,
        "text": delivery.body_text,
        "attachments": attachments,
        "headers": _headers(delivery.raw or b""),
    }


def _delivery(session: Session, delivery_id: int) -> Delivery:
    found = session.scalars(
        select(Delivery).options(undefer(Delivery.raw)).where(Delivery.id == delivery_id)
    ).first()
    if found is None:
        raise NotFound(f"no message {delivery_id}")
    return found


def message(session: Session, delivery_id: int) -> Row:
    """One delivery: what `messages` lists, plus its text, headers and attachments."""
    return _message(_delivery(session, delivery_id))


def message_raw(session: Session, delivery_id: int) -> bytes:
    """The bytes exactly as they were received."""
    return _delivery(session, delivery_id).raw or b""


def issue(session: Session, number: int) -> Row:
    """An issue and every delivery filed under it, oldest first."""
    found = session.execute(
        select(Issue, User.email)
        .join(User, User.id == Issue.submitter_id)
        .where(Issue.number == number)
    ).first()
    if found is None:
        raise NotFound(f"no issue {number}")
    record, submitter = found
    deliveries = session.scalars(
        select(Delivery)
        .options(undefer(Delivery.raw))
        .where(Delivery.issue_number == number)
        .order_by(Delivery.id)
    ).all()
    return {
        "number": record.number,
        "subject": record.subject,
        "submitter": submitter,
        "created_at": iso(record.created_at),
        "messages": [_message(delivery) for delivery in deliveries],
    }
