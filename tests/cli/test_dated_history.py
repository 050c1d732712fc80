"""Imported history is dated right: `ingest --use-date-header` starts directory seats at
the entry's `since`, else at the earliest imported message, never at the moment
the command runs; `until` ends them; `report --as-of` and `report --by month`
then show agents in every past month, whatever `billing` says."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from typer.testing import CliRunner

from simulator.cli import app
from tests.support.databases import BACKENDS, fresh_database
from tests.support.mailboxes import dated_messages, write_maildir

runner = CliRunner()
ORG = """
[organization]
name = "Dated Desk"
internal_domains = ["acme.example"]
intake_addresses = ["support@acme.example"]

[pricing]
support_per_agent = 25.0
team_per_user = 10.0
{licensing}
[[agents]]
email = "ava@acme.example"

[[agents]]
email = "ben@acme.example"
{ben}

[[agents]]
email = "cyd@acme.example"
{cyd}

[[employees]]
email = "eli@acme.example"
logs_in = true
"""
DATED = {"ben": "since = 2026-03-01", "cyd": 'until = "2026-05-01T00:00:00Z"'}
END_OF_JANUARY = "2026-01-31T23:59Z"
ANNUAL = '\n[licensing]\nbilling = "annual"\n'


def org_file(folder: Path, name: str, licensing: str = "", dated: bool = True) -> Path:
    path = folder / f"{name}.toml"
    names = DATED if dated else {"ben": "", "cyd": ""}
    path.write_text(ORG.format(licensing=licensing, **names))
    return path


def invoke_json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(params=BACKENDS)
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Loads six months of dated mail (January to June 2026) under an org file into a
    fresh database, and gives its URL."""
    mail = write_maildir(tmp_path / "Maildir", dated_messages())
    with fresh_database(request.param, tmp_path) as url:

        def load(org: Path) -> str:
            invoke_json("ingest", str(mail), "--db", url, "--org", str(org), "--use-date-header")
            return url

        yield load


def test_by_month_shows_agents_in_every_month_with_since_and_until(
    history: Callable[[Path], str], tmp_path: Path
) -> None:
    org = org_file(tmp_path, "dated")
    url = history(org)
    months = invoke_json("report", "--db", url, "--org", str(org), "--by", "month")
    assert [m["month"] for m in months] == [f"2026-0{n}" for n in range(1, 7)]
    # Ava all along; Ben from his since (March); Cyd until May.
    assert [m["support"]["seats"] for m in months] == [2, 2, 3, 3, 2, 2]
    # The agents and Eli (who logs in) plus one new customer a month.
    assert [m["team"]["seats"] for m in months] == [4, 5, 7, 8, 8, 9]


def test_without_dates_the_directory_starts_with_the_earliest_message(
    history: Callable[[Path], str], tmp_path: Path
) -> None:
    org = org_file(tmp_path, "undated", dated=False)
    url = history(org)
    ledger = invoke_json("ledger", "--db", url)
    directory = [row for row in ledger if row["user"].endswith("@acme.example")]
    assert {row["at"] for row in directory} == {"2026-01-10T09:30:00Z"}
    report = invoke_json("report", "--db", url, "--org", str(org), "--as-of", END_OF_JANUARY)
    assert (report["support"]["seats"], report["team"]["seats"]) == (3, 5)
    assert report["breakeven_team_seats"] > 0


@pytest.mark.parametrize("billing", ["monthly", "annual"])
def test_billing_does_not_change_a_point_in_time_count(
    history: Callable[[Path], str], tmp_path: Path, billing: str
) -> None:
    org = org_file(tmp_path, billing, f'\n[licensing]\nbilling = "{billing}"\n')
    url = history(org)
    report = invoke_json("report", "--db", url, "--org", str(org), "--as-of", END_OF_JANUARY)
    assert (report["support"]["seats"], report["team"]["seats"]) == (2, 4)
    later = invoke_json("report", "--db", url, "--org", str(org), "--as-of", "2026-05-15T00:00Z")
    assert (later["support"]["seats"], later["team"]["seats"]) == (2, 8)


def test_a_second_run_changes_no_seat(history: Callable[[Path], str], tmp_path: Path) -> None:
    org = org_file(tmp_path, "dated")
    url = history(org)
    before = invoke_json("ledger", "--db", url)
    invoke_json("ingest", str(tmp_path / "Maildir"), "--db", url, "--org", str(org))
    after = invoke_json("ledger", "--db", url)
    assert after == before  # the same mail again: duplicates, and the directory as it was


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('since = "soon"', "agents[1].since must be a date"),
        ("since = 2026-03-01\nuntil = 2026-02-01", "agents[1].until must be later than its since"),
    ],
)
def test_a_bad_date_is_one_error_line(tmp_path: Path, entry: str, message: str) -> None:
    org = tmp_path / "bad.toml"
    org.write_text(ORG.format(licensing="", ben=entry, cyd=""))
    result = runner.invoke(app, ["report", "--org", str(org), "--db", "sqlite:///x.db"])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_user_newer_than_its_seat_still_counts_under_any_billing(
    history: Callable[[Path], str], tmp_path: Path
) -> None:
    """A database written before directory dates: user records made at the moment of
    import, seats dated by the mail. `billing` must not drop those users."""
    monthly, annual = org_file(tmp_path, "m"), org_file(tmp_path, "a", ANNUAL)
    url = history(monthly)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE users SET created_at = :now"), {"now": datetime.now(UTC)}
        )
    engine.dispose()
    counts = [
        invoke_json("report", "--db", url, "--org", str(org), "--as-of", END_OF_JANUARY)
        for org in (monthly, annual)
    ]
    assert [(r["support"]["seats"], r["team"]["seats"]) for r in counts] == [(2, 4), (2, 4)]
