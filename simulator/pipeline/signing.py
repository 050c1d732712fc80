"""Signed Message-IDs: replies to our mail thread by reference, forgeries do not.

Every automatic email we send gets a Message-ID of the form
`issue-N.NONCE.MAC@message_id_domain`, where MAC is an HMAC-SHA256 of
`issue-N.NONCE` under a key only this installation knows. A reply names that
id in In-Reply-To/References, and the MAC proves we minted it for issue N. A
stranger who writes an id in our domain by hand cannot make the MAC, so the
reference is ignored instead of attaching mail to someone else's issue.

The key is the org file's `[notify] signing_key`, or else a random secret kept
in the database's `secrets` table (made once, by `prepare()` or on first use).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from simulator.org import Org
from simulator.store.models import Secret

SECRET_NAME = "message_id_key"
NONCE_BYTES = 8
MAC_HEX = 32  # 128 bits of the HMAC: forging one is out of reach
# The database secret as this transaction has read it: a batch reads it once, not per message.
SECRET_KEY = "signing.database_secret"
SIGNED_ID = re.compile(r"^issue-(\d{1,9})\.([0-9a-f]{16})\.([0-9a-f]{32})$")


@dataclass(frozen=True)
class MessageIdSigner:
    key: bytes
    domain: str

    def is_ours(self, message_id: str) -> bool:
        return message_id.lower().endswith("@" + self.domain)

    def new_id(self, issue: int) -> str:
        """A fresh signed id (without angle brackets) for mail about `issue`."""
        token = f"issue-{issue}.{secrets.token_hex(NONCE_BYTES)}"
        return f"{token}.{self._mac(token)}@{self.domain}"

    def issue_of(self, message_id: str) -> int | None:
        """The issue an id of ours was minted for; None when it is not ours or is forged."""
        if not self.is_ours(message_id):
            return None
        found = SIGNED_ID.match(message_id.rpartition("@")[0])
        if found is None:
            return None
        token = f"issue-{found.group(1)}.{found.group(2)}"
        if not hmac.compare_digest(self._mac(token), found.group(3)):
            return None
        return int(found.group(1))

    def _mac(self, token: str) -> str:
        return hmac.new(self.key, token.encode("ascii"), hashlib.sha256).hexdigest()[:MAC_HEX]


def signer_for(session: Session, org: Org, at: datetime) -> MessageIdSigner:
    """The signer for this org and database: the org's key, else the database secret."""
    if org.notify.signing_key:
        key = org.notify.signing_key.encode("utf-8")
    else:
        key = database_secret(session, at).encode("ascii")
    return MessageIdSigner(key, org.message_id_domain)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _previous: SessionTransaction) -> None:
    # A rolled-back SAVEPOINT may take a secret made inside it with it.
    session.info.pop(SECRET_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(SECRET_KEY, None)


def database_secret(session: Session, at: datetime) -> str:
    """The per-database signing secret, made on first use; read once per transaction.

    Two processes may race to make it (PostgreSQL, several listeners): the loser's
    insert fails on the primary key inside a SAVEPOINT and it reads the winner's.
    """
    cached: str | None = session.info.get(SECRET_KEY)
    if cached is None:
        cached = session.info[SECRET_KEY] = _stored_secret(session, at)
    return cached


def _stored_secret(session: Session, at: datetime) -> str:
    found = session.get(Secret, SECRET_NAME)
    if found is not None:
        return found.value
    try:
        with session.begin_nested():
            session.add(Secret(name=SECRET_NAME, value=secrets.token_hex(32), created_at=at))
    except IntegrityError:
        pass
    stored = session.get(Secret, SECRET_NAME, populate_existing=True)
    assert stored is not None
    return stored.value
