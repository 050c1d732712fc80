"""Synthetic traffic: reproducible bytes, the plan's seat model against the real
pipeline, and the same report whether the traffic goes in directly or over SMTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.org import Org, load_org
from simulator.pipeline.batch import prepare
from simulator.pipeline.parse import parse_message
from simulator.reports import rows
from simulator.service import intake_service
from simulator.simulation.run import final_report, run_direct, send_smtp
from simulator.simulation.traffic import (
    TrafficParams,
    build_message,
    composed_bytes,
    message_bytes,
    message_parts,
    plan,
    seat_counts,
)
from simulator.smtp.server import ListenerOptions
from simulator.store.db import open_store

ORG_HEAD = """
[organization]
name = "Variant"
internal_domains = ["acme.example"]
intake_addresses = ["support@acme.example"]

[[agents]]
email = "ava@acme.example"

[[agents]]
email = "ben@acme.example"

[[employees]]
email = "dana@acme.example"
logs_in = false
"""
INTAKE_VARIANTS = {
    "create": "",
    "cc_users": "create_users_from_cc = true\ncc_users_per_message = 1",
    "noise_users": "noise_creates_users = true",
    "shared_user": 'unknown_senders = "shared_user"\nshared_user = "all@acme.example"',
    "existing_only": 'unknown_senders = "existing_only"\nnoise_creates_users = true',
    "flood": "flood_limit = 3\nflood_window_minutes = 60",
}
SMALL = TrafficParams(emails=300, days=1.0, customers=40, companies=5, cc_per_message=1.5)


def variant_org(tmp_path: Path, intake: str) -> Org:
    path = tmp_path / "org.toml"
    path.write_text(ORG_HEAD + "\n[intake]\n" + intake + "\n", encoding="utf-8")
    return load_org(path)


def pipeline_report(tmp_path: Path, org: Org, params: TrafficParams, name: str = "x") -> dict:
    store = open_store(f"sqlite:///{tmp_path / name}.db")
    run_direct(store, org, params, lambda _: None)
    try:
        return final_report(store, org, params)
    finally:
        store.dispose()


def test_same_seed_same_bytes_other_seed_other_mail() -> None:
    org = load_org()
    params = TrafficParams(emails=60)

    def all_bytes(p: TrafficParams) -> list[bytes]:
        return [build_message(p, org, m)[0] for m in plan(p, org)]

    first = all_bytes(params)
    assert first == all_bytes(params)
    assert first != all_bytes(dataclasses.replace(params, seed=2))
    kinds = {m.kind for m in plan(params, org)}
    assert {"new", "reply", "tag"} <= kinds
    for raw in first:
        assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
        mail = parse_message(raw, None)
        assert mail.problem is None and mail.date is not None and mail.message_id


@pytest.mark.parametrize("variant", sorted(INTAKE_VARIANTS))
def test_plan_counts_the_seats_the_pipeline_counts(tmp_path: Path, variant: str) -> None:
    org = variant_org(tmp_path, INTAKE_VARIANTS[variant])
    report = pipeline_report(tmp_path, org, SMALL)
    seats = seat_counts(SMALL, org)
    assert report["support"]["seats"] == seats.support == 2
    assert report["team"]["seats"] == len(seats.team)
    counted = sum(m.counted for m in plan(SMALL, org))
    assert report["deliveries"]["created_issue"] + report["deliveries"]["threaded"] == counted
    if variant == "flood":
        assert report["deliveries"]["filtered"] > sum(
            m.kind not in "new reply tag" for m in plan(SMALL, org)
        )


@pytest.fixture(scope="module")
def ten_thousand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Org, TrafficParams, Path]:
    """One month of 10^4 messages through the real pipeline, shared by the tests below."""
    org = load_org()
    params = TrafficParams(emails=10_000, days=30.0, seed=5)
    path = tmp_path_factory.mktemp("volume") / "ten-thousand.db"
    store = open_store(f"sqlite:///{path}")
    run_direct(store, org, params, lambda _: None)
    store.dispose()
    return org, params, path


def test_plan_matches_pipeline_at_ten_thousand(
    ten_thousand: tuple[Org, TrafficParams, Path],
) -> None:
    org, params, path = ten_thousand
    store = open_store(f"sqlite:///{path}")
    report = final_report(store, org, params)
    with store.read() as session:
        users = rows.users(session)
    store.dispose()
    seats = seat_counts(params, org)
    assert report["team"]["seats"] == len(seats.team)
    assert report["support"]["seats"] == seats.support
    # Team never bills more than the distinct counted senders plus the directory.
    senders = {u["email"] for u in users if u["first_seen"] is not None}
    directory = {u["email"] for u in users if u["origin"] == "directory"}
    assert report["team"]["seats"] <= len(senders | directory)


def test_support_is_flat_and_team_grows_with_volume() -> None:
    org = load_org()
    counts = [seat_counts(TrafficParams(emails=v), org) for v in (100, 1000, 10_000)]
    assert {c.support for c in counts} == {3}
    teams = [len(c.team) for c in counts]
    assert teams == sorted(teams) and teams[0] < teams[-1]
    for c in counts:
        assert len(c.team) <= len(c.counted_senders | set(org.directory))


def without_as_of(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "as_of"}


async def test_smtp_and_direct_give_the_same_report(tmp_path: Path) -> None:
    org = load_org()
    params = TrafficParams(emails=150, seed=9)
    direct = await asyncio.to_thread(pipeline_report, tmp_path, org, params, "direct")

    store = open_store(f"sqlite:///{tmp_path / 'smtp.db'}")
    await asyncio.to_thread(prepare, store, org)  # a listener reconciles at its own start
    options = ListenerOptions(port=0, use_date_header=True)
    async with intake_service(store, org, options) as service:
        sent, refused = await asyncio.to_thread(
            send_smtp, service.host, service.port, org, params, 4, lambda _: None
        )
    assert (sent, refused) == (150, 0)
    over_smtp = await asyncio.to_thread(final_report, store, org, params)
    store.dispose()
    assert without_as_of(over_smtp) == without_as_of(direct)
    assert direct["deliveries"]["threaded"] > 0


def test_simulate_command_same_json_both_ways() -> None:
    runner = CliRunner()
    args = ["simulate", "--emails", "80", "--seed", "4", "-f", "json"]
    direct = runner.invoke(app, [*args, "--via", "direct"])
    smtp = runner.invoke(app, [*args, "--via", "smtp", "--concurrency", "3"])
    assert direct.exit_code == 0, direct.output
    assert smtp.exit_code == 0, smtp.output
    first, second = json.loads(direct.stdout), json.loads(smtp.stdout)
    assert without_as_of(first) == without_as_of(second)
    assert first["deliveries"]["accepted"] == 80
    assert "messages/s" in direct.stderr


@pytest.mark.org("ccdesk.toml")
def test_simulated_mail_is_written_as_email_message_writes_it(org: Org) -> None:
    """The bytes written directly are the stdlib's, for every kind of planned mail."""
    for seed in range(3):
        params = TrafficParams(emails=1500, seed=seed)
        for mail in plan(params, org):
            headers, body, _ = message_parts(params, org, mail)
            assert message_bytes(headers, body) == composed_bytes(headers, body), mail


FIELD_VALUES = st.text(st.characters(blacklist_characters="\r\n", max_codepoint=0x2FF), max_size=90)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["From", "Cc", "Subject", "X-Long-Field"]), FIELD_VALUES)),
    st.text(st.characters(max_codepoint=0x2FF, blacklist_characters="\r"), max_size=200),
)
def test_any_fields_are_written_as_email_message_writes_them(
    headers: list[tuple[str, str]], body: str
) -> None:
    """Long, non-ASCII or empty fields and bodies with "From " lines go to the stdlib."""
    try:
        expected = composed_bytes(headers, body)
    except (UnicodeError, ValueError):
        assume(False)  # what the stdlib cannot write is no simulated mail
    assert message_bytes(headers, body) == expected
