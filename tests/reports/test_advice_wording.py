"""The advice's words against what the ledger holds: web-form submitters, strangers
behind a shared account, billed noise, and `users --org` under first_login."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.domain import Channel, Submission
from simulator.org import Org, load_org
from simulator.pipeline.batch import ingest, prepare
from simulator.reports import summary
from simulator.store.db import open_store
from tests.support.mail import compose

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
HEAD = """
[organization]
name = "Wording"
internal_domains = ["acme.example"]
intake_addresses = ["support@acme.example"]

[[agents]]
email = "ava@acme.example"

[pricing]
team_per_user = 10.0
team_shape = "graduated"
team_bands = [{ up_to = 2, price = 10.0 }, { price = 6.0 }]
"""


def org_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(HEAD + extra, encoding="utf-8")
    return path


def run(tmp_path: Path, org: Org, mails: list[tuple[str, Channel]], raw: list[bytes] = ()) -> str:
    url = f"sqlite:///{tmp_path / 'wording.db'}"
    store = open_store(url)
    prepare(store, org, START)
    submissions = [
        Submission(
            compose(sender, f"Help {n}", f"w{n}@test", to="support@acme.example"),
            sender,
            ["support@acme.example"],
            START + timedelta(minutes=n),
            channel,
        )
        for n, (sender, channel) in enumerate(mails)
    ]
    submissions += [
        Submission(r, "", ["support@acme.example"], START + timedelta(hours=1)) for r in raw
    ]
    ingest(store, org, submissions)
    store.dispose()
    return url


def report(url: str, org: Org) -> dict:
    store = open_store(url)
    try:
        with store.read() as session:
            return summary.report(session, org, START + timedelta(days=1))
    finally:
        store.dispose()


def test_web_form_submitters_are_not_called_email_and_log_in(tmp_path: Path) -> None:
    path = org_file(tmp_path, '[licensing]\nteam_counts_from = "first_login"\n')
    org = load_org(path)
    mails = [
        ("ann@cust.example", Channel.SMTP),
        ("bob@cust.example", Channel.WEB_FORM),
        ("cat@cust.example", Channel.WEB_FORM),
    ]
    url = run(tmp_path, org, mails)
    data = report(url, org)
    assert data["reasons"][0].startswith(
        "1 customer(s) submitted issues by email and 2 customer(s) submitted issues "
        "through the web form"
    )
    # first_login: the agent and the two portal users; Ann, email only, is free.
    assert data["team"]["seats"] == 3
    assert data["team"]["cost"] == 26.0  # graduated: 10 + 10 + 6
    listing = CliRunner().invoke(app, ["users", "--db", url, "--org", str(path), "-f", "json"])
    assert listing.exit_code == 0, listing.output
    team = {u["email"]: u["team_seat"] for u in json.loads(listing.stdout)}
    assert team["ann@cust.example"] is False
    assert team["bob@cust.example"] is True and team["cat@cust.example"] is True
    plain = CliRunner().invoke(app, ["users", "--db", url, "-f", "json"])
    # Read with the sample org's rules (first_email), Ann holds the seat the ledger wrote.
    assert {u["email"]: u["team_seat"] for u in json.loads(plain.stdout)}["ann@cust.example"]


def test_shared_account_names_its_strangers(tmp_path: Path) -> None:
    org = load_org(
        org_file(
            tmp_path,
            '[intake]\nunknown_senders = "shared_user"\nshared_user = "all@acme.example"\n',
        )
    )
    mails = [(f"s{n}@far{n}.example", Channel.SMTP) for n in range(5)]
    data = report(run(tmp_path, org, mails), org)
    first = data["reasons"][0]
    assert first.startswith("5 stranger(s) wrote in through the shared account all@acme.example")
    assert "customer(s) submitted" not in first
    assert data["recommended_model"] == "support"


def test_billed_noise_is_no_customer_submission(tmp_path: Path) -> None:
    org = load_org(org_file(tmp_path, "[intake]\nnoise_creates_users = true\n"))
    bounce = compose(
        "MAILER-DAEMON@mx.far.example",
        "Undelivered Mail Returned to Sender",
        "bounce1@test",
        to="support@acme.example",
        headers={"X-Failed-Recipients": "gone@far.example"},
    )
    data = report(run(tmp_path, org, [("ann@cust.example", Channel.SMTP)], [bounce]), org)
    assert data["team"]["seats"] == 3  # the agent, Ann and the billed mailer daemon
    assert data["reasons"][0].startswith("1 customer(s) submitted issues by email:")
