"""`sweep`, `report --by month` and scenario files, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.errors import ConfigError
from simulator.org import load_org
from simulator.simulation import sweep
from simulator.simulation.scenario import load_scenario
from simulator.simulation.sweep import parse_volumes
from simulator.simulation.traffic import TrafficParams

runner = CliRunner()
SCENARIOS = Path(__file__).parents[2] / "fixtures" / "scenarios"
PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sweep_json_contract_and_plot(tmp_path: Path) -> None:
    chart = tmp_path / "volume.png"
    data = json.loads(invoke("sweep", "--volumes", "3,30,300", "-f", "json", "--plot", str(chart)))
    rows = data["volumes"]
    assert [r["volume"] for r in rows] == [3, 30, 300]
    for row in rows:
        assert {"volume", "support", "team", "cheaper_model", "margin", "contract"} <= set(row)
        assert set(row["support"]) >= {"seats", "cost"} and set(row["team"]) >= {"seats", "cost"}
        assert row["margin"] == round(abs(row["support"]["cost"] - row["team"]["cost"]), 2)
        assert row["contract"]["team"] == sum(m["team"]["cost"] for m in row["months"])
    assert {r["support"]["seats"] for r in rows} == {3}  # flat in volume
    assert rows[0]["team"]["seats"] < rows[-1]["team"]["seats"]
    assert chart.read_bytes().startswith(PNG)
    assert data["recommendation"]["model"] == "support" and data["recommendation"]["reasons"]
    csv = invoke("sweep", "--volumes", "10,100", "-f", "csv").splitlines()
    assert csv[0] == (
        "volume,support_seats,support_cost,team_seats,team_cost,cheaper_model,margin,"
        "contract_support,contract_team,recommended_model,crossover"
    )
    assert len(csv) == 3


def test_crossover_is_exact_to_the_message() -> None:
    """The sample org: 3 agents (75.00) against 10.00 a Team user. Every volume between
    the two swept ones is run, so the bisection's answer is checked against all."""
    data = json.loads(invoke("sweep", "--volumes", "1,40", "-f", "json"))
    cross = data["crossover"]
    below, above = cross["below"], cross["above"]
    assert above["volume"] == cross["volume"] == below["volume"] + 1
    assert below["cheaper_model"] == "team" and above["cheaper_model"] == "support"
    assert below["team_cost"] <= 75.0 < above["team_cost"]
    org = load_org()
    winners = [
        sweep.row(v, sweep.run_months(TrafficParams(emails=v), org), 1)["cheaper_model"]
        for v in range(1, 41)
    ]
    first_support = winners.index("support") + 1
    assert cross["volume"] == first_support
    assert set(winners[: first_support - 1]) <= {"team", "equal"}
    sentence = data["recommendation"]["reasons"][0]
    assert sentence.startswith(f"crossover at {cross['volume']} emails/month")
    assert f"Team {above['team_seats']} user(s) = {above['team_cost']:,.2f} USD" in sentence
    csv = invoke("sweep", "--volumes", "1,40", "-f", "csv").splitlines()
    marked = [line for line in csv if line.endswith((",below", ",above"))]
    assert [int(line.split(",")[0]) for line in marked] == [below["volume"], above["volume"]]
    none = json.loads(invoke("sweep", "--volumes", "100,1000", "-f", "json"))
    assert none["crossover"] is None
    assert none["recommendation"]["reasons"][0] == (
        "no crossover: Support is cheaper at every volume from 100 to 1,000 emails/month"
    )


B2B = str(SCENARIOS / "b2b-desk.toml")
B2B_CASES = {
    "first_login": '[licensing]\nteam_counts_from = "first_login"\n',
    "inactive_7": "[licensing]\ninactive_after_days = 7\n",
    "notify_replies": None,
}


@pytest.mark.parametrize("case", sorted(B2B_CASES))
def test_sweep_and_simulate_agree_on_the_b2b_desk(tmp_path: Path, case: str) -> None:
    """The issue's cases at 1,500 emails a month: sweep now applies [licensing] and
    [notify] as simulate does (it said 200 Team seats for all three)."""
    sample = (SCENARIOS.parent / "org.toml").read_text(encoding="utf-8")
    extra = B2B_CASES[case]
    if extra is None:
        sample = sample.replace(
            "notify_participants_on_reply = false", "notify_participants_on_reply = true"
        )
        extra = ""
    org = tmp_path / "org.toml"
    org.write_text(sample + "\n" + extra, encoding="utf-8")
    common = ["--scenario", B2B, "--org", str(org), "-f", "json"]
    simulated = json.loads(invoke("simulate", *common))
    swept = json.loads(invoke("sweep", "--volumes", "1500", *common))["volumes"][0]
    for model in ("support", "team"):
        assert swept[model]["seats"] == simulated[model]["seats"]
        assert swept[model]["cost"] == simulated[model]["cost"]
    assert swept["reasons"] == simulated["reasons"]
    assert (
        swept["team"]["seats_from_notifications"] == (simulated["team"]["seats_from_notifications"])
    )
    expected = {"first_login": 4, "inactive_7": 104, "notify_replies": 269}[case]
    assert swept["team"]["seats"] == expected


def test_sweep_over_months_matches_simulate_by_month(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'three.db'}"
    invoke("simulate", "--emails", "900", "--days", "90", "--db", db, "-f", "json")
    by_month = json.loads(invoke("report", "--db", db, "--by", "month", "-f", "json"))
    data = json.loads(invoke("sweep", "--volumes", "300", "--months", "3", "-f", "json"))
    months = data["volumes"][0]["months"]
    assert [m["month"] for m in months] == [m["month"] for m in by_month][: len(months)]
    for swept, simulated in zip(months, by_month, strict=False):
        for model in ("support", "team"):
            assert swept[model] == simulated[model]
    teams = [m["team"]["seats"] for m in months]
    assert teams == sorted(teams) and teams[0] < teams[-1]  # the customer base carries over
    contract = data["volumes"][0]["contract"]
    assert contract["months"] == 3
    assert contract["team"] == round(sum(m["team"]["cost"] for m in months), 2)
    result = runner.invoke(app, ["sweep", "--months", "0"])
    assert result.exit_code != 0 and "months" in result.stderr


def test_volume_list_errors() -> None:
    assert parse_volumes("1e3, 100,100") == [100, 1000]
    for bad in ("0", "1.5", "ten", "100000000"):
        with pytest.raises(ConfigError):
            parse_volumes(bad)


@pytest.mark.parametrize("name", ["b2b-desk", "consumer-desk", "internal-it"])
def test_scenarios_load_and_run(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert scenario.traffic.emails > 0
    report = json.loads(
        invoke(
            "simulate",
            "--scenario",
            str(SCENARIOS / f"{name}.toml"),
            "--emails",
            "60",
            "-f",
            "json",
        )
    )
    assert report["organization"] == scenario.org.name
    assert report["deliveries"]["accepted"] == 60
    if name == "internal-it":
        assert report["users"]["customer"] == 0
        assert report["recommended_model"] == "team"


def test_scenario_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[traffic]\nemails = 10\nwords = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown \\[traffic\\] key"):
        load_scenario(path)
    path.write_text("[traffic]\nreply_share = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        load_scenario(path)
    result = runner.invoke(app, ["simulate", "--scenario", str(path)])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")


def test_report_by_month(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'months.db'}"
    invoke("simulate", "--emails", "240", "--days", "59", "--db", db, "-f", "json")
    rows = json.loads(invoke("report", "--db", db, "--by", "month", "-f", "json"))
    assert [r["month"] for r in rows] == ["2026-01", "2026-02"]
    users = json.loads(invoke("users", "--db", db, "-f", "json"))
    assert sum(r["new_users"] for r in rows) == len(users)
    assert [r["support"]["seats"] for r in rows] == [3, 3]
    final = json.loads(invoke("report", "--db", db, "--as-of", "2026-03-01T00:00Z", "-f", "json"))
    assert rows[-1]["team"]["seats"] == final["team"]["seats"]
    assert rows[0]["team"]["seats"] <= rows[1]["team"]["seats"]
    for row in rows:
        assert row["team"]["billed_seats"] == row["team"]["peak_seats"]  # monthly true-up
        assert row["team"]["cost"] == row["team"]["billed_seats"] * 10.0
        assert 0 < row["active_senders"] <= row["team"]["peak_seats"]
    chart = tmp_path / "months.png"
    invoke("report", "--db", db, "--by", "month", "--plot", str(chart))
    assert chart.read_bytes().startswith(PNG)


def test_licensing_rules_change_the_report_not_the_ledger(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rules.db'}"
    invoke("simulate", "--emails", "120", "--db", db, "-f", "json")
    org = tmp_path / "org.toml"
    sample = (SCENARIOS.parent / "org.toml").read_text(encoding="utf-8")
    org.write_text(sample + '\n[licensing]\nteam_counts_from = "creation"\n', encoding="utf-8")
    ledger_before = invoke("ledger", "--db", db, "-f", "json")
    as_of = ["--as-of", "2026-03-01T00:00Z", "-f", "json"]
    plain = json.loads(invoke("report", "--db", db, *as_of))
    creation = json.loads(invoke("report", "--db", db, "--org", str(org), *as_of))
    users = json.loads(invoke("users", "--db", db, "-f", "json"))
    # Counting from creation bills every account, the directory employee who
    # neither logs in nor wrote included.
    assert creation["team"]["seats"] == len(users)
    assert plain["team"]["seats"] == sum(u["team_seat"] for u in users) < len(users)
    assert invoke("ledger", "--db", db, "-f", "json") == ledger_before
