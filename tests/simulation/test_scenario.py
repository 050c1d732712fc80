"""A scenario on another org than the sample, with seats and costs worked by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from simulator.reports import summary
from simulator.reports.rows import messages
from tests.support.listeners import Listener
from tests.support.mail import compose

pytestmark = pytest.mark.org("globex.toml")

# Globex: 2 agents (hank, frank), lisa (employee, logs in), otto (employee, no login).
# Support 40.00 EUR per agent, Team 12.00 EUR per user.
TRAFFIC = [
    # (envelope sender, message, expected outcome)
    ("ann@cust.test", compose("Ann <ann@cust.test>", "Printer", "m1@cust.test"), "created_issue"),
    (
        "ann@cust.test",
        compose(
            "ann@cust.test",
            "Re: Printer",
            "m2@cust.test",
            headers={"In-Reply-To": "<m1@cust.test>"},
        ),
        "threaded",
    ),
    ("ANN@Cust.Test", compose("ANN@Cust.Test", "Another", "m3@cust.test"), "created_issue"),
    ("bob@cust.test", compose("bob@cust.test", "Login fails", "m4@cust.test"), "created_issue"),
    # cat answers bob's thread: her References name it (a bare tag from someone
    # outside issue 3 would open a new one)
    (
        "cat@other.test",
        compose(
            "cat@other.test",
            "Re: [Issue #3] more",
            "m5@other.test",
            headers={"References": "<m4@cust.test>"},
        ),
        "threaded",
    ),
    ("dan@other.test", compose("dan@other.test", "Invoice", "m6@other.test"), "created_issue"),
    ("eve@third.test", compose("eve@third.test", "Refund", "m7@third.test"), "created_issue"),
    # duplicate of m4: no new issue, no seat
    ("bob@cust.test", compose("bob@cust.test", "Login fails", "m4@cust.test"), "duplicate"),
    # noise from two senders nobody knows: filtered, not billed
    (
        "ooo@away.test",
        compose(
            "ooo@away.test",
            "Out of office",
            "m8@away.test",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        "filtered",
    ),
    ("", compose("MAILER-DAEMON@mx.cust.test", "Undelivered", "m9@mx.cust.test"), "filtered"),
    # otto does not log in: his first email makes him a Team user
    ("otto@globex.test", compose("otto@globex.test", "Laptop", "m10@globex.test"), "created_issue"),
    # an employee outside the directory, on the internal domain
    (
        "newbie@globex.test",
        compose("newbie@globex.test", "VPN", "m11@globex.test"),
        "created_issue",
    ),
    # an agent logs a request for a customer: no new seat
    (
        "hank@globex.test",
        compose("hank@globex.test", "Call from ann", "m12@globex.test"),
        "created_issue",
    ),
]


async def test_hand_worked_seats_and_costs(listener: Listener) -> None:
    before_traffic = datetime.now(UTC)
    await asyncio.sleep(0.01)
    for envelope, raw, _ in TRAFFIC:
        code, reply = await listener.send(raw, mail_from=envelope, rcpt="desk@globex.test")
        assert code == 250, reply
    with listener.store.sessions() as session:
        outcomes = [row["outcome"] for row in messages(session)]
        report = summary.report(session, listener.org)
        early = summary.report(session, listener.org, as_of=before_traffic)
    assert outcomes == [expected for _, _, expected in TRAFFIC]

    # Support: the 2 agents. 2 x 40 = 80.
    assert report["support"] == {"seats": 2, "unit_price": 40.0, "cost": 80.0}
    # Team: 2 agents + lisa (logs in) + ann, bob, cat, dan, eve + otto + newbie = 10.
    # 10 x 12 = 120.
    assert report["team"]["seats"] == 10
    assert report["team"]["cost"] == 120.0
    # ooo@away.test and mailer-daemon@mx.cust.test: seats an unfiltered system adds.
    assert report["team"]["noise_senders_filtered"] == 2
    # Team stays no dearer than Support up to floor(80 / 12) = 6 users.
    assert report["breakeven_team_seats"] == 6
    assert report["cheaper_model"] == "support"
    assert report["recommended_model"] == "support"
    assert "5 customer(s) submitted issues by email" in report["reasons"][0]
    assert report["deliveries"] == {
        "accepted": 13,
        "created_issue": 8,
        "threaded": 2,
        "duplicate": 1,
        "filtered": 2,
        "quarantined": 0,
    }
    # users: 2 agents; lisa, otto, newbie; ann, bob, cat, dan, eve
    assert report["users"] == {"agent": 2, "employee": 3, "customer": 5}

    # Before any mail: only the directory's seats (2 agents; 2 agents + lisa).
    assert early["support"]["seats"] == 2
    assert early["team"]["seats"] == 3
    assert early["team"]["cost"] == 36.0
    assert early["cheaper_model"] == "team"
    assert early["recommended_model"] == "team"


async def test_flood_guard_filters_beyond_the_limit(listener: Listener) -> None:
    # flood_limit = 3 per 60 minutes: the 4th and 5th mails are filtered as flood.
    for n in range(5):
        raw = compose("loud@cust.test", f"Ping {n}", f"flood{n}@cust.test")
        code, _ = await listener.send(raw, mail_from="loud@cust.test", rcpt="desk@globex.test")
        assert code == 250
    with listener.store.sessions() as session:
        rows = messages(session)
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("created_issue", None),
        ("created_issue", None),
        ("created_issue", None),
        ("filtered", "flood"),
        ("filtered", "flood"),
    ]
