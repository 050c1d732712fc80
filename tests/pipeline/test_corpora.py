"""Real-world mail that nobody here wrote, through the real pipeline on real SQLite files.

The corpora live beside the repository in ../shared/corpora (their README says what each
set must produce); they are other projects' test data, read in place and never copied.
Each corpus goes through `simulator.pipeline.batch.ingest` into its own database with
the sample org, the way `intake-sim ingest FOLDER` reads it. Run with `-s` to see the
summary lines that the figures below are quoted from.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from simulator.domain import Outcome, Reason
from simulator.org import Org, load_org, sample_org_path
from simulator.pipeline.batch import file_submissions, ingest, prepare
from simulator.pipeline.intake import DeliveryResult, effective_message_id
from simulator.pipeline.parse import parse_message
from simulator.smtp.mailfiles import MailFile, envelope_sender
from simulator.store.db import Store
from simulator.store.models import Delivery, SeatEvent, User

ROOT = Path(__file__).resolve().parent.parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
SISIMAI = CORPORA / "sisimai" / "maildir"
ZAMMAD = CORPORA / "zammad"
MACHINE = {Reason.BOUNCE, Reason.AUTO_REPLY, Reason.COMPLAINT, Reason.LIST, Reason.NO_REPLY}

# Zammad fixtures whose sender we read differently from Zammad, each with the reason.
# (Zammad's from_email is compared with surrounding double quotes taken off: for mail035,
# whose whole From is one quoted address, Zammad keeps the quotes; we read the address.)
ZAMMAD_DISAGREEMENTS: dict[str, str] = {
    "mail044.box": "Claudia.Shu@yahoo.com. with a trailing dot: the same mailbox as without "
    "it (a fully qualified domain), so we drop the dot and it is one user; Zammad keeps it",
    "mail053.box": "From is MAILER-DAEMON with no domain: not an address, and with a null "
    "envelope the mail is filtered as a bounce with no sender",
    "mail071.box": "<power quadrant system@example.com> is not an address; Zammad keeps it "
    "whole, we never cut it down to system@example.com: no sender (quarantined, its MIME "
    "is broken too)",
    "mail076.box": '"Millions Lottery Spain transfer"@example.com> with a stray ">": Zammad '
    "keeps the bracket in the address, we find no usable address (quarantined no_sender)",
    "mail087.box": "From: Test test@example.com names no address (two words and no angle "
    "brackets); Zammad keeps both words, we do not pick one (quarantined no_sender)",
}

# Zammad fixtures whose subject we read differently, each with the reason.
ZAMMAD_SUBJECT_DISAGREEMENTS = {
    "mail018.box": "a UTF-7 encoded word: Zammad leaves '+ANw-' in the text, we decode it to 'Ü'",
}

pytestmark = pytest.mark.skipif(
    not CORPORA.is_dir(), reason=f"the real-world corpora are not at {CORPORA}"
)


@dataclass(frozen=True)
class Ingested:
    """One corpus after the pipeline: each file's result, and the database's users and seats."""

    results: dict[str, DeliveryResult]
    users_from_mail: int  # users created from a sender, not from the org file
    mail_seats: int  # seat events a delivery caused
    subjects: dict[str, str]  # each file's stored subject


def run_corpus(tmp_path: Path, name: str, mail: Sequence[MailFile]) -> Ingested:
    """Every file of a corpus through intake, one SQLite database per round.

    Some corpora reuse a Message-ID across files (Sisimai has one id in 21 files);
    in one database all but the first would be judged only as `duplicate`. So the
    Nth file carrying an id goes into round N's database, and every file is read.
    """
    rounds: dict[int, list[MailFile]] = {}
    seen: Counter[str] = Counter()
    for item in mail:
        ident = effective_message_id(parse_message(item.raw, item.envelope_from), item.raw)
        rounds.setdefault(seen[ident], []).append(item)
        seen[ident] += 1
    found: dict[str, DeliveryResult] = {}
    subjects: dict[str, str] = {}
    users = seats = 0
    for number, batch in sorted(rounds.items()):
        results, round_users, round_seats, by_id = _ingest_round(
            tmp_path / f"{name}-{number}.db", batch
        )
        for item, result in zip(batch, results, strict=True):
            found[_file_name(item.source)] = result
            subjects[_file_name(item.source)] = by_id[result.delivery_id]
        users, seats = users + round_users, seats + round_seats
    return Ingested({n: found[n] for n in sorted(found)}, users, seats, subjects)


def _ingest_round(
    path: Path, mail: list[MailFile]
) -> tuple[list[DeliveryResult], int, int, dict[int, str]]:
    org: Org = load_org(sample_org_path())
    store = Store(f"sqlite:///{path}")
    try:
        prepare(store, org)
        results: list[DeliveryResult] = []
        ingest(store, org, file_submissions(mail, org), on_batch=results.extend)
        with store.sessions() as session:
            users = session.scalar(select(func.count(User.id)).where(User.origin != "directory"))
            seats = session.scalar(
                select(func.count(SeatEvent.seq)).where(SeatEvent.delivery_id.is_not(None))
            )
            rows = session.execute(select(Delivery.id, Delivery.subject))
            subjects = {delivery_id: subject for delivery_id, subject in rows}
    finally:
        store.dispose()
    return results, users or 0, seats or 0, subjects


def read_files(paths: Sequence[Path]) -> list[MailFile]:
    """Each file as one message, its mbox From_ line giving the envelope when there is one.

    Not `load_mail`: these files are single messages, and some hold an unescaped
    "From " line in their body that an mbox reader would take for a second message.
    """
    found = []
    for path in paths:
        raw = path.read_bytes()
        mbox_from = None
        if raw.startswith(b"From "):
            first, _, raw = raw.partition(b"\n")
            mbox_from = first[5:].decode("utf-8", "replace")
        found.append(MailFile(str(path), raw, envelope_sender(raw, mbox_from)))
    return found


def _file_name(source: str) -> str:
    return Path(source).name


def _is_machine(result: DeliveryResult) -> bool:
    return result.outcome is Outcome.FILTERED and result.reason in MACHINE


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


def _corpus(factory: pytest.TempPathFactory, folder: Path, pattern: str) -> Ingested:
    if not folder.is_dir():
        pytest.skip(f"the corpus folder {folder} is not there")
    files = read_files(sorted(folder.glob(pattern)))
    return run_corpus(factory.mktemp(folder.name), folder.name, files)


@pytest.fixture(scope="module")
def sisimai(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    return _corpus(tmp_path_factory, SISIMAI / "bsd", "*.eml")


@pytest.fixture(scope="module")
def sisimai_not(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    return _corpus(tmp_path_factory, SISIMAI / "not", "*.eml")


@pytest.fixture(scope="module")
def zammad(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    return _corpus(tmp_path_factory, ZAMMAD / "mail", "*.box")


def _is_dsn(name: str) -> bool:
    return not name.startswith(("arf-", "rfc3834-"))


def test_sisimai_bounces_are_filtered_and_bill_nobody(sisimai: Ingested) -> None:
    results = sisimai.results
    dsns = [r for name, r in results.items() if _is_dsn(name)]
    bounces = sum(1 for r in dsns if r.outcome is Outcome.FILTERED and r.reason == Reason.BOUNCE)
    machine = sum(1 for r in results.values() if _is_machine(r))
    outcomes = Counter(f"{r.outcome.value}/{r.reason}" for r in results.values())
    print(
        f"\nsisimai bsd: bounce {_share(bounces, len(dsns))} of DSNs; machine mail "
        f"{_share(machine, len(results))} of files; users {sisimai.users_from_mail}, "
        f"seats {sisimai.mail_seats}; outcomes {dict(outcomes.most_common())}"
    )
    missed = sorted(name for name, r in results.items() if not _is_machine(r))
    print("not machine mail:", " ".join(f"{n}={results[n].reason}" for n in missed))
    assert bounces >= 0.98 * len(dsns)
    assert machine >= 0.98 * len(results)
    assert (sisimai.users_from_mail, sisimai.mail_seats) == (0, 0)


def test_sisimai_complaints_and_auto_replies_have_their_own_reason(sisimai: Ingested) -> None:
    for name, result in sisimai.results.items():
        if name.startswith("arf-"):
            assert result.reason == Reason.COMPLAINT, name
        elif name.startswith("rfc3834-"):
            assert result.reason == Reason.AUTO_REPLY, name


def test_sisimai_non_bounces_are_still_issues(sisimai_not: Ingested) -> None:
    results = sisimai_not.results
    print("\nsisimai not/:", {name: f"{r.outcome.value}/{r.reason}" for name, r in results.items()})
    for name, result in results.items():
        if name.startswith("is-not-bounce"):
            assert result.outcome is Outcome.CREATED_ISSUE, name
    assert results["rb-issue-368-bug.eml"].reason == Reason.BOUNCE


def test_zammad_senders_agree(zammad: Ingested) -> None:
    expected = json.loads((ZAMMAD / "expected.json").read_text(encoding="utf-8"))
    differ = {
        name: (result.sender, expected[name]["from_email"])
        for name, result in zammad.results.items()
        if (result.sender or "").lower() != str(expected[name]["from_email"]).strip('"').lower()
    }
    agree = len(zammad.results) - len(differ)
    other_subjects = {
        name
        for name, subject in zammad.subjects.items()
        if " ".join(str(expected[name]["subject"] or "").split()) != subject
    }
    print(
        f"\nzammad: sender agrees on {agree}/{len(zammad.results)}, "
        f"subject on {len(zammad.subjects) - len(other_subjects)}/{len(zammad.subjects)}"
    )
    for name, (ours, theirs) in sorted(differ.items()):
        print(f"  {name}: ours={ours!r} zammad={theirs!r} {zammad.results[name].reason}")
    assert len(zammad.results) == 106
    assert agree >= 101
    assert set(differ) == set(ZAMMAD_DISAGREEMENTS)
    assert other_subjects == set(ZAMMAD_SUBJECT_DISAGREEMENTS)
