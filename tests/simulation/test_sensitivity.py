"""Sensitivity: every flip point it reports really flips the decision (the model
with the lower term total), and the nearest value it says holds does not; an
assumption it says never flips keeps the decision at both ends of its range."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.simulation import forecast as fc
from simulator.simulation import sensitivity as sv
from simulator.simulation.scenario import load_scenario

runner = CliRunner()

# A desk close to the line: three agents at 60 against about 36 users at 5.
SCENARIO = """
name = "Near the line"
[org.organization]
name = "Small desk"
internal_domains = ["desk.example"]
intake_addresses = ["help@desk.example"]
[org.intake]
unknown_senders = "create"
[org.pricing]
currency = "USD"
support_per_agent = 60.0
team_per_user = 5.0
[[org.agents]]
email = "ann@desk.example"
[[org.agents]]
email = "bob@desk.example"
[[org.agents]]
email = "cat@desk.example"
[traffic]
emails = 40
days = 30
seed = 4
customers = 30
companies = 6
new_sender_share = 0.02
internal_share = 0.1
cc_per_message = 0.3
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sensitivity") / "near.toml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def study(scenario: Path) -> tuple[fc.Terms, fc.PriceBook, dict]:
    loaded = load_scenario(scenario)
    terms = fc.Terms(loaded.traffic, loaded.org, months=12)
    book = fc.org_book(loaded.org)
    return terms, book, sv.sensitivity(terms, book)


def test_each_flip_point_flips_and_a_little_less_does_not(study: tuple) -> None:
    terms, book, data = study
    base = data["decision"]
    flipping = [a for a in data["assumptions"] if a["flips"]]
    # This desk sits near the line: most assumptions flip it, so the test checks them.
    assert {a["key"] for a in flipping} >= {
        "price_ratio",
        "customers",
        "volume",
        "new_sender_share",
        "inactive_after_days",
        "unknown_senders",
    }
    for a in flipping:
        flipped = sv.decision_at(terms, book, a["key"], a["flip_value"])
        assert flipped != base, a
        held = sv.decision_at(terms, book, a["key"], a["holds_until"])
        assert held == base, a
        if a["kind"] == "number":
            # Within 1 % of the move (on a log scale for ratios and scale factors).
            log = a["key"] in ("price_ratio", "customers", "volume")
            where = (lambda v: math.log(v)) if log else (lambda v: v)
            move = abs(where(a["flip_value"]) - where(a["current"]))
            step = abs(where(a["flip_value"]) - where(a["holds_until"]))
            if a["key"] == "inactive_after_days":
                assert step <= 1, a
            else:
                assert step <= 0.0101 * move + 1e-12, a


def test_an_assumption_that_does_not_flip_keeps_the_decision_at_both_ends(study: tuple) -> None:
    terms, book, data = study
    steady = [a for a in data["assumptions"] if not a["flips"]]
    assert steady  # Cc creation and notifications only make Team dearer here
    for a in steady:
        for end in ("low", "high"):
            assert a[end]["cheaper_model"] in (data["decision"],), a
            assert sv.decision_at(terms, book, a["key"], a[end]["value"]) == data["decision"]


def test_ranked_nearest_flip_first_and_the_break_even_ratio_ties(study: tuple) -> None:
    terms, book, data = study
    moves = [a["move"] for a in data["assumptions"] if a["flips"]]
    assert moves == sorted(moves)
    flags = [a["flips"] for a in data["assumptions"]]
    assert flags == sorted(flags, reverse=True)  # every flip before every non-flip
    ratio = data["breakeven_price_ratio"]
    assert sv.decision_at(terms, book, "price_ratio", ratio * 1.01) == "support"
    assert sv.decision_at(terms, book, "price_ratio", ratio * 0.99) == "team"


def test_forecast_sensitivity_on_the_command_line(scenario: Path, tmp_path: Path) -> None:
    tornado = tmp_path / "tornado.svg"
    result = runner.invoke(
        app,
        [
            "forecast",
            "--scenario",
            str(scenario),
            "--sensitivity",
            "--tornado",
            str(tornado),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    keys = [a["key"] for a in data["sensitivity"]["assumptions"]]
    assert sorted(keys) == sorted(
        [
            "price_ratio",
            "new_sender_share",
            "cc_creation",
            "notifications",
            "inactive_after_days",
            "unknown_senders",
            "customers",
            "volume",
        ]
    )
    drawn = tornado.read_text()
    assert drawn.count("<rect") >= len(keys) and "0: the models tie" in drawn
