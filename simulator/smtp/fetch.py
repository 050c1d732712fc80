"""Pull mail from a mailbox server into intake, read-only: `intake-sim fetch`.

IMAP4rev1 (imaplib): each folder is opened with EXAMINE, messages are read with
UID FETCH of BODY.PEEK[] and INTERNALDATE, so no flag is set and nothing is
stored or expunged. POP3 (poplib): messages are read with TOP n <all lines>,
which leaves them unseen, and the session ends with RSET and QUIT, so nothing
is deleted. TLS is on by default (implicit, or STARTTLS) with the certificate
checked; plain text only when asked for.

Progress is kept in the database, in the same transaction as each batch of
deliveries: per IMAP folder its UIDVALIDITY and the highest UID stored
(`fetch_checkpoints`), per POP3 mailbox every UIDL stored (`fetched_uidls`).
So a second run fetches only new mail, an interrupted run resumes after its
last committed batch, and a folder whose UIDVALIDITY changed is read again
from the start (Message-ID dedupe makes the repeats `duplicate`).

The password is given to the library, never logged and never part of an error.
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from simulator.domain import Channel, MailProtocol, Security, Submission
from simulator.errors import IntakeSimError
from simulator.org import Org
from simulator.pipeline.batch import prepare, process_batch
from simulator.pipeline.intake import DeliveryResult
from simulator.pipeline.parse import delivered_time
from simulator.smtp.mailfiles import envelope_sender
from simulator.store.db import Store
from simulator.store.models import FetchCheckpoint, FetchedUidl

FETCH_BATCH = 50
TIMEOUT_SECONDS = 60
DEFAULT_PORTS = {
    ("imap", True): 993,
    ("imap", False): 143,
    ("pop3", True): 995,
    ("pop3", False): 110,
}
ALL_LINES = 2**31 - 1  # TOP with every line of the body: the whole message, left unseen
FETCH_ITEM = re.compile(rb"UID (\d+)")
INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$')
IMAP_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class FetchError(IntakeSimError):
    """The mailbox could not be reached, refused the login, or broke the session."""


@dataclass(frozen=True)
class Account:
    protocol: MailProtocol
    host: str
    user: str
    password: str = field(repr=False)
    port: int = 0  # 0: the protocol's port for the security chosen
    security: Security = Security.TLS
    verify: bool = True  # check the server's certificate and name
    cafile: Path | None = None  # trust this CA (a lab server's own certificate)
    timeout: float = TIMEOUT_SECONDS

    @property
    def real_port(self) -> int:
        tls = self.security is Security.TLS
        return self.port or DEFAULT_PORTS[(self.protocol.value, tls)]

    @property
    def key(self) -> str:
        """The account as checkpoints name it: protocol://user@host. Not the port: the
        same mailbox over IMAPS or STARTTLS is one mailbox."""
        return f"{self.protocol.value}://{self.user}@{self.host}"

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class Window:
    """`--since` / `--before`: only mail the server received in [since, before)."""

    since: datetime | None = None
    before: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.before is None or moment < self.before
        )

    def imap_criteria(self) -> list[str]:
        # IMAP compares dates only (RFC 3501 SINCE/BEFORE); the window is read to the day.
        found = []
        if self.since:
            found += ["SINCE", _imap_date(self.since)]
        if self.before:
            found += ["BEFORE", _imap_date(self.before)]
        return found


@dataclass(frozen=True)
class Pulled:
    """One message off the server: where it was, its bytes, and when the server got it."""

    folder: str
    uid: int | str  # the IMAP UID, or the POP3 UIDL
    raw: bytes
    received_at: datetime


OnBatch = Callable[[Sequence[DeliveryResult]], None]


def fetch(
    store: Store,
    org: Org,
    account: Account,
    folders: Sequence[str] = ("INBOX",),
    all_folders: bool = False,
    window: Window = Window(),
    on_batch: OnBatch | None = None,
) -> int:
    """Pull every message not stored yet through intake; returns how many were pulled.

    A first, light pass (INTERNALDATE, or POP3 headers) finds the earliest new
    message, so that directory seats new to the ledger start there, as with
    `ingest --use-date-header`, rather than at the moment of the fetch.
    """
    store.ensure_schema()
    try:
        if account.protocol is MailProtocol.POP3:
            with _pop3(account) as pop:
                new, earliest = _pop3_plan(store, account, pop)
                prepare(store, org, start=earliest)
                return _pop3_pull(store, org, account, pop, new, window, on_batch)
        with _imap(account) as imap:
            names = _imap_folders(imap) if all_folders else list(folders)
            plans = [_imap_plan(store, account, imap, name, window) for name in names]
            starts = [plan.earliest for plan in plans if plan.earliest is not None]
            prepare(store, org, start=min(starts, default=None))
            return sum(_imap_pull(store, org, account, imap, plan, on_batch) for plan in plans)
    except (OSError, imaplib.IMAP4.error, poplib.error_proto) as exc:
        where = f"{account.host}:{account.real_port}"
        raise FetchError(
            f"the session with {where} broke off ({exc}); the batches stored so far stay "
            "stored, and the next run goes on from there"
        ) from None


def _submissions(org: Org, pulled: Sequence[Pulled]) -> list[Submission]:
    recipients = [org.intake_addresses[0]]
    return [
        Submission(p.raw, envelope_sender(p.raw), recipients, p.received_at, Channel.FETCH)
        for p in pulled
    ]


def _commit(
    store: Store,
    org: Org,
    pulled: Sequence[Pulled],
    progress: Callable[[Session], None],
    on_batch: OnBatch | None,
) -> None:
    """One batch of deliveries and the checkpoint that covers it, in one transaction."""

    def work(session: Session) -> list[DeliveryResult]:
        results = process_batch(session, org, _submissions(org, pulled))
        progress(session)
        return results

    results = store.transaction(work)
    if on_batch is not None:
        on_batch(results)


# --- IMAP ------------------------------------------------------------------------------


class _imap:
    """An authenticated IMAP session, logged out on exit."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.client: imaplib.IMAP4 | None = None

    def __enter__(self) -> imaplib.IMAP4:
        account = self.account
        where = f"{account.host}:{account.real_port}"
        try:
            if account.security is Security.TLS:
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    account.host,
                    account.real_port,
                    ssl_context=account.tls_context(),
                    timeout=account.timeout,
                )
            else:
                client = imaplib.IMAP4(account.host, account.real_port, timeout=account.timeout)
                if account.security is Security.STARTTLS:
                    client.starttls(account.tls_context())
        except (OSError, imaplib.IMAP4.error) as exc:
            raise FetchError(f"cannot open an IMAP session with {where}: {exc}") from None
        self.client = client
        try:
            client.login(account.user, account.password)
        except imaplib.IMAP4.error:
            self._close()
            raise FetchError(f"{where} refused the login of {account.user}") from None
        return client

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.client is not None:
            try:
                self.client.logout()
            except (OSError, imaplib.IMAP4.error):
                with contextlib.suppress(OSError):
                    self.client.shutdown()  # a broken session: at least close the socket
            self.client = None


def _imap_folders(session: imaplib.IMAP4) -> list[str]:
    """Every selectable folder the account has, as LIST names them."""
    _kind, lines = _imap_ok(session, session.list(), "LIST")
    names = []
    for line in lines:
        found = LIST_LINE.match(line) if isinstance(line, bytes) else None
        if found and b"\\noselect" not in found["flags"].lower():
            names.append(found["name"].decode("utf-8", "replace").strip('"'))
    return names


@dataclass(frozen=True)
class _FolderPlan:
    folder: str
    validity: int
    uids: list[int]  # new since the checkpoint, oldest first
    earliest: datetime | None  # the earliest INTERNALDATE among them


def _examine(session: imaplib.IMAP4, folder: str) -> int:
    """Open `folder` read-only (EXAMINE); returns its UIDVALIDITY."""
    _imap_ok(session, session.select(_quoted(folder), readonly=True), f"EXAMINE {folder}")
    return int((session.response("UIDVALIDITY")[1] or [b"0"])[0] or 0)


def _imap_plan(
    store: Store, account: Account, session: imaplib.IMAP4, folder: str, window: Window
) -> _FolderPlan:
    validity = _examine(session, folder)
    known, last = store.transaction(lambda s: _checkpoint(s, account.key, folder))
    if known != validity:
        last = 0  # the folder's UIDs were renumbered: read it all again
    criteria = ["UID", f"{last + 1}:*", *window.imap_criteria()]
    _, found = _imap_ok(session, session.uid("SEARCH", *criteria), f"SEARCH {folder}")
    # "n:*" always names the highest UID, even one below n: keep only the new ones.
    words = b" ".join(w for w in found if isinstance(w, bytes)).split()
    uids = sorted(u for u in (int(x) for x in words) if u > last)
    dates = [
        _internaldate(stamp.group(1).decode())
        for start in range(0, len(uids), FETCH_BATCH * 20)
        for part in _fetch_items(session, uids[start : start + FETCH_BATCH * 20], "INTERNALDATE")
        if (stamp := INTERNALDATE.search(part if isinstance(part, bytes) else part[0]))
    ]
    earliest = min((d for d in dates if d is not None), default=None)
    return _FolderPlan(folder, validity, uids, earliest)


def _imap_pull(
    store: Store,
    org: Org,
    account: Account,
    session: imaplib.IMAP4,
    plan: _FolderPlan,
    on_batch: OnBatch | None,
) -> int:
    if not plan.uids:
        return 0
    if _examine(session, plan.folder) != plan.validity:
        raise FetchError(f"{plan.folder}: UIDVALIDITY changed during the fetch; run it again")
    for start in range(0, len(plan.uids), FETCH_BATCH):
        chunk = plan.uids[start : start + FETCH_BATCH]
        pulled = list(_imap_fetch(session, plan.folder, chunk))
        high = max(chunk)

        def advance(s: Session, high: int = high) -> None:
            _save_checkpoint(s, account.key, plan.folder, plan.validity, high)

        _commit(store, org, pulled, advance, on_batch)
    session.close()
    return len(plan.uids)


def _fetch_items(session: imaplib.IMAP4, uids: list[int], items: str) -> list[object]:
    if not uids:
        return []
    wanted = ",".join(str(u) for u in uids)
    _, parts = _imap_ok(session, session.uid("FETCH", wanted, f"(UID {items})"), "FETCH")
    return parts


def _imap_fetch(session: imaplib.IMAP4, folder: str, uids: list[int]) -> Iterator[Pulled]:
    for part in _fetch_items(session, uids, "INTERNALDATE BODY.PEEK[]"):
        if not isinstance(part, tuple):
            continue  # the ")" closing each message
        head, raw = part
        uid, stamp = FETCH_ITEM.search(head), INTERNALDATE.search(head)
        if uid is None:
            continue
        received = _internaldate(stamp.group(1).decode()) if stamp else None
        yield Pulled(folder, int(uid.group(1)), raw, received or datetime.now(UTC))


def _checkpoint(session: Session, account: str, folder: str) -> tuple[int, int]:
    """(UIDVALIDITY, last UID stored) for the folder; (0, 0) before its first fetch."""
    row = session.get(FetchCheckpoint, (account, folder))
    return (row.uidvalidity, row.last_uid) if row else (0, 0)


def _save_checkpoint(session: Session, account: str, folder: str, validity: int, uid: int) -> None:
    row = session.get(FetchCheckpoint, (account, folder))
    if row is None:
        row = FetchCheckpoint(account=account, folder=folder, uidvalidity=validity, last_uid=uid)
        session.add(row)
    else:
        row.uidvalidity, row.last_uid = validity, uid


def _imap_ok(
    session: imaplib.IMAP4, answer: tuple[str, list[object]], what: str
) -> tuple[str, list[object]]:
    kind, data = answer
    if kind != "OK":
        raise FetchError(f"{what} failed: {_text(data)}")
    return kind, data


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _imap_date(moment: datetime) -> str:
    day = moment.astimezone(UTC)
    return f"{day.day}-{IMAP_MONTHS[day.month - 1]}-{day.year}"


def _internaldate(value: str) -> datetime | None:
    """`02-Dec-2026 01:47:15 +0000` (RFC 3501 date-time) as UTC."""
    day, _, rest = value.strip().partition("-")
    month, _, rest = rest.partition("-")
    if month not in IMAP_MONTHS:
        return None
    canonical = f"{int(day):02}-{IMAP_MONTHS.index(month) + 1:02}-{rest}"
    try:
        return datetime.strptime(canonical, "%d-%m-%Y %H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return None


def _text(data: object) -> str:
    if isinstance(data, list):
        return " ".join(_text(item) for item in data)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


# --- POP3 ------------------------------------------------------------------------------


class _pop3:
    """An authenticated POP3 session; ends with RSET and QUIT, so nothing is deleted."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.client: poplib.POP3 | None = None

    def __enter__(self) -> poplib.POP3:
        account = self.account
        where = f"{account.host}:{account.real_port}"
        try:
            if account.security is Security.TLS:
                client: poplib.POP3 = poplib.POP3_SSL(
                    account.host,
                    account.real_port,
                    context=account.tls_context(),
                    timeout=account.timeout,
                )
            else:
                client = poplib.POP3(account.host, account.real_port, timeout=account.timeout)
                if account.security is Security.STARTTLS:
                    client.stls(account.tls_context())
        except (OSError, poplib.error_proto) as exc:
            raise FetchError(f"cannot open a POP3 session with {where}: {exc}") from None
        self.client = client
        try:
            client.user(account.user)
            client.pass_(account.password)
        except poplib.error_proto:
            self._close()
            raise FetchError(f"{where} refused the login of {account.user}") from None
        return client

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.client is not None:
            try:
                self.client.rset()
                self.client.quit()
            except (OSError, poplib.error_proto):
                self.client.close()
            self.client = None


def _pop3_plan(
    store: Store, account: Account, session: poplib.POP3
) -> tuple[list[tuple[int, str]], datetime | None]:
    """The messages not stored yet (number, UIDL), and the earliest of their times."""
    _, listing, _ = session.uidl()
    numbered = [line.decode("ascii", "replace").split(maxsplit=1) for line in listing]
    stored = select(FetchedUidl.uidl).where(FetchedUidl.account == account.key)
    seen = set(store.transaction(lambda s: list(s.scalars(stored))))
    new = [(int(n), uidl) for n, uidl in numbered if uidl not in seen]
    times = [delivered_time(_pop3_read(session, number, 0)) for number, _ in new]
    return new, min((t for t in times if t is not None), default=None)


def _pop3_read(session: poplib.POP3, number: int, lines: int) -> bytes:
    """TOP: the header and `lines` lines of the body, without marking the message read."""
    _, found, _ = session.top(number, lines)
    return b"\r\n".join(found) + b"\r\n"


def _pop3_pull(
    store: Store,
    org: Org,
    account: Account,
    session: poplib.POP3,
    new: list[tuple[int, str]],
    window: Window,
    on_batch: OnBatch | None,
) -> int:
    done = 0
    for start in range(0, len(new), FETCH_BATCH):
        pulled = []
        for number, uidl in new[start : start + FETCH_BATCH]:
            raw = _pop3_read(session, number, ALL_LINES)
            received = delivered_time(raw) or datetime.now(UTC)
            if window.holds(received):
                pulled.append(Pulled("INBOX", uidl, raw, received))
        uidls = [str(p.uid) for p in pulled]

        def remember(s: Session, uidls: list[str] = uidls) -> None:
            s.add_all(FetchedUidl(account=account.key, uidl=u) for u in uidls)

        if pulled:
            _commit(store, org, pulled, remember, on_batch)
        done += len(pulled)
    return done
