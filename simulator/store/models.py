"""The tables intake writes: users, issues, deliveries, known message ids, seat events,
and for automatic email updates: issue participants, the outbox and a signing secret.

Every fact that must exist once (a user's address, a Message-ID, an issue
number, the Nth change of a user's seat) is guarded by a unique key, so that
concurrent writers -- several listeners on one PostgreSQL -- cannot create it
twice: the loser's transaction fails and is retried, and then sees the fact.
The seat ledger is append-only: there is no code path that updates it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from simulator.domain import Channel

# NUL, which PostgreSQL's text type cannot hold, and lone surrogates, which no
# backend can encode: a listener keeps a byte that is not UTF-8 as one (surrogateescape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """`value` with every character no backend can store replaced by U+FFFD."""
    return value if value.isascii() and "\x00" not in value else _UNSTORABLE.sub("\ufffd", value)


class CleanText(TypeDecorator[str]):
    """Text that every backend can store, whatever a stranger sent.

    Hostile mail may carry NULs in any header or body, and a non-UTF-8 byte in
    the envelope arrives as a lone surrogate; each becomes U+FFFD on every
    backend, so SQLite and PostgreSQL store the same text, and no such value can
    fail a write (and with it a whole batch). The raw bytes keep the original.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return storable_text(value) if value else value


class CleanString(CleanText):
    """A bounded string column with the same NUL rule, cut to its length.

    PostgreSQL refuses an over-long value, and one such value would fail its
    whole batch; SQLite would keep it whole. Cutting keeps both alike.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        value = super().process_bind_param(value, dialect)
        length = self.impl_instance.length
        return value[:length] if value and length and len(value) > length else value


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    # The report's users per role up to a moment read this index alone; with the origin
    # second, so do its few users who are no customer (directory roles, the shared account).
    __table_args__ = (
        Index("ix_users_role_origin_created_at", "role", "origin", "created_at", "first_seen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(CleanString(320), unique=True)
    name: Mapped[str] = mapped_column(CleanString(200), default="")
    role: Mapped[str] = mapped_column(CleanString(16))
    origin: Mapped[str] = mapped_column(CleanString(16))
    in_directory: Mapped[bool] = mapped_column(default=False)
    logs_in: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Time of the first counted message: when a Team seat starts for a sender.
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Issue(Base):
    __tablename__ = "issues"

    number: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(CleanText)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Delivery(Base):
    """One accepted SMTP transaction (or ingested file), whatever its outcome."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('created_issue','threaded','duplicate','filtered','quarantined')",
            name="outcome",
        ),
        Index("ix_deliveries_sender_received_at", "sender", "received_at"),
        # The report's count per outcome up to a moment reads this index alone.
        Index("ix_deliveries_outcome_received_at", "outcome", "received_at"),
        # A user's deliveries (what the plain user_id index served), and the report's
        # counted mail per user read in user order from this index alone, without a sort.
        Index(
            "ix_deliveries_user_outcome_received_channel",
            "user_id",
            "outcome",
            "received_at",
            "channel",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    envelope_from: Mapped[str] = mapped_column(CleanText, default="")
    recipients: Mapped[str] = mapped_column(CleanText, default="")
    message_id: Mapped[str] = mapped_column(CleanString(255), index=True)
    sender: Mapped[str | None] = mapped_column(CleanString(320))
    sender_name: Mapped[str] = mapped_column(CleanText, default="")
    subject: Mapped[str] = mapped_column(CleanText, default="")
    body_text: Mapped[str] = mapped_column(CleanText, default="")
    attachments: Mapped[str] = mapped_column(CleanText, default="[]")  # JSON list
    in_reply_to: Mapped[str] = mapped_column(CleanText, default="")
    references: Mapped[str] = mapped_column(CleanText, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the Date header
    outcome: Mapped[str] = mapped_column(CleanString(16))
    reason: Mapped[str | None] = mapped_column(CleanString(32))
    issue_number: Mapped[int | None] = mapped_column(ForeignKey("issues.number"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    size: Mapped[int] = mapped_column(Integer, default=0)
    # The server default gives rows written before channels existed their true value.
    channel: Mapped[str] = mapped_column(
        String(16), default=Channel.SMTP.value, server_default=Channel.SMTP.value
    )
    # Which header gave `sender` (from, sender, reply-to, envelope); "" for none, and
    # for rows written before it was recorded.
    sender_source: Mapped[str] = mapped_column(String(16), default="", server_default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # The intake mailbox the delivery came to ("" for rows written before it was kept).
    intake_address: Mapped[str] = mapped_column(CleanString(320), default="", server_default="")
    # The SMTP client's IP address ("" for other channels and older rows): the key of
    # the per-client acknowledgement rate.
    peer: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)
    # Why the sender's role was believed, under `[identity] verify_roles`: "" (not
    # asked), "authenticated", "relay", or "unverified" (the delivery was filtered).
    sender_trust: Mapped[str] = mapped_column(String(16), default="", server_default="")


class KnownMessage(Base):
    """Each Message-ID seen once: the dedupe key and the threading index."""

    __tablename__ = "known_messages"

    message_id: Mapped[str] = mapped_column(CleanString(255), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    issue_number: Mapped[int | None] = mapped_column(ForeignKey("issues.number"))


class SeatEvent(Base):
    """Append-only: seats under a model as of T are the sum of deltas up to T.

    `transition` numbers the changes of one user's seat under one model: 1 is
    the first +1, 2 the -1 that ends it, 3 the next +1, and so on. The unique
    key on (user, model, transition) is what stops two listeners that race on
    the same fact from both appending it: both compute the same next number,
    one insert fails, and its retry finds the seat already held. The check
    pins the alternation (odd changes add a seat, even ones remove it), so the
    ledger cannot say "+1, +1" for one person even through a bug.
    """

    __tablename__ = "seat_events"
    __table_args__ = (
        CheckConstraint("delta IN (-1, 1)", name="delta"),
        CheckConstraint("model IN ('support','team')", name="model"),
        CheckConstraint(
            "transition >= 1 AND (transition % 2 = 1) = (delta = 1)", name="alternates"
        ),
        UniqueConstraint(
            "user_id", "model", "transition", name="uq_seat_events_user_model_transition"
        ),  # also the index behind seat_state's per-(user, model) lookups
        # The report's seats per model up to a moment: a range of this index, no table read.
        Index("ix_seat_events_model_at_delta", "model", "at", "delta"),
    )

    seq: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    model: Mapped[str] = mapped_column(CleanString(16))
    transition: Mapped[int] = mapped_column(Integer)
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(CleanString(32))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))


class IssueParticipant(Base):
    """Everyone on an issue's conversation: senders and To/Cc addresses of counted mail.

    Kept only while participant updates are on; they are who an update goes to.
    """

    __tablename__ = "issue_participants"

    issue_number: Mapped[int] = mapped_column(ForeignKey("issues.number"), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))


class OutboxMessage(Base):
    """One automatic email, written in the transaction of the delivery that caused it.

    The bytes are built at intake time, so what is sent is exactly what was decided;
    the sender task only moves rows from pending to sent or failed.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','sent','failed','suppressed')",
            name="status",
        ),
        CheckConstraint("kind IN ('acknowledgement','update')", name="kind"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_recipient_created_at", "recipient", "created_at"),
        # What the per-mailbox cap and the acknowledgement rates count, each a range
        # of one index: no scan of the outbox per automatic email.
        Index("ix_outbox_mailbox_created_at", "mailbox", "created_at"),
        Index("ix_outbox_peer_kind_created_at", "peer", "kind", "created_at"),
        Index("ix_outbox_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    issue_number: Mapped[int] = mapped_column(ForeignKey("issues.number"), index=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    recipient: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The recipient's mailbox (`wendy+2@x` is `wendy@x`), and the SMTP client whose
    # delivery caused the email ("" when it did not come over SMTP).
    mailbox: Mapped[str] = mapped_column(String(320), default="", server_default="")
    peer: Mapped[str] = mapped_column(String(64), default="", server_default="")


class BouncedRecipient(Base):
    """One recipient a delivery report says could not be reached, with the report.

    A permanent failure (status 5.x.x) makes the address undeliverable: no more
    automatic email is queued to it (outbox `suppressed`). Soft failures (4.x.x)
    are kept too, and mark nothing. `issue_number` is the issue of the mail it
    returns, when that mail is one we know (our signed id, or a known Message-ID).
    """

    __tablename__ = "bounced_recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    status: Mapped[str] = mapped_column(String(16), default="")
    permanent: Mapped[bool] = mapped_column(default=False)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    returned_message_id: Mapped[str] = mapped_column(String(255), default="")
    issue_number: Mapped[int | None] = mapped_column(ForeignKey("issues.number"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Secret(Base):
    """Per-database secrets, e.g. the key that signs our Message-IDs when the org sets none."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SpooledMessage(Base):
    """A message acknowledged before intake ran (`serve --ack spool`): raw bytes and envelope.

    The spool processor runs it through the pipeline and deletes the row in the
    same transaction that stores its delivery, so every spooled message becomes
    exactly one delivery, even across a crash between the two.
    """

    __tablename__ = "spool"
    __table_args__ = (
        # A processor reads the rows of the partitions it holds, oldest first...
        Index("ix_spool_partition_key_id", "partition_key", "id"),
        # ...and looks for a spooled original by the Message-ID a reply names.
        Index("ix_spool_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    envelope_from: Mapped[str] = mapped_column(CleanText, default="")
    recipients: Mapped[str] = mapped_column(CleanText, default="")
    channel: Mapped[str] = mapped_column(String(16), default=Channel.SMTP.value)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    peer: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # What orders it, read at append (see delivery/spool_postgres.py): the partition its
    # sender hashes to, its own Message-ID, and the ids it answers (one a line, nearest
    # first). The SQLite spool file keeps none of them; there one processor runs all.
    partition_key: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    message_id: Mapped[str] = mapped_column(CleanText, default="", server_default="")
    answers: Mapped[str] = mapped_column(CleanText, default="", server_default="")


class SpoolMark(Base):
    """How far the spool processor got in one SQLite spool file (`<database>-spool`).

    The file is a separate database, so taking rows off it cannot share the
    transaction that stores their deliveries; this mark does instead. It is
    written in that transaction, and rows at or below it are known done even
    when the processor stopped before deleting them.
    """

    __tablename__ = "spool_marks"

    spool_file: Mapped[str] = mapped_column(String(36), primary_key=True)  # the file's uuid
    last_id: Mapped[int] = mapped_column(Integer)


class FetchCheckpoint(Base):
    """How far `fetch` got in one IMAP folder of one account: the folder's UIDVALIDITY
    and the highest UID stored. A new UIDVALIDITY means the UIDs start over."""

    __tablename__ = "fetch_checkpoints"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)  # imap://user@host
    folder: Mapped[str] = mapped_column(String(320), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)


class FetchedUidl(Base):
    """A POP3 message `fetch` stored, by its UIDL (POP3 has no ordered UIDs)."""

    __tablename__ = "fetched_uidls"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)  # pop3://user@host
    uidl: Mapped[str] = mapped_column(String(70), primary_key=True)  # RFC 1939: 1-70 chars
