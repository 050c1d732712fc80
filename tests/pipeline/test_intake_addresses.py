"""Which mailbox: each delivery records the intake address it came to (the RCPT over
SMTP; Delivered-To, To or Cc for files, fetch and the form), and an intake
address may carry its own `[intake]` policy in the org file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from simulator.domain import Channel, Submission
from simulator.errors import OrgFileError
from simulator.org import Org, load_org
from simulator.pipeline.batch import prepare, write_batch
from simulator.reports.columns import message_columns
from simulator.reports.rows import messages
from simulator.store.db import open_store
from simulator.store.models import Delivery
from tests.support.mail import compose

SUPPORT, HELP = "support@acme.example", "help@acme.example"
AT = datetime(2026, 11, 28, 10, tzinfo=UTC)
OVERRIDE = f"""
[organization]
name = "Two mailboxes"
internal_domains = ["acme.example"]
intake_addresses = ["{SUPPORT}", "{HELP}"]

[intake]
unknown_senders = "create"
flood_limit = 5

[intake.by_address."{HELP}"]
unknown_senders = "existing_only"
"""


def stored(db_url: str, org: Org, *items: Submission) -> list[tuple[str, str, str | None]]:
    store = open_store(db_url)
    try:
        prepare(store, org)
        write_batch(store, org, list(items))
        with store.sessions() as session:
            rows = session.scalars(select(Delivery).order_by(Delivery.id))
            return [(d.intake_address, d.outcome, d.reason) for d in rows]
    finally:
        store.dispose()


def submission(
    n: int, to: str, recipients: list[str], channel: Channel, **headers: str
) -> Submission:
    raw = compose(
        f"c{n}@customer.example", f"Help {n}", f"m{n}@customer.example", to=to, headers=headers
    )
    return Submission(raw, f"c{n}@customer.example", recipients, AT, channel)


def test_the_intake_address_is_recorded_per_delivery(db_url: str) -> None:
    org = load_org(None)
    found = stored(
        db_url,
        org,
        # Over SMTP the RCPT counts, not the To header.
        submission(1, SUPPORT, ["someone@else.example", HELP.upper()], Channel.SMTP),
        # From files: Delivered-To first, then To or Cc, then the recipient given.
        submission(2, SUPPORT, [SUPPORT], Channel.INGEST, **{"Delivered-To": HELP}),
        submission(3, f"Help desk <{HELP}>", [SUPPORT], Channel.FETCH),
        submission(4, "ann@elsewhere.example", [SUPPORT], Channel.INGEST, Cc=HELP),
        submission(5, "ann@elsewhere.example", [SUPPORT], Channel.INGEST),
    )
    assert [address for address, _, _ in found] == [HELP, HELP, HELP, HELP, SUPPORT]


def test_an_intake_address_may_have_its_own_policy(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(OVERRIDE)
    org = load_org(path)
    assert org.for_address(HELP).intake.flood_limit == 5  # the rest of [intake] carries over
    found = stored(
        db_url,
        org,
        submission(1, HELP, [HELP], Channel.SMTP),
        submission(2, SUPPORT, [SUPPORT], Channel.SMTP),
    )
    assert found == [
        (HELP, "filtered", "unknown_sender"),
        (SUPPORT, "created_issue", None),
    ]
    store = open_store(db_url)
    with store.sessions() as session:
        assert [row["intake_address"] for row in messages(session)] == [HELP, SUPPORT]
    store.dispose()


def test_a_policy_for_an_address_that_is_no_intake_address_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(OVERRIDE.replace(f'by_address."{HELP}"', 'by_address."sales@acme.example"'))
    with pytest.raises(OrgFileError, match=r"sales@acme\.example is not an intake address"):
        load_org(path)


def test_the_messages_table_shows_the_mailbox_once_there_are_two() -> None:
    one = [{"intake_address": SUPPORT}, {"intake_address": SUPPORT}]
    assert "intake_address" not in message_columns(one)
    assert message_columns([*one, {"intake_address": HELP}])[-1] == "intake_address"
