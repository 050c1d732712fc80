"""Counting rules decided at intake, through the real pipeline into a real database
(an SQLite file, and PostgreSQL when INTAKE_SIM_TEST_PG names a server):
plus addresses and aliases are one person (one user, one seat, one flood count),
a free system account is never a user, a billed one and light agents past the
plan's allowance are agent seats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulator.domain import Channel, Submission
from simulator.org import Org, load_org
from simulator.pipeline.batch import ingest, prepare
from simulator.reports import rows, summary
from simulator.store.db import Store
from tests.support.databases import BACKENDS, fresh_database
from tests.support.mail import compose

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
ORG = """
[organization]
name = "Merge Desk"
intake_addresses = ["desk@m.test"]
internal_domains = ["m.test"]

[identity]
merge_plus_addresses = true

[intake]
noise_creates_users = true       # even then a free system account is no user
flood_limit = 3
create_users_from_cc = true

[pricing]
light_agents_free = 1

[[agents]]
email = "ava@m.test"
aliases = ["ava.agent@old-m.test"]

[[agents]]
email = "lee@m.test"
light = true

[[agents]]
email = "lou@m.test"
light = true

[[system_accounts]]
email = "system@m.test"

[[system_accounts]]
email = "admin@m.test"
billed = true
"""


@pytest.fixture(params=BACKENDS)
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Org]]:
    path = tmp_path / "org.toml"
    path.write_text(ORG, encoding="utf-8")
    org = load_org(path)
    with fresh_database(request.param, tmp_path) as url:
        store = Store(url)
        prepare(store, org, AT)
        yield store, org
        store.dispose()


def send(store: Store, org: Org, *messages: bytes) -> None:
    items = [
        Submission(raw, None, ["desk@m.test"], AT + timedelta(minutes=n), Channel.INGEST)
        for n, raw in enumerate(messages, start=1)
    ]
    ingest(store, org, items)


def test_plus_addresses_and_aliases_are_one_person(desk: tuple[Store, Org]) -> None:
    store, org = desk
    send(
        store,
        org,
        compose("jo+billing@c.test", "Invoice", "1@c.test", to="desk@m.test"),
        compose("JO@C.test", "Again", "2@c.test", to="desk@m.test"),
        compose(
            "ava.agent@old-m.test",
            "From my old address",
            "3@c.test",
            to="desk@m.test",
            headers={"Cc": "jo+other@c.test, kim+x@c.test"},
        ),
    )
    with store.sessions() as session:
        users = {u["email"]: u for u in rows.users(session)}
        messages = rows.messages(session)
    assert "jo+billing@c.test" not in users and "ava.agent@old-m.test" not in users
    assert users["jo@c.test"]["messages"] == 2 and users["jo@c.test"]["team_seat"]
    assert users["ava@m.test"]["messages"] == 1 and users["ava@m.test"]["role"] == "agent"
    assert "kim@c.test" in users  # Cc creation sees the person, not the tag
    assert [m["sender"] for m in messages] == ["jo@c.test", "jo@c.test", "ava@m.test"]


def test_the_flood_guard_counts_a_person_across_plus_tags(desk: tuple[Store, Org]) -> None:
    store, org = desk
    send(store, org, *(compose(f"bot+{n}@c.test", "spam", f"f{n}@c.test") for n in range(5)))
    with store.sessions() as session:
        reasons = [m["reason"] for m in rows.messages(session)]
    assert reasons == [None, None, None, "flood", "flood"]  # flood_limit = 3


def test_system_accounts_and_light_agents(desk: tuple[Store, Org]) -> None:
    store, org = desk
    send(store, org, compose("system@m.test", "Nightly export done", "s1@m.test"))
    with store.sessions() as session:
        users = {u["email"]: u for u in rows.users(session)}
        (message,) = rows.messages(session)
        report = summary.report(session, org, AT + timedelta(hours=1))
    assert (message["outcome"], message["reason"]) == ("filtered", "system_account")
    assert "system@m.test" not in users  # not even under noise_creates_users
    assert users["admin@m.test"]["support_seat"] and users["admin@m.test"]["team_seat"]
    # One light agent is free under Support (the allowance is 1); the other is billed.
    assert [users[a]["support_seat"] for a in ("lee@m.test", "lou@m.test")] == [False, True]
    assert users["lee@m.test"]["team_seat"]  # light agents log in: a Team user
    assert report["support"]["seats"] == 3  # ava, lou (past the allowance), the admin
    assert report["team"]["seats"] == 4  # everyone in the directory logs in
