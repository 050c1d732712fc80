"""fixtures/ is an executable spec: every sample email, sent over SMTP in filename
order into one fresh database, must get the outcome written beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.demo import run_demo
from simulator.org import load_org
from simulator.smtp.mailfiles import MailFile
from simulator.smtp.sources import load_mail
from simulator.store.db import Store
from tests.support.databases import BACKENDS, fresh_database
from tests.support.samples import CASES, expected_for, stored_rows

EXPECTED_KEYS = {"outcome", "reason", "role", "issue", "new_user", "sender", "note"}
OPTIONAL_KEYS = {"subject"}  # checked when given: for cases about reading the header text


@pytest.fixture(scope="module", params=BACKENDS)
def delivered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """Send every fixture through a real listener; per file: what was stored."""
    with fresh_database(request.param, tmp_path_factory.mktemp("fixtures")) as url:
        yield _deliver_all(Store(url))


def _deliver_all(store: Store) -> dict[str, dict[str, Any]]:
    return _deliver(store, load_mail(CASES))


def _deliver(store: Store, mail: list[MailFile]) -> dict[str, dict[str, Any]]:
    result = run_demo(store, load_org(), mail, lambda _: None)
    rows = stored_rows(store, mail, [sent.code for sent in result.sent])
    store.dispose()
    return rows


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25
    for case in CASES:
        assert set(expected_for(case)) - OPTIONAL_KEYS == EXPECTED_KEYS, case.name


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_fixture_outcome(case: Path, delivered: dict[str, dict[str, Any]]) -> None:
    expected = expected_for(case)
    got = delivered[case.name]
    assert got["code"] == 250, got
    for key in (
        "outcome",
        "reason",
        "issue",
        "sender",
        "role",
        "new_user",
        *expected.keys() & OPTIONAL_KEYS,
    ):
        assert got[key] == expected[key], f"{case.name}: {key} {got[key]!r} != {expected[key]!r}"


def test_loaded_envelopes_follow_return_path() -> None:
    by_name = {Path(m.source).name: m for m in load_mail(CASES)}
    bounce: MailFile = by_name["19-bounce-null-sender-mailer-daemon.eml"]
    assert bounce.envelope_from == ""


def test_the_readme_session_files_every_reply_into_its_own_issue(tmp_path: Path) -> None:
    """The README's session opens an issue with swaks before `send fixtures/emails`,
    so every issue number is one higher than in the expected files. Replies must still
    land in their own issue, and a bare tag must not pull one into a stranger's."""
    first = (
        b"From: jo@customer.example\r\nTo: support@acme.example\r\n"
        b"Subject: Printer on fire\r\nMessage-ID: <swaks-1@customer.example>\r\n\r\nHelp.\r\n"
    )
    mail = [MailFile("swaks", first, "jo@customer.example"), *load_mail(CASES)]
    rows = _deliver(Store(f"sqlite:///{tmp_path / 'intake.db'}"), mail)
    assert rows.pop("swaks")["issue"] == 1
    for case in CASES:
        expected, got = expected_for(case), rows[case.name]
        shifted = None if expected["issue"] is None else expected["issue"] + 1
        assert (got["outcome"], got["reason"], got["issue"]) == (
            expected["outcome"],
            expected["reason"],
            shifted,
        ), case.name
