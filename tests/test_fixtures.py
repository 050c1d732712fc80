"""fixtures/ is an executable spec: every sample email, sent over SMTP in filename
order into one fresh database, must get the outcome written beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.demo import run_demo
from simulator.org import load_org
from simulator.smtp.mailfiles import MailFile, load_mail
from simulator.store.db import Store
from tests.support.databases import BACKENDS, fresh_database
from tests.support.samples import CASES, expected_for, stored_rows

EXPECTED_KEYS = {"outcome", "reason", "role", "issue", "new_user", "sender", "note"}


@pytest.fixture(scope="module", params=BACKENDS)
def delivered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """Send every fixture through a real listener; per file: what was stored."""
    with fresh_database(request.param, tmp_path_factory.mktemp("fixtures")) as url:
        yield _deliver_all(Store(url))


def _deliver_all(store: Store) -> dict[str, dict[str, Any]]:
    mail = load_mail(CASES)
    result = run_demo(store, load_org(), mail, lambda _: None)
    rows = stored_rows(store, mail, [sent.code for sent in result.sent])
    store.dispose()
    return rows


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25
    for case in CASES:
        assert set(expected_for(case)) == EXPECTED_KEYS, case.name


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_fixture_outcome(case: Path, delivered: dict[str, dict[str, Any]]) -> None:
    expected = expected_for(case)
    got = delivered[case.name]
    assert got["code"] == 250, got
    for key in ("outcome", "reason", "issue", "sender", "role", "new_user"):
        assert got[key] == expected[key], f"{case.name}: {key} {got[key]!r} != {expected[key]!r}"


def test_loaded_envelopes_follow_return_path() -> None:
    by_name = {Path(m.source).name: m for m in load_mail(CASES)}
    bounce: MailFile = by_name["19-bounce-null-sender-mailer-daemon.eml"]
    assert bounce.envelope_from == ""
