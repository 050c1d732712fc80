"""Who a sender is: `ava@acme.example.` is ava, and postmaster at an intake domain
takes mail (RFC 5321 4.5.1) without it counting as a support request."""

from __future__ import annotations

import asyncio
import smtplib

from sqlalchemy import select

from simulator.pipeline.parse import mailbox_key, normalise_address
from simulator.store.models import Delivery, User
from tests.support.listeners import Listener
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
