"""Fault injection: a client that retries through chaos ends with every message stored once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from simulator.errors import ConfigError
from simulator.org import Org
from simulator.smtp.chaos import Chaos, Stage, parse_rule
from simulator.smtp.client import SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.smtp.server import ListenerOptions
from simulator.store.db import open_store
from simulator.store.models import Delivery
from tests.support.listeners import running_listener
from tests.support.mail import compose

RULES = ["connect:421:0.15", "mail:451:0.15", "rcpt:450:0.15", "data:451:0.25"]


def test_rules_parse_and_reject_nonsense() -> None:
    rule = parse_rule("DATA:451:0.25")
    assert (rule.stage, rule.code, rule.probability) == (Stage.DATA, 451, 0.25)
    assert rule.reply == "451 4.3.0 Injected fault at data (chaos)"
    assert parse_rule("rcpt:550:1").reply.startswith("550 5.3.0 ")
    for bad in ("data:451", "helo:451:0.1", "data:250:0.1", "data:451:1.5", "data:x:0.1"):
        with pytest.raises(ConfigError):
            parse_rule(bad)


def test_seeded_chaos_repeats() -> None:
    rules = [parse_rule("data:451:0.5")]
    rolls = [Chaos(rules, 7) for _ in range(2)]
    first = [rolls[0].fault(Stage.DATA) for _ in range(50)]
    assert first == [rolls[1].fault(Stage.DATA) for _ in range(50)]
    assert None in first and first.count(None) < 50  # some faults, not all
    assert Chaos([], 7).fault(Stage.DATA) is None


async def test_retrying_client_stores_every_message_once(db_url: str, org: Org) -> None:
    chaos = Chaos([parse_rule(r) for r in RULES], seed=11)
    store = open_store(db_url)
    options = ListenerOptions(port=0, chaos=chaos)
    sent = [f"chaos-{n}@chaos.test" for n in range(40)]
    attempts = 0
    async with running_listener(store, org, options) as listener:
        client = SmtpClient(timeout=10)
        for message_id in sent:
            raw = compose("c@customer.example", "chaos", message_id, to="support@acme.example")
            mail = MailFile(message_id, raw, "c@customer.example")
            code = 0
            while code != 250:
                attempts += 1
                reply = await asyncio.to_thread(
                    client.attempt, (listener.host, listener.port), mail, "support@acme.example"
                )
                code = reply.code
                assert code in (0, 250, 421, 450, 451), reply  # only what chaos injects
            client.close()  # a new connection per message, so `connect` faults get a chance
    with store.sessions() as session:
        rows = session.execute(select(Delivery.message_id, Delivery.outcome)).all()
    store.dispose()
    assert sorted(mid for mid, _ in rows) == sorted(sent)  # each once, none twice
    assert set(chaos.injected) == set(Stage)  # every stage really failed at least once
    assert attempts > len(sent)


def test_serve_refuses_a_bad_rule_in_one_line() -> None:
    from typer.testing import CliRunner

    from simulator.cli.app import app

    result = CliRunner().invoke(app, ["serve", "--port", "0", "--chaos", "helo:451:0.1"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: --chaos: chaos stage 'helo'")
    assert len(result.output.strip().splitlines()) == 1
