"""`intake-sim forecast`: the contract over a term, on the one seat engine.

A zero-growth forecast must equal `simulate` over the same months, seat for
seat and cent for cent, under rules that make the engine work (inactivity,
annual true-up, notifications, Cc users); growth must grow the mail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app

runner = CliRunner()

ORG = """
[org.organization]
name = "Forecast desk"
internal_domains = ["desk.example"]
intake_addresses = ["help@desk.example"]

[org.intake]
unknown_senders = "create"
create_users_from_cc = true
cc_users_per_message = 2

[org.notify]
acknowledge = true
notify_participants_on_reply = true

[org.licensing]
inactive_after_days = 20
billing = "{billing}"

[org.pricing]
currency = "EUR"
support_per_agent = 30.0
team_per_user = 4.0

[[org.agents]]
email = "ann@desk.example"
[[org.agents]]
email = "bob@desk.example"
"""
TRAFFIC = """
[traffic]
emails = 150
days = 30
seed = 9
customers = 120
companies = 12
new_sender_share = 0.08
cc_per_message = 0.5
"""


def _scenario(tmp_path: Path, billing: str = "monthly") -> Path:
    path = tmp_path / f"desk-{billing}.toml"
    path.write_text('name = "Forecast desk"\n' + ORG.format(billing=billing) + TRAFFIC)
    return path


def _json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("billing", ["monthly", "annual"])
def test_zero_growth_forecast_equals_simulate_over_the_same_months(
    tmp_path: Path, billing: str
) -> None:
    scenario = _scenario(tmp_path, billing)
    data = _json("forecast", "--scenario", str(scenario), "--months", "3", "--growth", "0")
    # 150 emails per 30 days over January to March 2026 (90 days): 450 messages.
    assert data["emails"] == 450 and sum(data["emails_per_month"]) == 450
    url = f"sqlite:///{tmp_path / 'simulated.db'}"
    made = runner.invoke(
        app,
        ["simulate", "--scenario", str(scenario), "--emails", "450", "--days", "90", "--db", url],
    )
    assert made.exit_code == 0, made.output
    months = _json(
        "report", "--db", url, "--org", str(_org_file(tmp_path, billing)), "--by", "month"
    )
    forecast_months = data["forecasts"][0]["months"]
    assert [m["month"] for m in forecast_months] == ["2026-01", "2026-02", "2026-03"]
    assert [m["month"] for m in months] == ["2026-01", "2026-02", "2026-03"]
    for ours, simulated in zip(forecast_months, months, strict=True):
        for model in ("support", "team"):
            for key in ("seats", "peak_seats", "billed_seats", "cost"):
                assert ours[model][key] == simulated[model][key], (ours["month"], model, key)
        assert ours["cheaper_model"] == simulated["cheaper_model"]
    term = data["forecasts"][0]["term"]
    assert term["team"] == pytest.approx(sum(m["team"]["cost"] for m in months))
    assert term["support"] == pytest.approx(sum(m["support"]["cost"] for m in months))
    assert any(m["team"]["seats"] > 0 for m in months)  # there was something to compare


def _org_file(tmp_path: Path, billing: str) -> Path:
    """The scenario's inline org as an org file, for `report --org`."""
    text = ORG.format(billing=billing).replace("[org.", "[").replace("[[org.", "[[")
    path = tmp_path / f"org-{billing}.toml"
    path.write_text(text)
    return path


def test_growth_grows_the_mail_and_price_books_bill_the_same_seats(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    book = tmp_path / "cheap-team.toml"
    book.write_text(
        '[book]\ntitle = "Cheap Team"\nsource = "https://vendor.example/pricing"\n'
        'read = 2026-11-30\n[pricing]\ncurrency = "EUR"\n'
        "support_per_agent = 30.0\nteam_per_user = 0.5\n"
    )
    flat = _json("forecast", "--scenario", str(scenario), "--months", "24")
    grown = _json(
        "forecast",
        "--scenario",
        str(scenario),
        "--months",
        "24",
        "--growth",
        "50%",
        "--prices",
        str(book),
        "--prices",
        str(book),
    )
    assert flat["emails"] == pytest.approx(150 / 30 * 730, abs=2)
    # 50 % a year for two years: the last month has about 1.5^2 times the first's mail.
    per_month = grown["emails_per_month"]
    assert per_month[-1] / per_month[0] == pytest.approx(1.5**2, rel=0.2)
    assert grown["emails"] > flat["emails"] * 1.3
    first, second = grown["forecasts"]
    assert first["price_book"] == "cheap-team" and first["read"] == "2026-11-30"
    assert first["months"] == second["months"]
    assert set(first["true_up"]) == {"monthly", "annual"}
    assert first["true_up"]["annual"]["team"] >= first["true_up"]["monthly"]["team"]
    # Team at 0.5 per user: the break-even ratio is above the book's 0.5/30.
    ratio = first["breakeven_price_ratio"]
    assert (ratio > first["price_ratio"]) == (first["term"]["cheaper_model"] == "team")


def test_bad_growth_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["forecast", "--growth", "lots"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: --growth: a yearly rate such as 20%, 0.2 or fitted, not 'lots'"
    )
    result = runner.invoke(app, ["forecast", "--growth", "fitted"])
    assert result.exit_code == 1 and "needs --scenario" in result.output


def test_a_later_term_replays_the_months_before_it_and_bills_only_the_term(
    tmp_path: Path,
) -> None:
    """--start after the scenario's start: the plan runs from the scenario's start, so
    the term starts with the customer base; at zero growth its months are exactly the
    last months of `simulate` over the whole span."""
    scenario = _scenario(tmp_path, "monthly")
    data = _json("forecast", "--scenario", str(scenario), "--months", "2", "--start", "2026-03-01")
    assert data["start"] == "2026-03-01" and data["replayed_from"] == "2026-01-01"
    ours = data["forecasts"][0]["months"]
    assert [m["month"] for m in ours] == ["2026-03", "2026-04"]
    url = f"sqlite:///{tmp_path / 'whole.db'}"
    # January to April 2026: 120 days at 5 emails a day.
    made = runner.invoke(
        app,
        ["simulate", "--scenario", str(scenario), "--emails", "600", "--days", "120", "--db", url],
    )
    assert made.exit_code == 0, made.output
    org = str(_org_file(tmp_path, "monthly"))
    simulated = _json("report", "--db", url, "--org", org, "--by", "month")[-2:]
    for mine, theirs in zip(ours, simulated, strict=True):
        assert mine["month"] == theirs["month"]
        for model in ("support", "team"):
            assert mine[model]["billed_seats"] == theirs[model]["billed_seats"], mine["month"]
            assert mine[model]["cost"] == theirs[model]["cost"]
    fresh = _json("forecast", "--scenario", str(scenario), "--months", "2")
    # The replayed months built a customer base: the term starts with more Team seats.
    assert ours[0]["team"]["seats"] > fresh["forecasts"][0]["months"][0]["team"]["seats"]
    assert data["forecasts"][0]["term"]["months"] == 2
