"""Dedupe and threading: which issue a delivery belongs to, if any.

Named `conversations` so it never shadows the standard library's `threading`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.orm import Session

from simulator.domain import Outcome, Reason, ThreadReason
from simulator.pipeline.parse import InboundMail
from simulator.pipeline.signing import MessageIdSigner
from simulator.store.models import Delivery, Issue, IssueParticipant, KnownMessage, User
from simulator.store.prepared import Prepared

KNOWN_MESSAGES = KnownMessage.__table__
INSERT_ISSUE = Prepared(insert(Issue.__table__))
KNOWN_ISSUE = select(KNOWN_MESSAGES.c.issue_number).where(
    KNOWN_MESSAGES.c.message_id == bindparam("message_id")
)
# The same question as columns, for a caller that asks it with others in one statement:
# whether :message_id is known, and its issue (NULL both for none and for no issue).
KNOWN = exists().where(KNOWN_MESSAGES.c.message_id == bindparam("message_id"))
KNOWN_ISSUE_COLUMN = KNOWN_ISSUE.scalar_subquery()
KNOWN_ISSUE_ROW = Prepared(KNOWN_ISSUE)
SUBJECT_TAG = re.compile(r"\[Issue #(\d{1,9})\]", re.IGNORECASE)
_COUNTED = (Outcome.CREATED_ISSUE.value, Outcome.THREADED.value)


@dataclass(frozen=True)
class Thread:
    """The issue a mail names; `joins` is False for a tag from someone outside it,
    which opens a new issue instead (reason `subject_tag_untrusted`)."""

    issue_number: int
    reason: str  # "in_reply_to", "subject_tag" or "subject_tag_untrusted"
    joins: bool = True


def known_message(session: Session, message_id: str) -> tuple[int | None] | None:
    """The issue a Message-ID seen before belongs to (as a 1-tuple, None for mail
    that joined none); None when the id is new."""
    # Known ids are written with Core inserts (intake.py), never left pending in the session.
    return KNOWN_ISSUE_ROW.first(session, {"message_id": message_id})


def reply_candidates(mail: InboundMail) -> list[str]:
    """Ids this mail answers, nearest first: In-Reply-To names the direct parent;
    References lists oldest first."""
    return list(dict.fromkeys([*mail.in_reply_to, *reversed(mail.references)]))


def find_thread(
    session: Session, mail: InboundMail, signer: MessageIdSigner | None = None
) -> Thread | None:
    """The issue this mail answers: reply headers first (newest first), then the tag.

    An id in our own domain is one of our automatic emails: it threads only when
    its signature holds (and `signer` is given); a forged one is ignored.
    """
    for message_id in reply_candidates(mail):
        if signer is not None and signer.is_ours(message_id):
            number = signer.issue_of(message_id)
            if number is not None and issue_exists(session, number):
                return Thread(number, ThreadReason.IN_REPLY_TO)
            continue
        known = known_message(session, message_id)
        if known is not None and known[0] is not None:
            return Thread(known[0], ThreadReason.IN_REPLY_TO)
    untrusted = None
    for match in SUBJECT_TAG.finditer(mail.subject):
        number = int(match.group(1))
        if not issue_exists(session, number):
            continue
        # Issue numbers are small and guessable: a bare tag is honoured only from
        # someone already in that conversation, so a stranger cannot write into it.
        if mail.sender is not None and takes_part(session, number, mail.sender):
            return Thread(number, ThreadReason.SUBJECT_TAG)
        untrusted = untrusted or Thread(number, Reason.SUBJECT_TAG_UNTRUSTED, joins=False)
    return untrusted


_ISSUES = Issue.__table__.c
_DELIVERIES = Delivery.__table__.c
_PARTICIPANTS = IssueParticipant.__table__.c
_USERS = User.__table__.c
# Built once, asked with bound values: the statements of a reply's threading.
ISSUE_EXISTS = Prepared(select(_ISSUES.number).where(_ISSUES.number == bindparam("number")))
_SUBMITTER = (
    select(_USERS.email)
    .join(Issue.__table__, _ISSUES.submitter_id == _USERS.id)
    .where(_ISSUES.number == bindparam("number"))
    .scalar_subquery()
)
_WROTE = exists().where(
    _DELIVERIES.issue_number == bindparam("number"),
    _DELIVERIES.sender == bindparam("address"),
    _DELIVERIES.outcome.in_(_COUNTED),
)
_LISTED = exists().where(
    _PARTICIPANTS.issue_number == bindparam("number"),
    _PARTICIPANTS.email == bindparam("address"),
)
TAKES_PART = Prepared(select(_SUBMITTER, _WROTE | _LISTED))


def issue_exists(session: Session, number: int) -> bool:
    # Issues are Core inserts and never changed through the session: nothing to flush.
    return ISSUE_EXISTS.first(session, {"number": number}) is not None


def takes_part(session: Session, number: int, address: str) -> bool:
    """The address submitted issue `number`, wrote counted mail into it, or is on its
    participant list (kept while participant updates are on)."""
    # The session's autoflush first: participants are ORM rows (notify.py), and one
    # added by an earlier delivery of the batch must count.
    session.flush()
    asked = {"number": number, "address": address}
    submitter, joined = TAKES_PART.one(session, asked)
    return submitter == address or bool(joined)


def create_issue(session: Session, subject: str, submitter_id: int, at: datetime) -> int:
    """A new issue's number; the database numbers it.

    SQLite gives the next rowid (the highest number + 1, inside the writer's
    lock); PostgreSQL draws from the column's sequence, so listeners side by
    side never pick the same number. A sequence does not roll back: after a
    batch that failed (451) PostgreSQL's numbering skips the numbers it drew.
    """
    return INSERT_ISSUE.insert(session, new_issue(subject, submitter_id, at))


def new_issue(subject: str, submitter_id: int, at: datetime) -> dict[str, Any]:
    """The columns of the issue that mail with `subject` opens."""
    return {"subject": issue_subject(subject), "submitter_id": submitter_id, "created_at": at}


# create_issue's INSERT for a statement that writes other rows with it (intake's
# one-statement store): its values are `opened_issue`'s, named apart from theirs.
_OPENED = ("subject", "submitter_id", "created_at")
OPENED_ISSUE = (
    insert(Issue.__table__)
    .values({k: bindparam(f"issue_{k}", type_=_ISSUES[k].type) for k in _OPENED})
    .returning(_ISSUES.number)
)


def opened_issue(subject: str, submitter_id: int, at: datetime) -> dict[str, Any]:
    """OPENED_ISSUE's values for the issue that mail with `subject` opens."""
    return {f"issue_{k}": v for k, v in new_issue(subject, submitter_id, at).items()}


def issue_subject(subject: str) -> str:
    """The subject an issue opened by mail with `subject` is stored with."""
    return subject or "(no subject)"
