"""Signed Message-IDs (simulator/pipeline/signing.py): ours verify, forged or altered
ones do not; the key is the org's `signing_key`, else one secret per database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from simulator.org import Org, load_org
from simulator.pipeline.signing import (
    SECRET_NAME,
    SIGNED_ID,
    MessageIdSigner,
    database_secret,
    signer_for,
)
from simulator.store.db import open_store
from simulator.store.models import Secret
from tests.support.samples import org_file

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DOMAIN = "notify.initech.test"
SIGNER = MessageIdSigner(b"sixteen or more bytes of key", DOMAIN)


def parts(message_id: str) -> tuple[str, str, str]:
    found = SIGNED_ID.match(message_id.rpartition("@")[0])
    assert found is not None, message_id
    return found.group(1), found.group(2), found.group(3)


def test_a_new_id_is_ours_and_names_its_issue() -> None:
    message_id = SIGNER.new_id(42)
    assert message_id.endswith(f"@{DOMAIN}") and "<" not in message_id
    assert parts(message_id)[0] == "42"
    assert SIGNER.is_ours(message_id)
    assert SIGNER.issue_of(message_id) == 42


def test_every_new_id_is_different() -> None:
    ids = {SIGNER.new_id(7) for _ in range(50)}
    assert len(ids) == 50
    assert {SIGNER.issue_of(i) for i in ids} == {7}


def test_our_domain_is_matched_without_regard_to_case() -> None:
    message_id = SIGNER.new_id(3)
    shouting = message_id.replace(DOMAIN, DOMAIN.upper())
    assert SIGNER.is_ours(shouting)
    assert SIGNER.issue_of(shouting) == 3


def flip(digit: str) -> str:
    """Another hex digit."""
    return "0" if digit != "0" else "1"


def altered(message_id: str, how: str) -> str:
    issue, nonce, mac = parts(message_id)
    return {
        "other issue": f"issue-{int(issue) + 1}.{nonce}.{mac}",
        "other nonce": f"issue-{issue}.{flip(nonce[0])}{nonce[1:]}.{mac}",
        "one MAC digit": f"issue-{issue}.{nonce}.{mac[:-1]}{flip(mac[-1])}",
        "short MAC": f"issue-{issue}.{nonce}.{mac[:-1]}",
        "no MAC": f"issue-{issue}.{nonce}",
        "other prefix": f"ticket-{issue}.{nonce}.{mac}",
    }[how] + f"@{DOMAIN}"


@pytest.mark.parametrize(
    "how",
    [
        "other issue",
        "other nonce",
        "one MAC digit",
        "short MAC",
        "no MAC",
        "other prefix",
    ],
)
def test_an_altered_id_does_not_verify(how: str) -> None:
    message_id = SIGNER.new_id(12)
    forged = altered(message_id, how)
    assert forged != message_id
    assert SIGNER.is_ours(forged)  # our domain, so it must be checked...
    assert SIGNER.issue_of(forged) is None  # ...and it fails


def test_an_id_made_with_another_key_does_not_verify() -> None:
    other = MessageIdSigner(b"another installation's key", DOMAIN)
    assert SIGNER.issue_of(other.new_id(5)) is None
    assert other.issue_of(other.new_id(5)) == 5


def test_a_hand_written_id_in_our_domain_does_not_verify() -> None:
    assert SIGNER.issue_of(f"issue-1.{'0' * 16}.{'0' * 32}@{DOMAIN}") is None


def test_ids_in_other_domains_are_not_ours() -> None:
    token = SIGNER.new_id(9).rpartition("@")[0]
    for message_id in (f"{token}@customer.example", f"{token}@sub.{DOMAIN}", f"{token}@x{DOMAIN}"):
        assert not SIGNER.is_ours(message_id)
        assert SIGNER.issue_of(message_id) is None


def keyed(org: Org, key: str) -> Org:
    return dataclasses.replace(org, notify=dataclasses.replace(org.notify, signing_key=key))


def test_the_org_key_signs_alike_in_every_database(tmp_path: Path) -> None:
    org = keyed(load_org(org_file("initech.toml")), "a key the org file names")
    signers = []
    for name in ("one.db", "two.db"):
        store = open_store(f"sqlite:///{tmp_path / name}")
        try:
            with store.sessions.begin() as session:
                signers.append(signer_for(session, org, AT))
                assert session.get(Secret, SECRET_NAME) is None  # no secret needed
        finally:
            store.dispose()
    one, two = signers
    assert one == two == MessageIdSigner(b"a key the org file names", DOMAIN)
    assert two.issue_of(one.new_id(8)) == 8


def test_without_an_org_key_each_database_keeps_its_own_secret(tmp_path: Path) -> None:
    org = load_org(org_file("initech.toml"))
    assert not org.notify.signing_key
    signers = []
    for name in ("one.db", "two.db"):
        store = open_store(f"sqlite:///{tmp_path / name}")
        try:
            with store.sessions.begin() as session:
                first = signer_for(session, org, AT)
            with store.sessions.begin() as session:
                again = signer_for(session, org, AT)
                assert session.scalar(select(func.count()).select_from(Secret)) == 1
            assert again == first  # made once, then read back
            signers.append(first)
        finally:
            store.dispose()
    one, two = signers
    assert one.key != two.key
    assert one.issue_of(one.new_id(4)) == 4
    assert two.issue_of(one.new_id(4)) is None


def test_the_database_secret_is_made_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'intake.db'}")
    try:
        with store.sessions.begin() as session:
            made = database_secret(session, AT)
        with store.sessions.begin() as session:
            assert database_secret(session, AT) == made
            stored = session.get_one(Secret, SECRET_NAME)
            assert (stored.value, stored.created_at) == (made, AT)
        assert len(made) == 64 and set(made) <= set("0123456789abcdef")  # 32 random bytes
    finally:
        store.dispose()
