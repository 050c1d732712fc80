"""The rules behind automatic email, without SMTP: org file, signatures, message building,
and who may receive mail under each unknown-sender policy (through the real pipeline)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from simulator.domain import Submission
from simulator.errors import OrgFileError
from simulator.org import load_org
from simulator.pipeline.batch import prepare, write_batch
from simulator.pipeline.notify import NotificationKind, Outgoing, message_bytes, tagged_subject
from simulator.pipeline.parse import parse_message
from simulator.pipeline.signing import MessageIdSigner
from simulator.reports import rows
from simulator.store.db import open_store
from simulator.store.models import Issue
from tests.support.mail import compose as compose_mail
from tests.support.samples import org_file

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def write_org(tmp_path: Path, extra: str, intake: str = "") -> Path:
    path = tmp_path / "org.toml"
    path.write_text(
        '[organization]\nname = "T"\nintake_addresses = ["desk@t.test"]\n'
        f"[intake]\n{intake}\n{extra}\n",
        encoding="utf-8",
    )
    return path


def test_notify_table_defaults_and_absence(tmp_path: Path) -> None:
    assert not load_org(write_org(tmp_path, "")).notify.enabled
    policy = load_org(write_org(tmp_path, "[notify]")).notify
    assert policy.acknowledge and not policy.notify_participants_on_reply
    assert (policy.from_address, policy.per_recipient_cap, policy.cap_window_hours) == (
        "desk@t.test",
        10,
        3.0,
    )


@pytest.mark.parametrize(
    "table",
    [
        "[notify]\nfrom_address = 'not an address'",
        "[notify]\nper_recipient_cap = -1",
        "[notify]\ncap_window_hours = 0",
        "[notify]\nsigning_key = 'short'",
        "[notify]\nacknowledge = 'yes'",
        "[notify]\nacknowledgement = true",
    ],
)
def test_notify_table_errors(tmp_path: Path, table: str) -> None:
    with pytest.raises(OrgFileError, match="notify"):
        load_org(write_org(tmp_path, table))


def test_signed_ids_verify_and_forgeries_do_not() -> None:
    signer = MessageIdSigner(b"k" * 32, "ours.test")
    other = MessageIdSigner(b"x" * 32, "ours.test")
    minted = signer.new_id(42)
    assert minted != signer.new_id(42)  # a fresh nonce every time
    assert signer.issue_of(minted) == 42
    assert signer.issue_of(minted.upper().replace("OURS.TEST", "ours.test")) is None
    assert other.issue_of(minted) is None  # another installation's key
    assert signer.issue_of(minted.replace("issue-42.", "issue-43.")) is None
    assert signer.issue_of(minted.replace("@ours.test", "@theirs.test")) is None
    assert signer.issue_of("issue-42.notify-1.1741183800@ours.test") is None


def test_tagged_subject_adds_one_tag_and_cleans() -> None:
    assert tagged_subject(3, "Printer") == "[Issue #3] Printer"
    assert tagged_subject(3, "Re: [Issue #3] Printer") == "Re: [Issue #3] Printer"
    assert tagged_subject(3, "  ") == "[Issue #3] (no subject)"
    assert tagged_subject(3, "a\r\nBcc: victim@x\u2028b") == "[Issue #3] a Bcc: victim@x b"


def test_compose_never_lets_a_subject_add_a_header() -> None:
    mail = parse_message(compose_mail("ann@cust.test", "placeholder", "m1@cust.test"), None)
    hostile = replace(mail, subject="Help\r\nBcc: victim@x", sender_name="Ann\r\nX-Evil: 1")
    issue = Issue(number=7, subject="Help\r\nBcc: victim@x", submitter_id=1, created_at=AT)
    org = load_org(org_file("initech.toml"))
    outgoing = Outgoing(
        NotificationKind.ACKNOWLEDGEMENT, issue, "ann@cust.test", "Ann\nBcc: v@x", hostile, "m1"
    )
    raw, subject = message_bytes(org, outgoing, "id-1@notify.initech.test", AT)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert str(parsed["Subject"]) == subject == "[Issue #7] Help Bcc: victim@x"
    assert parsed["To"].addresses[0].addr_spec == "ann@cust.test"
    # And the policy is the last line of defence: a raw CR/LF in a header is refused.
    message = EmailMessage(policy=SMTP)
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        message["Subject"] = "Help\r\nBcc: victim@x"


@pytest.mark.parametrize(
    ("policy_line", "acknowledged", "users"),
    [
        ('unknown_senders = "create"', ["ann@cust.test"], {"ann@cust.test"}),
        # Only users get mail; these policies make no user of a stranger.
        ('unknown_senders = "existing_only"', [], set()),
        (
            'unknown_senders = "shared_user"\nshared_user = "all@t.test"',
            [],
            {"all@t.test"},
        ),
    ],
)
def test_who_may_receive_mail_follows_the_unknown_sender_policy(
    tmp_path: Path, policy_line: str, acknowledged: list[str], users: set[str]
) -> None:
    org = load_org(write_org(tmp_path, "[notify]", intake=policy_line))
    store = open_store(f"sqlite:///{tmp_path / 'intake.db'}")
    prepare(store, org)
    raw = compose_mail("ann@cust.test", "Printer", "m1@cust.test", to="desk@t.test")
    write_batch(store, org, [Submission(raw, "ann@cust.test", ["desk@t.test"], AT)])
    with store.read() as session:
        assert [r["recipient"] for r in rows.outbox(session)] == acknowledged
        assert {u["email"] for u in rows.users(session)} == users
    store.dispose()
