"""SIGKILL a real `serve` process under load: nothing acknowledged lost, nothing doubled.

The short version of `intake-sim crash-test` (which runs 20 kills or more).
"""

from __future__ import annotations

import pytest

from simulator.delivery.spool import Ack
from simulator.reliability.crashtest import CrashTestOptions, run_crash_test

SHORT = {"kills": 3, "clients": 3, "seed": 1, "max_uptime": 0.6}


def check(db: str, ack: Ack) -> None:
    report = run_crash_test(CrashTestOptions(db=db, ack=ack, **SHORT))
    figures = report.as_dict()
    assert report.kills == 3, figures
    assert report.acknowledged > 0, figures
    assert report.lost == [] and report.doubled == [] and report.wrong_ids == [], figures
    assert report.stored == report.acknowledged == report.sent, figures
    assert report.strangers == 0 and report.refused == 0, figures
    assert report.attempts >= report.sent, figures
    assert report.ok


ACKS = pytest.mark.parametrize("ack", list(Ack), ids=[f"ack-{a.value}" for a in Ack])


@ACKS
def test_crash_safety_sqlite(sqlite_url: str, ack: Ack) -> None:
    check(sqlite_url, ack)


@ACKS
def test_crash_safety_postgresql(pg_url: str, ack: Ack) -> None:
    check(pg_url, ack)
