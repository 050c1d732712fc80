"""Org-file policies over real SMTP: unknown senders, Cc creation, noise billing, directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from simulator.domain import Origin
from simulator.org import load_org
from simulator.pipeline.ledger import reconcile_directory
from simulator.reports import rows, summary
from simulator.store.db import open_store
from simulator.store.models import User
from tests.support.listeners import Listener
from tests.support.mail import compose


def outcomes(listener: Listener) -> list[tuple[str, str | None]]:
    with listener.store.sessions() as session:
        return [(r["outcome"], r["reason"]) for r in rows.messages(session)]


def user_rows(listener: Listener) -> dict[str, dict]:
    with listener.store.sessions() as session:
        return {u["email"]: u for u in rows.users(session)}


async def send_all(listener: Listener, *messages: bytes) -> None:
    for raw in messages:
        code, reply = await listener.send(raw, rcpt=listener.org.intake_addresses[0])
        assert code == 250, reply


@pytest.mark.org("strict.toml")
async def test_existing_only_refuses_strangers_but_not_colleagues(listener: Listener) -> None:
    await send_all(
        listener,
        compose("stranger@out.test", "Hi", "s1@out.test", to="help@strict.test"),
        compose(
            "colleague@strict.test",
            "VPN",
            "s2@strict.test",
            to="help@strict.test",
            headers={"Cc": "stranger2@out.test, mate@strict.test"},
        ),
        compose("amy@strict.test", "Logged for a caller", "s3@strict.test", to="help@strict.test"),
    )
    assert outcomes(listener) == [
        ("filtered", "unknown_sender"),
        ("created_issue", None),
        ("created_issue", None),
    ]
    users = user_rows(listener)
    # The stranger and the stranger on Cc are not created; the colleague on Cc is.
    assert set(users) == {"amy@strict.test", "colleague@strict.test", "mate@strict.test"}
    assert users["mate@strict.test"]["origin"] == Origin.CC
    assert users["mate@strict.test"]["team_seat"] is True
    with listener.store.sessions() as session:
        report = summary.report(session, listener.org)
    # Support: amy. Team: amy + colleague + mate. 30 vs 15.
    assert (report["support"]["seats"], report["team"]["seats"]) == (1, 3)
    assert (report["support"]["cost"], report["team"]["cost"]) == (30.0, 15.0)
    assert report["team"]["noise_senders_filtered"] == 1
    assert report["cheaper_model"] == "team"
    assert report["recommended_model"] == "team"  # no customer got in


@pytest.mark.org("shared.toml")
async def test_shared_user_maps_all_strangers_to_one_seat(listener: Listener) -> None:
    await send_all(
        listener,
        *(
            compose(f"c{n}@out{n}.test", f"Q{n}", f"q{n}@out.test", to="help@shared.test")
            for n in range(4)
        ),
    )
    users = user_rows(listener)
    assert set(users) == {"amy@shared.test", "customers@shared.test"}
    shared = users["customers@shared.test"]
    assert (shared["origin"], shared["role"], shared["messages"]) == ("shared", "customer", 4)
    with listener.store.sessions() as session:
        reasons = [e["reason"] for e in rows.ledger(session, "team")]
    assert reasons == ["directory_login", "shared_user"]


@pytest.mark.org("ccdesk.toml")
async def test_cc_creation_is_capped_and_noise_senders_are_billed(listener: Listener) -> None:
    cc = "a@c.test, b@c.test, c@c.test, noreply@c.test, help@ccdesk.test"
    await send_all(
        listener,
        compose("boss@c.test", "Outage", "cc1@c.test", to="help@ccdesk.test", headers={"Cc": cc}),
        compose(
            "ooo@elsewhere.test",
            "Away",
            "cc2@elsewhere.test",
            to="help@ccdesk.test",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    users = user_rows(listener)
    # sender + 2 of the Cc'd (cap 2; the intake address and noreply are never users)
    assert {"boss@c.test", "a@c.test", "b@c.test"} <= set(users)
    assert "c@c.test" not in users and "noreply@c.test" not in users
    assert users["ooo@elsewhere.test"]["team_seat"] is True
    assert outcomes(listener)[1] == ("filtered", "auto_reply")
    with listener.store.sessions() as session:
        reasons = sorted(e["reason"] for e in rows.ledger(session, "team"))
    assert reasons == ["cc_created", "cc_created", "directory_login", "first_email", "noise_sender"]


def test_directory_changes_give_plus_and_minus_events(tmp_path: Path) -> None:
    before = tmp_path / "before.toml"
    after = tmp_path / "after.toml"
    head = '[organization]\nintake_addresses = ["help@d.test"]\ninternal_domains = ["d.test"]\n'
    before.write_text(head + '[[agents]]\nemail = "a@d.test"\n[[agents]]\nemail = "b@d.test"\n')
    after.write_text(
        head + '[[agents]]\nemail = "a@d.test"\n'
        '[[employees]]\nemail = "b@d.test"\nlogs_in = true\n'
        '[[employees]]\nemail = "n@d.test"\nlogs_in = false\n'
    )
    store = open_store(f"sqlite:///{tmp_path / 'dir.db'}")
    with store.sessions.begin() as session:
        first = reconcile_directory(session, load_org(before), _now())
    with store.sessions.begin() as session:
        again = reconcile_directory(session, load_org(before), _now())
    with store.sessions.begin() as session:
        changed = reconcile_directory(session, load_org(after), _now())
    assert sorted(str(c) for c in first) == sorted(
        ["support+1(directory_agent)", "team+1(directory_login)"] * 2
    )
    assert again == []  # reloading an unchanged file changes nothing
    # b is demoted to employee (still logs in): loses the Support seat only; n does not log in.
    assert [(c.user, str(c)) for c in changed] == [("b@d.test", "support-1(role_changed)")]
    removed = tmp_path / "removed.toml"
    removed.write_text(head + '[[agents]]\nemail = "a@d.test"\n')
    with store.sessions.begin() as session:
        gone = reconcile_directory(session, load_org(removed), _now())
        b = session.scalars(select(User).where(User.email == "b@d.test")).one()
        assert (b.in_directory, b.role) == (False, "employee")
    assert [(c.user, str(c)) for c in gone] == [("b@d.test", "team-1(directory_removed)")]
    store.dispose()


def _now() -> datetime:
    return datetime.now(UTC)
