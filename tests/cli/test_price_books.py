"""Price books: `--prices NAME|FILE` on report, simulate and sweep, and `report
--compare A,B,C` billing one ledger (the demo's, in a real SQLite file) with several
books side by side, in table, JSON and CSV; bad names as one `Error:` line."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.org import load_price_book, price_book_names
from simulator.reports.columns import COMPARE_COLUMNS

runner = CliRunner()
THREE = "issuetrak-style,zendesk-support-team,jira-service-management"
LADDER_BOOK = """
[book]
title = "A ladder"
source = "https://vendor.example/pricing"
read = 2026-12-01
note = "made up for a test"

[pricing]
team_per_user = 8.0
team_shape = "step"
team_bands = [{up_to = 10, price = 8.0}, {up_to = 25, price = 7.0}, {price = 6.0}]
"""


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('books') / 'demo.db'}"
    ok("demo", "--db", url, "--format", "json")
    yield url


def test_the_shipped_books_say_where_and_when_their_figures_come_from() -> None:
    names = price_book_names()
    assert {"issuetrak-style", "zendesk-support-team", "jira-service-management"} <= set(names)
    assert "freshdesk-growth" in names
    for name in names:
        book = load_price_book(name)
        assert book.source.startswith("https://") and len(book.read) == 10, name
        assert "check" in book.note.lower(), name  # every book says its figures want checking


def test_compare_bills_one_ledger_with_three_books(demo_db: str) -> None:
    plain = json.loads(ok("report", "--db", demo_db, "--format", "json"))
    agents, users = plain["support"]["seats"], plain["team"]["seats"]
    assert agents == 3 and users > 10  # the demo: past Jira's free plan of 10 users
    data = json.loads(ok("report", "--db", demo_db, "--compare", THREE, "--format", "json"))
    books = {b["book"]: b for b in data["books"]}
    assert list(books) == THREE.split(",")
    # The same ledger under every book: the seats never change, only the money.
    assert {(b["support"]["seats"], b["team"]["seats"]) for b in books.values()} == {
        (agents, users)
    }
    costs = {name: (b["support"]["cost"], b["team"]["cost"]) for name, b in books.items()}
    assert costs["issuetrak-style"] == (agents * 25.0, users * 10.0)
    assert costs["zendesk-support-team"] == (agents * 25.0, users * 25.0)  # monthly term
    # Three agents stay inside JSM's free plan; past 10 users every Jira user is paid.
    assert costs["jira-service-management"] == (0.0, round(users * 8.0, 2))
    assert books["jira-service-management"]["source"].startswith("https://www.atlassian.com/")

    table = ok("report", "--db", demo_db, "--compare", THREE)
    for text in ("issuetrak-style", "Support cost", "Team cost", "break-even Team seats"):
        assert text in table
    rows = list(
        csv.DictReader(io.StringIO(ok("report", "--db", demo_db, "--compare", THREE, "-f", "csv")))
    )
    assert list(rows[0]) == COMPARE_COLUMNS
    assert [r["book"] for r in rows] == THREE.split(",")
    assert rows[2]["support_cost"] == "0.0"


def test_an_annual_term_takes_the_annual_price(demo_db: str, tmp_path: Path) -> None:
    org = tmp_path / "org.toml"
    sample = Path(__file__).parents[2] / "fixtures" / "org.toml"
    org.write_text(sample.read_text(encoding="utf-8") + '\n[licensing]\nbilling = "annual"\n')
    data = json.loads(
        ok(
            "report",
            "--db",
            demo_db,
            "--org",
            str(org),
            "--prices",
            "zendesk-support-team",
            "-f",
            "json",
        )
    )
    assert data["support"]["unit_price"] == 19.0
    assert data["support"]["cost"] == data["support"]["seats"] * 19.0
    assert data["pricing"] == {
        "book": "zendesk-support-team",
        "term": "annual",
        "pairs": {
            "support": {"monthly": 25.0, "annual": 19.0},
            "team": {"monthly": 25.0, "annual": 19.0},
        },
        "warnings": [],
    }


def test_a_book_file_and_its_ladder_warning(demo_db: str, tmp_path: Path) -> None:
    book = tmp_path / "ladder.toml"
    book.write_text(LADDER_BOOK, encoding="utf-8")
    result = runner.invoke(app, ["report", "--db", demo_db, "--prices", str(book), "-f", "json"])
    assert result.exit_code == 0, result.output
    warning = (
        "team prices bill 175.00 USD for 25 user(s) but 156.00 USD for 26: "
        "this ladder charges less for more seats"
    )
    assert json.loads(result.stdout)["pricing"]["warnings"] == [warning]
    assert result.stderr.strip() == f"warning: {warning}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--compare", "issuetrak-style,nope"],
            "Error: --compare: no price book 'nope': name one of freshdesk-growth, issuetrak-style",
        ),
        (["--prices", "nope.toml"], "Error: --prices: no price book 'nope.toml'"),
        (["--compare", THREE, "--by", "month"], "Error: --compare prices one report"),
        (["--compare", " , "], "Error: --compare: name at least one price book"),
    ],
)
def test_bad_books_are_one_error_line(demo_db: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", "--db", demo_db, *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[book]\ntitle = "no source"\n[pricing]\nteam_per_user = 1.0\n', "must give its source"),
        (
            '[book]\nsource = "https://v.example"\nread = 2026-01-01\n'
            "[pricing]\nteam_per_usr = 1\n",
            "pricing: unknown key(s) team_per_usr",
        ),
    ],
)
def test_a_book_without_its_source_or_with_a_misspelt_key_is_refused(
    demo_db: str, tmp_path: Path, text: str, message: str
) -> None:
    book = tmp_path / "book.toml"
    book.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["report", "--db", demo_db, "--prices", str(book)])
    assert result.exit_code == 1 and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_simulate_and_sweep_take_a_book() -> None:
    simulated = json.loads(
        ok(
            "simulate",
            "--emails",
            "60",
            "--seed",
            "3",
            "--prices",
            "jira-service-management",
            "-f",
            "json",
        )
    )
    assert simulated["pricing"]["book"] == "jira-service-management"
    assert simulated["team"]["unit_price"] == 8.0
    swept = json.loads(
        ok("sweep", "--volumes", "100", "--prices", "zendesk-support-team", "-f", "json")
    )
    (row,) = swept["volumes"]
    assert row["team"]["cost"] == row["team"]["seats"] * 25.0
    assert row["support"]["cost"] == row["support"]["seats"] * 25.0
