"""Who a sender is: `ava@acme.example.` is ava, and postmaster at an intake domain
takes mail (RFC 5321 4.5.1) without it counting as a support request."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from simulator.errors import OrgFileError
from simulator.org import load_org, sample_org_path
from simulator.pipeline.parse import mailbox_key, normalise_address
from simulator.reports import rows
from simulator.store.db import open_store
from simulator.store.models import Delivery, User
from tests.support.listeners import Listener, running_listener
from tests.support.mail import compose


def test_a_trailing_dot_names_the_same_mailbox() -> None:
    assert normalise_address("Ava@Acme.Example.") == "ava@acme.example"
    assert normalise_address("<ava@acme.example.>") == "ava@acme.example"
    assert normalise_address("ava@.") is None
    assert mailbox_key("wendy+7@portal.example") == "wendy@portal.example"
    assert mailbox_key("+only@portal.example") == "+only@portal.example"


async def test_a_trailing_dot_makes_no_second_user(listener: Listener) -> None:
    for sender in ("ava@customer.example", "ava@customer.example."):
        # aiosmtpd refuses the dot in MAIL FROM; a From header carries it through.
        code, _ = await listener.send(compose(sender, f"from {sender}"))
        assert code == 250
    with listener.store.sessions() as session:
        emails = session.scalars(select(User.email).where(User.email.like("ava@customer%"))).all()
    assert emails == ["ava@customer.example"]


def _rcpt(host: str, port: int, recipients: list[str]) -> list[int]:
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.ehlo("tests.localhost")
        client.mail("someone@customer.example")
        codes = [client.rcpt(r)[0] for r in recipients]
        client.rset()
    return codes


async def test_postmaster_is_accepted_and_kept_uncounted(listener: Listener) -> None:
    wanted = ["postmaster@acme.example", "Postmaster", "PostMaster@ACME.example"]
    refused = ["postmaster@elsewhere.example", "postmistress@acme.example"]
    codes = await asyncio.to_thread(_rcpt, listener.host, listener.port, wanted + refused)
    assert codes == [250, 250, 250, 550, 550]

    raw = compose("stranger@customer.example", "Your server is misconfigured")
    code, _ = await listener.send(raw, rcpt="postmaster@acme.example")
    assert code == 250
    with listener.store.sessions() as session:
        [delivery] = session.scalars(select(Delivery)).all()
        users = session.scalars(select(User.email)).all()
        assert (delivery.outcome, delivery.reason) == ("filtered", "postmaster")
        assert delivery.issue_number is None and b"misconfigured" in delivery.raw
    assert "stranger@customer.example" not in users


IDENTITY = """
[identity]
verify_roles = ["agent"]
authserv_ids = ["mx.acme.example"]
trusted_relays = ["127.0.0.2"]
"""


def _send_from(host: str, port: int, raw: bytes, source: str) -> int:
    with smtplib.SMTP(host, port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("tests.localhost")
        client.mail("ava@acme.example")
        client.rcpt("support@acme.example")
        return client.data(raw)[0]


async def test_an_agent_is_believed_only_with_proof(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "org.toml"
    path.write_text(sample_org_path().read_text(encoding="utf-8") + IDENTITY, encoding="utf-8")
    org = load_org(path)
    store = open_store(sqlite_url)
    cases = {
        "forged": ({}, "127.0.0.1"),
        "foreign authserv": (
            {"Authentication-Results": "attacker.example; dmarc=pass header.from=acme.example"},
            "127.0.0.1",
        ),
        "other domain": (
            {"Authentication-Results": "mx.acme.example; dkim=pass header.d=evil.example"},
            "127.0.0.1",
        ),
        "dmarc pass": (
            {
                "Authentication-Results": "mx.acme.example (border); spf=fail; dmarc=pass "
                "(p=reject) header.from=acme.example"
            },
            "127.0.0.1",
        ),
        "dkim pass": (
            {"Authentication-Results": "MX.acme.example; dkim=pass header.d=acme.example"},
            "127.0.0.1",
        ),
        "relay": ({}, "127.0.0.2"),
    }
    try:
        async with running_listener(store, org) as listener:
            for subject, (headers, source) in cases.items():
                raw = compose("Ava <ava@acme.example>", subject, headers=headers)
                code = await asyncio.to_thread(
                    _send_from, listener.host, listener.port, raw, source
                )
                assert code == 250, subject
            code, _ = await listener.send(compose("cara@customer.example", "customer"))
            assert code == 250
        with store.sessions() as session:
            listed = rows.messages(session)  # what `messages --format json` and the API show
    finally:
        store.dispose()
    got = {m["subject"]: (m["outcome"], m["reason"], m["sender_trust"], m["peer"]) for m in listed}
    unverified = ("filtered", "unverified_sender", "unverified", "127.0.0.1")
    assert got["forged"] == got["foreign authserv"] == got["other domain"] == unverified
    assert got["dmarc pass"] == ("created_issue", None, "authenticated", "127.0.0.1")
    assert got["dkim pass"] == ("created_issue", None, "authenticated", "127.0.0.1")
    assert got["relay"] == ("created_issue", None, "relay", "127.0.0.2")
    assert got["customer"] == ("created_issue", None, "", "127.0.0.1")


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('verify_roles = ["agent"]', "needs authserv_ids or trusted_relays"),
        ('verify_roles = ["boss"]\nauthserv_ids = ["mx"]', "not one of"),
        ('trusted_relays = ["mx.acme.example"]', "not an IP address or network"),
        ("trust = 1", "unknown key"),
    ],
)
def test_identity_table_errors(tmp_path: Path, table: str, error: str) -> None:
    path = tmp_path / "org.toml"
    path.write_text(
        sample_org_path().read_text(encoding="utf-8") + "\n[identity]\n" + table + "\n",
        encoding="utf-8",
    )
    with pytest.raises(OrgFileError, match=error):
        load_org(path)
